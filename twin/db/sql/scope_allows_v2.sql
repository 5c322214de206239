-- twin.scope_allows of access_v1.sql, written so that PostgreSQL inlines it into the row-level
-- security policies that call it. The v1 body read the setting in a FROM subquery, and a SQL
-- function with a FROM clause is never inlined: every row of event, task, alert and the audit
-- log paid a function call (0.44 s of a 0.75 s city cockpit, against 0.18 s without row
-- security). The same answers: no scope, '' or '*' allow everything, 'none' nothing, else the
-- listed areas; a NULL area only under an unlimited scope.
CREATE OR REPLACE FUNCTION twin.scope_allows(area bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(current_setting('twin.scope', true), '') IN ('', '*') THEN true
        WHEN current_setting('twin.scope', true) = 'none' THEN false
        ELSE coalesce(area = ANY (string_to_array(current_setting('twin.scope', true), ',')::bigint[]),
                      false)
    END
$$;
