"""partitions: person by home district (LIST); event, task_transition, audit_log by month (RANGE)

Revision ID: 0023_partitions
Revises: 0022_comment_paths
Create Date: 2026-12-06

Each table is converted in place and keeps every row, id, identity, constraint, comment,
grant, row-level security policy and trigger (as 0017 did for ``twin.observation``):

- ``twin.person`` gains ``district_id`` (the admin area at level 'district' above the home
  building's area, else above the grid patch holding most of the home cell; 0: none) and is
  partitioned by LIST of it: ``twin_part.person_d<id>`` per district, ``person_default`` for
  the rest. Key ``(id, district_id)``.
- ``twin.event`` (``occurred_at``), ``twin.task_transition`` and ``twin.audit_log`` (``at``)
  are partitioned by RANGE of their time column, one partition per UTC month
  (``<table>_pYYYYMM``, from the month of the oldest row, at most 12 months back, to 3 months
  ahead), with ``<table>_before`` (MINVALUE to the first month) and ``<table>_after`` (the
  last month's end to MAXVALUE) instead of a DEFAULT partition, so that old months can be
  detached CONCURRENTLY (twin.db.history). Keys ``(id, <time>)``; the time column gets a BRIN
  index instead of a b-tree.
- ``task.event_id`` loses its foreign key (a partitioned table is referenced only through a
  key holding its partition key, and old months of events detach while tasks keep the id); a
  statement trigger on ``event`` clears it when an event is deleted, as ON DELETE SET NULL did.

Partitions live in schema ``twin_part``, which the API's role cannot use. Downgrade restores
plain tables with every attached row; detached partitions are left in ``twin_part``.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0023_partitions"
down_revision: str | None = "0022_comment_paths"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HISTORY = {"event": "occurred_at", "task_transition": "at", "audit_log": "at"}
BTREE_TIME = {"event": "ix_event_occurred_at", "audit_log": "ix_audit_log_at"}
MONTHS_BACK = 12
MONTHS_AHEAD = 3
DISTRICT_COMMENT = "home district (admin area at level district; 0: none): the partition key"
EVENT_ID_COMMENT = "the event (twin.event.id) the task answers"

# twin.<t> moves to twin_part.<t>_old and a new twin.<t> shaped like it (columns, defaults,
# checks, generated columns, identity, column comments) takes its place, partitioned by
# part_clause ('' for a plain table), with primary key pk and the old indexes and foreign keys.
_CLONE = r"""
CREATE OR REPLACE FUNCTION pg_temp.p23_clone(tbl text, part_clause text, pk text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := 'twin_part.' || quote_ident(tbl || '_old');
    new text := 'twin.' || quote_ident(tbl);
    r record;
BEGIN
    EXECUTE format('ALTER TABLE twin.%I SET SCHEMA twin_part', tbl);
    EXECUTE format('ALTER TABLE twin_part.%I RENAME TO %I', tbl, tbl || '_old');
    EXECUTE format('CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS'
                   ' INCLUDING GENERATED INCLUDING IDENTITY INCLUDING COMMENTS'
                   ' INCLUDING STORAGE) %s', new, old, part_clause);
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I PRIMARY KEY (%s)', new, 'pk_' || tbl, pk);
    FOR r IN SELECT pg_get_indexdef(i.indexrelid) AS def FROM pg_index i
             WHERE i.indrelid = old::regclass AND NOT i.indisprimary LOOP
        EXECUTE replace(replace(r.def, ' ON ONLY ' || old || ' ', ' ON ' || new || ' '),
                        ' ON ' || old || ' ', ' ON ' || new || ' ');
    END LOOP;
    FOR r IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = old::regclass AND contype = 'f' LOOP
        EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', new, r.conname, r.def);
    END LOOP;
END
$$
"""

# The rows of twin_part.<t>_old into twin.<t>, the identity continued, the table comment,
# grants, row-level security, policies and triggers carried over; the old table dropped.
_FILL = r"""
CREATE OR REPLACE FUNCTION pg_temp.p23_fill(tbl text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    old text := 'twin_part.' || quote_ident(tbl || '_old');
    new text := 'twin.' || quote_ident(tbl);
    src regclass;
    dst regclass;
    cols text;
    v bigint;
    r record;
BEGIN
    src := old::regclass;
    dst := new::regclass;
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO cols
    FROM pg_attribute WHERE attrelid = src AND attnum > 0 AND NOT attisdropped
      AND attgenerated = '';
    EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s',
                   new, cols, cols, old);
    EXECUTE format('SELECT greatest((SELECT max(id) FROM %s),'
                   ' pg_sequence_last_value(pg_get_serial_sequence(%L, ''id'')::regclass))',
                   new, old) INTO v;
    IF v > 0 THEN
        PERFORM setval(pg_get_serial_sequence(new, 'id'), v);
    END IF;
    IF obj_description(src, 'pg_class') IS NOT NULL THEN
        EXECUTE format('COMMENT ON TABLE %s IS %L', dst, obj_description(src, 'pg_class'));
    END IF;
    FOR r IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = dst AND a.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', dst, CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                       ELSE quote_ident(r.grantee::regrole::text) END);
    END LOOP;
    FOR r IN SELECT a.grantee, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = src AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON %s TO %s', r.privilege_type, dst,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC'
                       ELSE quote_ident(r.grantee::regrole::text) END);
    END LOOP;
    IF (SELECT relrowsecurity FROM pg_class WHERE oid = src) THEN
        EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', dst);
    END IF;
    IF (SELECT relforcerowsecurity FROM pg_class WHERE oid = src) THEN
        EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', dst);
    END IF;
    FOR r IN SELECT p.polname, p.polpermissive, p.polcmd,
                    pg_get_expr(p.polqual, p.polrelid) AS q,
                    pg_get_expr(p.polwithcheck, p.polrelid) AS w,
                    (SELECT string_agg(CASE WHEN x = 0 THEN 'PUBLIC'
                                       ELSE quote_ident(x::regrole::text) END, ', ')
                     FROM unnest(p.polroles) x) AS roles
             FROM pg_policy p WHERE p.polrelid = src LOOP
        EXECUTE format('CREATE POLICY %I ON %s AS %s FOR %s TO %s %s %s', r.polname, dst,
            CASE WHEN r.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
            CASE r.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                          WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
            r.roles,
            coalesce('USING (' || replace(r.q, quote_ident(tbl || '_old') || '.',
                                          quote_ident(tbl) || '.') || ')', ''),
            coalesce('WITH CHECK (' || replace(r.w, quote_ident(tbl || '_old') || '.',
                                               quote_ident(tbl) || '.') || ')', ''));
    END LOOP;
    FOR r IN SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
             WHERE t.tgrelid = src AND NOT t.tgisinternal LOOP
        EXECUTE replace(r.def, ' ON ' || src::text || ' ', ' ON ' || dst::text || ' ');
    END LOOP;
    EXECUTE format('DROP TABLE %s', old);
END
$$
"""

# One partition per district, and DEFAULT.
_DISTRICTS = """
DO $$
DECLARE d bigint;
BEGIN
    FOR d IN SELECT id FROM twin.admin_area WHERE level = 'district' ORDER BY id LOOP
        EXECUTE format('CREATE TABLE twin_part.%I PARTITION OF twin.person FOR VALUES IN (%s)',
                       'person_d' || d, d);
    END LOOP;
    CREATE TABLE twin_part.person_default PARTITION OF twin.person DEFAULT;
END
$$
"""

# The home district of each resident: above the home building's area, else above the grid
# patch holding most of the home cell.
_FILL_DISTRICT = """
WITH RECURSIVE d(area, district) AS (
    SELECT id, id FROM twin.admin_area WHERE level = 'district'
    UNION ALL
    SELECT a.id, d.district FROM twin.admin_area a JOIN d ON a.parent_id = d.area
),
by_building AS (
    SELECT b.id, d.district FROM twin.building b JOIN d ON d.area = b.area_id
),
by_cell AS (
    SELECT DISTINCT ON (c.cell) c.cell, d.district
    FROM twin.admin_area_cell c JOIN d ON d.area = c.area_id
    ORDER BY c.cell, c.share DESC, d.district
)
UPDATE twin.person p
SET district_id = coalesce(
    (SELECT x.district FROM by_building x WHERE x.id = p.home_building_id),
    (SELECT y.district FROM by_cell y WHERE y.cell = p.home_cell), 0)
WHERE p.home_building_id IS NOT NULL OR p.home_cell IS NOT NULL
"""

# Months of a history table: from the oldest row's (at most MONTHS_BACK back) to MONTHS_AHEAD
# ahead, with the open-ended edges.
_MONTHLY = """
DO $$
DECLARE
    t text := '{table}';
    now_m date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
    lo date;
    hi date := (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '{ahead} months')::date;
    m date;
BEGIN
    EXECUTE format('SELECT date_trunc(''month'', min(%I) AT TIME ZONE ''UTC'')::date'
                   ' FROM twin_part.%I', '{column}', t || '_old') INTO lo;
    lo := least(greatest(coalesce(lo, now_m), (now_m - interval '{back} months')::date), now_m);
    EXECUTE format('CREATE TABLE twin_part.%I PARTITION OF twin.%I'
                   ' FOR VALUES FROM (MINVALUE) TO (%L)', t || '_before', t,
                   lo::timestamp AT TIME ZONE 'UTC');
    m := lo;
    WHILE m < hi LOOP
        EXECUTE format('CREATE TABLE twin_part.%I PARTITION OF twin.%I'
                       ' FOR VALUES FROM (%L) TO (%L)', t || '_p' || to_char(m, 'YYYYMM'), t,
                       m::timestamp AT TIME ZONE 'UTC',
                       (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        m := (m + interval '1 month')::date;
    END LOOP;
    EXECUTE format('CREATE TABLE twin_part.%I PARTITION OF twin.%I'
                   ' FOR VALUES FROM (%L) TO (MAXVALUE)', t || '_after', t,
                   hi::timestamp AT TIME ZONE 'UTC');
END
$$
"""

_FORGET = """
CREATE FUNCTION twin.event_forget_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE twin.task SET event_id = NULL WHERE event_id IN (SELECT id FROM gone);
    RETURN NULL;
END
$$
"""
_FORGET_TRIGGER = (
    "CREATE TRIGGER event_forget_tasks AFTER DELETE ON twin.event REFERENCING OLD TABLE AS gone"
    " FOR EACH STATEMENT EXECUTE FUNCTION twin.event_forget_tasks()"
)


def _helpers() -> None:
    op.execute(_CLONE)
    op.execute(_FILL)


def upgrade() -> None:
    op.execute("CREATE SCHEMA IF NOT EXISTS twin_part")
    op.execute("REVOKE ALL ON SCHEMA twin_part FROM PUBLIC")
    _helpers()
    op.execute("ALTER TABLE twin.task DROP CONSTRAINT fk_task_event_id_event")
    op.execute(f"COMMENT ON COLUMN twin.task.event_id IS '{EVENT_ID_COMMENT}'")

    op.execute("ALTER TABLE twin.person ADD COLUMN district_id bigint NOT NULL DEFAULT 0")
    op.execute(f"COMMENT ON COLUMN twin.person.district_id IS '{DISTRICT_COMMENT}'")
    op.execute(_FILL_DISTRICT)
    op.execute("SELECT pg_temp.p23_clone('person', 'PARTITION BY LIST (district_id)',"
               " 'id, district_id')")  # fmt: skip
    op.execute(_DISTRICTS)
    op.execute("SELECT pg_temp.p23_fill('person')")

    for table, column in HISTORY.items():
        op.execute(f"SELECT pg_temp.p23_clone('{table}', 'PARTITION BY RANGE ({column})',"
                   f" 'id, {column}')")  # fmt: skip
        if table in BTREE_TIME:
            op.execute(f"DROP INDEX twin.{BTREE_TIME[table]}")
        op.execute(f"CREATE INDEX ix_{table}_{column} ON twin.{table} USING brin ({column})")
        op.execute(_MONTHLY.format(table=table, column=column, back=MONTHS_BACK,
                                   ahead=MONTHS_AHEAD + 1))  # fmt: skip
        op.execute(f"SELECT pg_temp.p23_fill('{table}')")
    op.execute(_FORGET)
    op.execute(_FORGET_TRIGGER)


def downgrade() -> None:
    _helpers()
    op.execute("DROP TRIGGER IF EXISTS event_forget_tasks ON twin.event")
    op.execute("DROP FUNCTION IF EXISTS twin.event_forget_tasks()")
    for table, column in HISTORY.items():
        op.execute(f"SELECT pg_temp.p23_clone('{table}', '', 'id')")
        op.execute(f"DROP INDEX twin.ix_{table}_{column}")
        if table in BTREE_TIME:
            op.execute(f"CREATE INDEX {BTREE_TIME[table]} ON twin.{table} ({column})")
        op.execute(f"SELECT pg_temp.p23_fill('{table}')")
    op.execute("SELECT pg_temp.p23_clone('person', '', 'id')")
    op.execute("SELECT pg_temp.p23_fill('person')")
    op.execute("ALTER TABLE twin.person DROP COLUMN district_id")
    op.execute("UPDATE twin.task t SET event_id = NULL WHERE event_id IS NOT NULL"
               " AND NOT EXISTS (SELECT 1 FROM twin.event e WHERE e.id = t.event_id)")  # fmt: skip
    op.execute("COMMENT ON COLUMN twin.task.event_id IS NULL")
    op.execute("ALTER TABLE twin.task ADD CONSTRAINT fk_task_event_id_event FOREIGN KEY"
               " (event_id) REFERENCES twin.event (id) ON DELETE SET NULL")  # fmt: skip
