-- Cell statistics: every entity's finest cell rolled up to each configured resolution.
-- Used by twin.city.cells.refresh_cell_stats inside the caller's transaction.
--
-- Scope: a full refresh passes full = true. An incremental one passes full = false and the
-- affected cells at the coarsest configured resolution r0 in scope; it then recomputes every
-- cell, at every resolution, that lies under one of those r0 cells, from all the entities under
-- them, so the result is exactly what a full refresh would give there.

-- name: drop_temp
DROP TABLE IF EXISTS _cs_fine, _cs_agg, _cs_landuse, _cs_geom;

-- name: create_fine
-- One row per finest cell, metric and key (age band, category, event type, or '').
-- v is summed when rolling up; m (only for heights) is maximised.
CREATE TEMP TABLE _cs_fine ON COMMIT DROP AS
SELECT cell, metric, key, sum(v) AS v, max(m) AS m
FROM (
    SELECT home_cell AS cell, 'age' AS metric, age_band AS key, count(*)::float8 AS v,
           NULL::float8 AS m
    FROM twin.person GROUP BY home_cell, age_band
    UNION ALL
    SELECT work_cell, 'jobs', '', count(*), NULL FROM twin.person GROUP BY work_cell
    UNION ALL
    SELECT cell, 'buildings', '', count(*), NULL FROM twin.building GROUP BY cell
    UNION ALL
    SELECT cell, 'floor_area', '', sum(coalesce(footprint_m2, 0) * coalesce(floors, 1)), NULL
    FROM twin.building GROUP BY cell
    UNION ALL
    SELECT cell, 'height', '', sum(height_m), max(height_m)
    FROM twin.building WHERE height_m IS NOT NULL GROUP BY cell
    UNION ALL
    SELECT cell, 'height_n', '', count(*), NULL
    FROM twin.building WHERE height_m IS NOT NULL GROUP BY cell
    UNION ALL
    SELECT cell, 'enterprises', '', count(*), NULL FROM twin.enterprise GROUP BY cell
    UNION ALL
    SELECT cell, 'hazard', category, count(*), NULL FROM twin.hazard_site GROUP BY cell, category
    UNION ALL
    SELECT cell, 'events_open', type, count(*), NULL
    FROM twin.event WHERE status <> 'closed' GROUP BY cell, type
    UNION ALL
    SELECT cell, 'events_30d', type, count(*), NULL
    FROM twin.event
    WHERE occurred_at > %(as_of)s::timestamptz - interval '30 days'
      AND occurred_at <= %(as_of)s::timestamptz
    GROUP BY cell, type
    UNION ALL
    SELECT cell, 'road_length', '', sum(length_m), NULL FROM twin.road_link GROUP BY cell
) parts
WHERE cell IS NOT NULL
  AND (%(full)s OR twin.h3_parent(cell, %(r0)s) = ANY(%(scope)s::bigint[]))
GROUP BY cell, metric, key;

-- name: create_agg
CREATE TEMP TABLE _cs_agg (
    res smallint, cell bigint, metric text, key text, v float8, m float8
) ON COMMIT DROP;

-- name: rollup
-- One resolution from the next finer one already rolled up (%(prev)s; NULL for the finest),
-- plus the entities stored coarser than that one, so each level groups the rows of the level
-- below instead of every finest row again. A NULL parent (a resolution finer than the stored
-- cell) drops out.
INSERT INTO _cs_agg
SELECT %(res)s, p, metric, key, sum(v), max(m)
FROM (
    SELECT twin.h3_parent(cell, %(res)s) AS p, metric, key, v, m
    FROM _cs_agg WHERE res = %(prev)s
    UNION ALL
    SELECT twin.h3_parent(cell, %(res)s), metric, key, v, m
    FROM _cs_fine
    WHERE %(prev)s::int IS NULL OR twin.h3_resolution(cell) < %(prev)s
) f
WHERE p IS NOT NULL
GROUP BY p, metric, key;

-- name: create_landuse
-- Land-use area (m2) per cell and major class from the parcels' area-weighted cell shares.
CREATE TEMP TABLE _cs_landuse ON COMMIT DROP AS
SELECT r.res, twin.h3_parent(pc.cell, r.res) AS cell, left(p.land_use, 1) AS class,
       sum(pc.share * p.area_m2) AS area_m2
FROM twin.parcel_cell pc
JOIN twin.parcel p ON p.id = pc.parcel_id
CROSS JOIN unnest(%(resolutions)s::int[]) AS r(res)
WHERE twin.h3_parent(pc.cell, r.res) IS NOT NULL
  AND (%(full)s OR twin.h3_parent(pc.cell, %(r0)s) = ANY(%(scope)s::bigint[]))
GROUP BY 1, 2, 3;

-- name: analyze_temp
-- The final insert joins these by hash in one pass each; no per-cell lookups, so no indexes
-- (an index scan over the roll-ups, through the few temp buffers, cost 9 s at city scale).
ANALYZE _cs_agg;
ANALYZE _cs_landuse;

-- name: cells_to_shape
SELECT DISTINCT res, cell FROM (
    SELECT res, cell FROM _cs_agg UNION ALL SELECT res, cell FROM _cs_landuse
) c ORDER BY res, cell;

-- name: create_geom
-- patch: the grid patch holding the cell centre when exactly one does (worked out in Python
-- with an STRtree, twin.city.cells.centre_patches), else NULL.
CREATE TEMP TABLE _cs_geom (
    res smallint, cell bigint, parent bigint, geom geometry(Polygon, 4326),
    center geometry(Point, 4326), patch bigint, PRIMARY KEY (res, cell)
) ON COMMIT DROP;

-- name: grid_patches
SELECT id, ST_AsBinary(geom) FROM twin.admin_area WHERE level = 'grid' ORDER BY id;

-- name: scope_rowset
-- The statistics rows under the scope's r0 cells, before and after an incremental refresh:
-- the cells that gained or lost theirs (twin.city.cells.refresh_cells_reporting).
SELECT cell FROM twin.cell_stats WHERE twin.h3_parent(cell, %(r0)s) = ANY(%(scope)s::bigint[]);

-- name: delete_stats
DELETE FROM twin.cell_stats
WHERE %(full)s OR twin.h3_parent(cell, %(r0)s) = ANY(%(scope)s::bigint[]);

-- name: insert_stats
INSERT INTO twin.cell_stats (
    res, cell, parent, area_id, population, population_by_age, elderly, jobs, buildings,
    floor_area_m2, height_mean_m, height_max_m, enterprises, hazard_sites,
    hazard_sites_by_category, events_open, events_open_by_type, events_30d, events_30d_by_type,
    road_length_m, land_use_mix, geom
)
SELECT g.res, g.cell, g.parent,
       -- The grid patch holding the cell centre, else the one overlapping the cell most
       -- (ties: the larger overlap, then the lower id). The centre is looked up first: one
       -- point in one patch, where a coarse cell overlaps dozens of patches.
       coalesce(
           -- Nearly always one patch holds the centre: no overlap areas to work out then.
           g.patch,
           (SELECT a.id FROM twin.admin_area a
            WHERE a.level = 'grid' AND ST_Intersects(a.geom, g.center)
            ORDER BY ST_Area(ST_Intersection(a.geom, g.geom)) DESC, a.id LIMIT 1),
           (SELECT a.id FROM twin.admin_area a
            WHERE a.level = 'grid' AND ST_Intersects(a.geom, g.geom)
            ORDER BY ST_Area(ST_Intersection(a.geom, g.geom)) DESC, a.id LIMIT 1)),
       coalesce(s.population, 0), coalesce(s.population_by_age, '{}'), coalesce(s.elderly, 0),
       coalesce(s.jobs, 0), coalesce(s.buildings, 0), coalesce(s.floor_area_m2, 0),
       s.height_mean_m, s.height_max_m, coalesce(s.enterprises, 0), coalesce(s.hazard_sites, 0),
       coalesce(s.hazard_sites_by_category, '{}'), coalesce(s.events_open, 0),
       coalesce(s.events_open_by_type, '{}'), coalesce(s.events_30d, 0),
       coalesce(s.events_30d_by_type, '{}'), coalesce(s.road_length_m, 0),
       coalesce(lu.mix, '{}'::jsonb), g.geom
FROM _cs_geom g
-- One grouped pass over the roll-ups, joined by cell (a lookup per cell was a third of a
-- city-scale refresh). jsonb orders an object's keys itself, so the aggregates need no ORDER
-- BY, and without one the grouping may hash.
LEFT JOIN (
    SELECT a.res, a.cell,
        sum(v) FILTER (WHERE metric = 'age')::int AS population,
        jsonb_object_agg(key, v::int) FILTER (WHERE metric = 'age')
            AS population_by_age,
        sum(v) FILTER (WHERE metric = 'age' AND key IN ('60-74', '75+'))::int AS elderly,
        sum(v) FILTER (WHERE metric = 'jobs')::int AS jobs,
        sum(v) FILTER (WHERE metric = 'buildings')::int AS buildings,
        -- Rounded: sums of floats depend on their order, which differs between a full and an
        -- incremental refresh; 1 cm2 and 1 cm are far below what the inputs can resolve.
        round(sum(v) FILTER (WHERE metric = 'floor_area')::numeric, 2)::float8 AS floor_area_m2,
        round((sum(v) FILTER (WHERE metric = 'height')
               / nullif(sum(v) FILTER (WHERE metric = 'height_n'), 0))::numeric, 2)::float8
            AS height_mean_m,
        max(m) FILTER (WHERE metric = 'height') AS height_max_m,
        sum(v) FILTER (WHERE metric = 'enterprises')::int AS enterprises,
        sum(v) FILTER (WHERE metric = 'hazard')::int AS hazard_sites,
        jsonb_object_agg(key, v::int) FILTER (WHERE metric = 'hazard')
            AS hazard_sites_by_category,
        sum(v) FILTER (WHERE metric = 'events_open')::int AS events_open,
        jsonb_object_agg(key, v::int) FILTER (WHERE metric = 'events_open')
            AS events_open_by_type,
        sum(v) FILTER (WHERE metric = 'events_30d')::int AS events_30d,
        jsonb_object_agg(key, v::int) FILTER (WHERE metric = 'events_30d')
            AS events_30d_by_type,
        round(sum(v) FILTER (WHERE metric = 'road_length')::numeric, 2)::float8 AS road_length_m
    FROM _cs_agg a GROUP BY a.res, a.cell
) s ON s.res = g.res AND s.cell = g.cell
LEFT JOIN (
    SELECT l.res, l.cell,
           jsonb_object_agg(l.class, round((l.area_m2 / c.area_m2)::numeric, 4)) AS mix
    FROM _cs_landuse l
    JOIN (SELECT res, cell, ST_Area(geom::geography) AS area_m2 FROM _cs_geom) c
      ON c.res = l.res AND c.cell = l.cell
    GROUP BY l.res, l.cell
) lu ON lu.res = g.res AND lu.cell = g.cell;

-- name: people_counts
-- What complementary suppression needs (twin.city.cells.mark_hidden).
SELECT res, cell, population, elderly, jobs, population_by_age
FROM twin.cell_stats ORDER BY res, cell;

-- name: create_hidden
DROP TABLE IF EXISTS _cs_hidden;
CREATE TEMP TABLE _cs_hidden (res smallint, cell bigint, hidden text[]) ON COMMIT DROP;

-- name: update_hidden
UPDATE twin.cell_stats c SET hidden = h.hidden
FROM _cs_hidden h
WHERE c.res = h.res AND c.cell = h.cell AND c.hidden IS DISTINCT FROM h.hidden;

-- name: area_counts_delete
-- Buildings and residents per area the buildings carry (a grid patch): what the cockpits sum
-- (twin.area_counts). %(areas)s: the areas to redo; NULL for all.
DELETE FROM twin.area_counts WHERE %(areas)s::bigint[] IS NULL OR area_id = ANY(%(areas)s);

-- name: area_counts_insert
-- The residents of the areas' buildings grouped once. A count per building (a lateral probe)
-- looked each building up in the home-building index of every person partition: two minutes
-- for the 1/8 of the large city that 1,000 scattered buildings put in scope.
INSERT INTO twin.area_counts (area_id, buildings, residents)
SELECT b.area_id, count(*), coalesce(sum(r.n), 0)
FROM twin.building b
LEFT JOIN (SELECT p.home_building_id AS id, count(*) AS n FROM twin.person p
           WHERE p.home_building_id IN (SELECT id FROM twin.building
                                        WHERE area_id = ANY(%(areas)s::bigint[]))
           GROUP BY 1) r ON r.id = b.id
WHERE b.area_id = ANY(%(areas)s::bigint[])
GROUP BY b.area_id;

-- name: area_counts_insert_all
-- The whole city: one pass over the residents rather than one index probe per building.
INSERT INTO twin.area_counts (area_id, buildings, residents)
SELECT b.area_id, count(*), coalesce(sum(r.n), 0)
FROM twin.building b
LEFT JOIN (SELECT home_building_id AS id, count(*) AS n FROM twin.person
           WHERE home_building_id IS NOT NULL GROUP BY 1) r ON r.id = b.id
WHERE b.area_id IS NOT NULL
GROUP BY b.area_id;

-- name: scope_areas
-- Areas whose counts an incremental refresh must redo: every grid patch overlapping a cell
-- in scope (old and new places of what changed), and the areas of the buildings now in it.
SELECT a.id FROM twin.admin_area a
WHERE a.level = 'grid'
  AND ST_Intersects(a.geom, ST_Collect(ARRAY(
      SELECT ST_GeomFromEWKB(decode(w, 'hex')) FROM unnest(%(cells)s::text[]) AS w)))
UNION
SELECT DISTINCT b.area_id FROM twin.building b
WHERE b.area_id IS NOT NULL AND twin.h3_parent(b.cell, %(r0)s) = ANY(%(scope)s::bigint[]);
