-- Queries behind /api/cells and /api/addresses.

-- name: cell_stats
SELECT res, cell, parent, area_id, population, population_by_age, elderly, jobs, buildings,
       floor_area_m2, height_mean_m, height_max_m, enterprises, hazard_sites,
       hazard_sites_by_category, events_open, events_open_by_type, events_30d,
       events_30d_by_type, road_length_m, land_use_mix, hidden, updated_at
FROM twin.cell_stats WHERE res = %(res)s AND cell = %(cell)s;

-- name: area_chain
-- The admin area holding the cell and its ancestors, finest first.
WITH RECURSIVE chain AS (
    SELECT id, level, code, name, name_en, parent_id, 0 AS depth
    FROM twin.admin_area WHERE id = %(area_id)s
    UNION ALL
    SELECT a.id, a.level, a.code, a.name, a.name_en, a.parent_id, c.depth + 1
    FROM twin.admin_area a JOIN chain c ON a.id = c.parent_id
)
SELECT id, level, code, name, name_en FROM chain ORDER BY depth;

-- name: open_events
SELECT id, type, severity, status, source, occurred_at
FROM twin.event
WHERE status <> 'closed' AND cell BETWEEN %(lo)s AND %(hi)s
ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s;

-- name: hazard_sites
SELECT id, category, name, hazard_class, ST_X(geom) AS lon, ST_Y(geom) AS lat
FROM twin.hazard_site
WHERE cell BETWEEN %(lo)s AND %(hi)s
ORDER BY hazard_class DESC, id LIMIT %(limit)s;

-- name: cells_in_bbox
SELECT cell, population, elderly, jobs, buildings, floor_area_m2, height_mean_m,
       height_max_m, enterprises, hazard_sites, events_open, events_30d, road_length_m, hidden
FROM twin.cell_stats
WHERE res = %(res)s
  AND geom && ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326)
ORDER BY cell LIMIT %(limit)s;

-- name: find_addresses
-- Exact normal form first, then prefix, then substring (trigram index).
SELECT a.id, a.text, a.building_id, a.cell, ST_X(a.geom) AS lon, ST_Y(a.geom) AS lat,
       CASE WHEN a.normalized = %(q)s THEN 0
            WHEN a.normalized LIKE %(prefix)s THEN 1 ELSE 2 END AS rank
FROM twin.address a
WHERE a.normalized LIKE %(contains)s
ORDER BY rank, length(a.normalized), a.id
LIMIT %(limit)s;

-- name: buildings
-- Buildings whose centroid lies in the cell, tallest first.
SELECT id, use, height_m, floors, footprint_m2
FROM twin.building
WHERE cell BETWEEN %(lo)s AND %(hi)s
ORDER BY height_m DESC NULLS LAST, id LIMIT %(limit)s;
