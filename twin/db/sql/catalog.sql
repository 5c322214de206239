-- The open-data catalogue (twin/exports/catalog.py): what the twin publishes, read as the
-- caller (row-level security applies to every count and extent).

-- name: city
-- With the city's extent: the coverage of a dataset defined over the city that has no rows yet
-- (a risk layer before its first run).
SELECT m.name, m.source, m.updated_at,
       ST_XMin(e) AS xmin, ST_YMin(e) AS ymin, ST_XMax(e) AS xmax, ST_YMax(e) AS ymax
FROM twin.city_meta m
CROSS JOIN (SELECT ST_Extent(geom) AS e FROM twin.admin_area WHERE level = 'city') x
WHERE m.id = 1;

-- name: versions
SELECT layer, updated_at FROM twin.layer_version;

-- name: cell_stats
-- Cells per resolution, their extent and when they were last refreshed.
SELECT res, count(*)::bigint AS n, max(updated_at) AS updated_at,
       ST_XMin(ST_Extent(geom)) AS xmin, ST_YMin(ST_Extent(geom)) AS ymin,
       ST_XMax(ST_Extent(geom)) AS xmax, ST_YMax(ST_Extent(geom)) AS ymax
FROM twin.cell_stats
GROUP BY res
ORDER BY res;

-- name: risk_layers
-- Scored cells of each risk layer at each resolution; the layers in %(scoped)s (core) count
-- only the cells within the caller's scope, as /api/layers does.
SELECT layer_id, res, count(*)::bigint AS n, max(computed_at) AS computed_at,
       ST_XMin(ST_Extent(geom)) AS xmin, ST_YMin(ST_Extent(geom)) AS ymin,
       ST_XMax(ST_Extent(geom)) AS xmax, ST_YMax(ST_Extent(geom)) AS ymax
FROM twin.risk_score
WHERE NOT (layer_id = ANY(%(scoped)s::text[])) OR twin.scope_allows_cell(cell)
GROUP BY layer_id, res;

-- name: flood_runs
-- The newest succeeded flood runs (their GeoTIFFs are looked for on disk).
SELECT id, params, created_at, started_at, finished_at
FROM twin.sim_run
WHERE kind = 'flood' AND status = 'succeeded'
ORDER BY id DESC
LIMIT %(limit)s;

-- name: flood_run
SELECT id, params, created_at, started_at, finished_at
FROM twin.sim_run
WHERE id = %(id)s AND kind = 'flood' AND status = 'succeeded';

-- name: rasters
SELECT id, kind, name, path, unit, created_at,
       ST_XMin(footprint) AS xmin, ST_YMin(footprint) AS ymin,
       ST_XMax(footprint) AS xmax, ST_YMax(footprint) AS ymax
FROM twin.raster_asset
ORDER BY kind, name;

-- name: raster
SELECT id, kind, name, path FROM twin.raster_asset WHERE id = %(id)s;
