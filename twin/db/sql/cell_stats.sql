-- Cell statistics: every entity's finest cell rolled up to each configured resolution.
-- Used by twin.city.cells.refresh_cell_stats inside the caller's transaction.

-- name: create_fine
-- Per finest cell: counts of people, jobs, buildings, enterprises, hazard sites and events.
CREATE TEMP TABLE _cs_fine ON COMMIT DROP AS
SELECT cell,
       sum(population)::int AS population, sum(elderly)::int AS elderly, sum(jobs)::int AS jobs,
       sum(buildings)::int AS buildings, sum(floor_area_m2) AS floor_area_m2,
       sum(enterprises)::int AS enterprises, sum(hazard_sites)::int AS hazard_sites,
       sum(events_open)::int AS events_open, sum(events_90d)::int AS events_90d
FROM (
    SELECT home_cell AS cell, count(*) AS population,
           count(*) FILTER (WHERE age_band IN ('60-74', '75+')) AS elderly, 0 AS jobs,
           0 AS buildings, 0 AS floor_area_m2, 0 AS enterprises, 0 AS hazard_sites,
           0 AS events_open, 0 AS events_90d
    FROM twin.person WHERE home_cell IS NOT NULL GROUP BY home_cell
    UNION ALL
    SELECT work_cell, 0, 0, count(*), 0, 0, 0, 0, 0, 0
    FROM twin.person WHERE work_cell IS NOT NULL GROUP BY work_cell
    UNION ALL
    SELECT cell, 0, 0, 0, count(*), sum(coalesce(footprint_m2, 0) * coalesce(floors, 1)), 0, 0, 0, 0
    FROM twin.building WHERE cell IS NOT NULL GROUP BY cell
    UNION ALL
    SELECT cell, 0, 0, 0, 0, 0, count(*), 0, 0, 0
    FROM twin.enterprise WHERE cell IS NOT NULL GROUP BY cell
    UNION ALL
    SELECT cell, 0, 0, 0, 0, 0, 0, count(*), 0, 0
    FROM twin.hazard_site WHERE cell IS NOT NULL GROUP BY cell
    UNION ALL
    SELECT cell, 0, 0, 0, 0, 0, 0, 0,
           count(*) FILTER (WHERE status <> 'closed'),
           count(*) FILTER (WHERE occurred_at > %(as_of)s::timestamptz - interval '90 days'
                                AND occurred_at <= %(as_of)s::timestamptz)
    FROM twin.event WHERE cell IS NOT NULL GROUP BY cell
) parts
GROUP BY cell;

-- name: create_agg
CREATE TEMP TABLE _cs_agg (
    res smallint, cell bigint, population int, elderly int, jobs int, buildings int,
    floor_area_m2 double precision, enterprises int, hazard_sites int, events_open int,
    events_90d int, PRIMARY KEY (res, cell)
) ON COMMIT DROP;

-- name: rollup
-- One resolution: parents of the finest cells (NULL parents, i.e. res finer than stored, drop).
INSERT INTO _cs_agg
SELECT %(res)s, p, sum(population), sum(elderly), sum(jobs), sum(buildings), sum(floor_area_m2),
       sum(enterprises), sum(hazard_sites), sum(events_open), sum(events_90d)
FROM (SELECT twin.h3_parent(cell, %(res)s) AS p, * FROM _cs_fine) f
WHERE p IS NOT NULL
GROUP BY p;

-- name: create_landuse
-- Land-use area (m2) per cell and major class from the parcels' area-weighted cell shares.
CREATE TEMP TABLE _cs_landuse ON COMMIT DROP AS
SELECT r.res, twin.h3_parent(pc.cell, r.res) AS cell, left(p.land_use, 1) AS class,
       sum(pc.share * p.area_m2) AS area_m2
FROM twin.parcel_cell pc
JOIN twin.parcel p ON p.id = pc.parcel_id
CROSS JOIN unnest(%(resolutions)s::int[]) AS r(res)
WHERE twin.h3_parent(pc.cell, r.res) IS NOT NULL
GROUP BY 1, 2, 3;

-- name: cells_to_shape
SELECT DISTINCT res, cell FROM (
    SELECT res, cell FROM _cs_agg UNION ALL SELECT res, cell FROM _cs_landuse
) c ORDER BY res, cell;

-- name: create_geom
CREATE TEMP TABLE _cs_geom (
    res smallint, cell bigint, parent bigint, geom geometry(Polygon, 4326),
    center geometry(Point, 4326), PRIMARY KEY (res, cell)
) ON COMMIT DROP;

-- name: replace_stats
DELETE FROM twin.cell_stats;
INSERT INTO twin.cell_stats (
    res, cell, parent, area_id, population, elderly, jobs, buildings, floor_area_m2,
    enterprises, hazard_sites, events_open, events_90d, land_use_mix, geom
)
SELECT g.res, g.cell, g.parent,
       (SELECT a.id FROM twin.admin_area a
        WHERE a.level = 'grid' AND ST_Intersects(a.geom, g.center)
        ORDER BY a.id LIMIT 1),
       coalesce(s.population, 0), coalesce(s.elderly, 0), coalesce(s.jobs, 0),
       coalesce(s.buildings, 0), coalesce(s.floor_area_m2, 0), coalesce(s.enterprises, 0),
       coalesce(s.hazard_sites, 0), coalesce(s.events_open, 0), coalesce(s.events_90d, 0),
       coalesce(lu.mix, '{}'::jsonb), g.geom
FROM _cs_geom g
LEFT JOIN _cs_agg s ON s.res = g.res AND s.cell = g.cell
LEFT JOIN LATERAL (
    SELECT jsonb_object_agg(l.class, round((l.area_m2 / ST_Area(g.geom::geography))::numeric, 4)
                            ORDER BY l.class) AS mix
    FROM _cs_landuse l WHERE l.res = g.res AND l.cell = g.cell
) lu ON true;
