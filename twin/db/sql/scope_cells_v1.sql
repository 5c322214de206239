-- Scope for rows placed by a cell rather than an admin area. A cell belongs to the grid patch
-- holding its centre (cell_stats.area_id at the cell's own resolution, as the cockpits count
-- cells); it is within a scope when that patch is. Same settings as twin.scope_allows: an
-- unset scope or '*' allows everything, 'none' nothing; a cell without statistics (outside
-- the city) is outside every scope.
CREATE OR REPLACE FUNCTION twin.scope_allows_cell(c bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN s IS NULL OR s IN ('', '*') THEN true
        WHEN s = 'none' OR c IS NULL THEN false
        ELSE coalesce(
            (SELECT cs.area_id FROM twin.cell_stats cs
             WHERE cs.res = twin.h3_resolution(c) AND cs.cell = c)
            = ANY (string_to_array(s, ',')::bigint[]), false)
    END
    FROM (SELECT current_setting('twin.scope', true) AS s) x
$$;
GRANT EXECUTE ON FUNCTION twin.scope_allows_cell(bigint) TO twin_api;

-- Hazard sites are operational records of a place (important data), scoped as events are.
ALTER TABLE twin.hazard_site ENABLE ROW LEVEL SECURITY;
ALTER TABLE twin.hazard_site FORCE ROW LEVEL SECURITY;
CREATE POLICY twin_scope ON twin.hazard_site
    USING (twin.scope_allows_cell(cell)) WITH CHECK (twin.scope_allows_cell(cell));
