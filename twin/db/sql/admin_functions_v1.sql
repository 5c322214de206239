-- The five-level admin hierarchy (city > district > street > community > grid) as SQL functions,
-- so that every query that rolls cells, events or tasks up to an area uses one definition.

-- The ancestor of an area (itself included) at a level; NULL when there is none.
CREATE OR REPLACE FUNCTION twin.area_at_level(area bigint, lvl text) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH RECURSIVE up(id, parent_id, level) AS (
        SELECT id, parent_id, level FROM twin.admin_area WHERE id = area
        UNION ALL
        SELECT a.id, a.parent_id, a.level FROM twin.admin_area a JOIN up ON a.id = up.parent_id
    )
    SELECT id FROM up WHERE level = lvl LIMIT 1
$$;

-- An area and every area below it.
CREATE OR REPLACE FUNCTION twin.area_subtree(area bigint) RETURNS SETOF bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    WITH RECURSIVE down(id) AS (
        SELECT id FROM twin.admin_area WHERE id = area
        UNION ALL
        SELECT a.id FROM twin.admin_area a JOIN down ON a.parent_id = down.id
    )
    SELECT id FROM down
$$;
