-- Admin-area lookups shared by every route and command (twin/city/areas.py).

-- name: area_by_id
SELECT id, code, name, name_en, level, parent_id FROM twin.admin_area WHERE id = %(id)s;

-- name: area_by_ref
-- By id or code; an id wins when a code reads like one.
SELECT id, code, name, name_en, level, parent_id FROM twin.admin_area
WHERE id = %(id)s OR code = %(code)s
ORDER BY (id IS NOT DISTINCT FROM %(id)s) DESC
LIMIT 1;

-- name: root_area
-- The city (the one area without a parent, at the city level); the lowest id if several.
SELECT id, code, name, name_en, level, parent_id FROM twin.admin_area
WHERE parent_id IS NULL AND level = 'city'
ORDER BY id LIMIT 1;

-- name: patch_of_point
-- A point exactly on a shared edge is contained by neither patch, so patches that merely
-- touch it are the fallback (lowest id first, so the answer is stable).
SELECT a.id, a.code, a.name, a.name_en, a.level, a.parent_id
FROM twin.admin_area a, (SELECT ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326) AS p) AS pt
WHERE a.level = 'grid' AND ST_Intersects(a.geom, pt.p)
ORDER BY ST_Contains(a.geom, pt.p) DESC, a.id
LIMIT 1;

-- name: area_at_level
SELECT twin.area_at_level(%(id)s, %(level)s) AS id;
