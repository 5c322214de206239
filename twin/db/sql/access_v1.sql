-- Row-level security: each API request runs as role twin_api with its scope in the setting
-- twin.scope ('*' = everything, 'none' = nothing, else a comma-separated list of admin area
-- ids: the user's areas and everything under them), both set with SET LOCAL semantics inside
-- the request's transaction. Local tools (CLI, migrations, background runs) set neither and
-- are trusted: an unset scope allows everything. The API's connections default to 'none', so a
-- statement that escapes the request transaction sees nothing rather than everything.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'twin_api') THEN
        CREATE ROLE twin_api NOLOGIN NOBYPASSRLS;
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION twin.scope_allows(area bigint) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN s IS NULL OR s IN ('', '*') THEN true
        WHEN s = 'none' THEN false
        ELSE coalesce(area = ANY (string_to_array(s, ',')::bigint[]), false)
    END
    FROM (SELECT current_setting('twin.scope', true) AS s) x
$$;

GRANT USAGE ON SCHEMA twin TO twin_api;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA twin TO twin_api;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA twin TO twin_api;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA twin TO twin_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA twin GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO twin_api;
ALTER DEFAULT PRIVILEGES IN SCHEMA twin GRANT USAGE, SELECT ON SEQUENCES TO twin_api;
-- Users and tokens are managed by local tools only: the API reads them, never writes them.
REVOKE INSERT, UPDATE, DELETE ON twin.app_user FROM twin_api;
-- The audit trail is append-only for the API.
REVOKE UPDATE, DELETE ON twin.audit_log FROM twin_api;

-- Scoped tables: rows belong to an admin area.
ALTER TABLE twin.event ENABLE ROW LEVEL SECURITY;
ALTER TABLE twin.event FORCE ROW LEVEL SECURITY;
CREATE POLICY twin_scope ON twin.event
    USING (twin.scope_allows(area_id)) WITH CHECK (twin.scope_allows(area_id));

ALTER TABLE twin.task ENABLE ROW LEVEL SECURITY;
ALTER TABLE twin.task FORCE ROW LEVEL SECURITY;
CREATE POLICY twin_scope ON twin.task
    USING (twin.scope_allows(area_id)) WITH CHECK (twin.scope_allows(area_id));

ALTER TABLE twin.alert ENABLE ROW LEVEL SECURITY;
ALTER TABLE twin.alert FORCE ROW LEVEL SECURITY;
CREATE POLICY twin_scope ON twin.alert
    USING (twin.scope_allows(area_id)) WITH CHECK (twin.scope_allows(area_id));

-- A transition is visible (and may be written) when its task is.
ALTER TABLE twin.task_transition ENABLE ROW LEVEL SECURITY;
ALTER TABLE twin.task_transition FORCE ROW LEVEL SECURITY;
CREATE POLICY twin_scope ON twin.task_transition
    USING (EXISTS (SELECT 1 FROM twin.task t WHERE t.id = task_id))
    WITH CHECK (EXISTS (SELECT 1 FROM twin.task t WHERE t.id = task_id));

-- Audit rows of an area stay with that area's readers (rows without an area: everyone scoped
-- to the whole city).
ALTER TABLE twin.audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE twin.audit_log FORCE ROW LEVEL SECURITY;
CREATE POLICY twin_scope_read ON twin.audit_log FOR SELECT USING (twin.scope_allows(area_id));
CREATE POLICY twin_scope_write ON twin.audit_log FOR INSERT WITH CHECK (true);
