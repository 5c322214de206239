"""observation_partitions: twin.observation partitioned by day of phenomenon time; roll-ups

Revision ID: 0017_observation_partitions
Revises: 0016_sense_devices
Create Date: 2026-12-04

``twin.observation`` becomes a table partitioned by RANGE of ``observed_at``: one partition per
UTC day and a DEFAULT partition, so no reading is refused for lack of a partition. Partitions
live in schema ``twin_part``, which the API's role cannot use: every read and write goes through
the parent, under its grants and row-level security. The data, ids, identity, constraints
(a unique key must hold the partition key: ``unique (id)`` becomes ``unique (id,
observed_at)``), comments, grants, policies and triggers are carried over; a foreign key that
points at ``observation`` would stop the migration with a message (none does here).

Roll-ups of the readings (``observation_5min``, ``observation_1h`` per datastream,
``observation_cell_5min``, ``observation_cell_1h`` per H3 cell) are kept from a queue of touched
(sensor, hour) that statement triggers on ``observation`` append to (no unique key: writers
never wait on each other there); ``observation_detached``
records the days detached past the retention. The existing readings are queued, so the first
refresh builds their roll-ups.

Downgrade restores a plain table with every attached reading; detached partitions are left
in ``twin_part`` (the schema is dropped only when empty).
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017_observation_partitions"
down_revision: str | None = "0016_sense_devices"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

S = "twin"
COLUMNS = ("sensor_id, observed_at, value, quality, id, observed_until, result_time, feature_id,"
           " parameters")  # fmt: skip

# Refuse when something references observation: a partitioned table can only be referenced
# through a unique key holding observed_at, which no such reference would have.
_NO_REFERENCES = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conname, conrelid::regclass AS src FROM pg_constraint
             WHERE contype = 'f' AND confrelid = '{table}'::regclass
               AND conrelid <> '{table}'::regclass LOOP
        RAISE EXCEPTION 'foreign key % on % references twin.observation: a partitioned '
            'table is referenced only through a key holding observed_at; adapt it first',
            r.conname, r.src;
    END LOOP;
END
$$
"""

# Comments, grants, row-level security, policies and triggers of one table onto another.
_CARRY = """
DO $$
DECLARE
    src regclass := '{src}'::regclass;
    dst regclass := '{dst}'::regclass;
    r record;
BEGIN
    FOR r IN SELECT a.attname, d.description FROM pg_attribute a
             JOIN pg_description d ON d.objoid = a.attrelid AND d.objsubid = a.attnum
             WHERE a.attrelid = src AND d.classoid = 'pg_class'::regclass LOOP
        EXECUTE format('COMMENT ON COLUMN %s.%I IS %L', dst, r.attname, r.description);
    END LOOP;
    IF obj_description(src, 'pg_class') IS NOT NULL THEN
        EXECUTE format('COMMENT ON TABLE %s IS %L', dst, obj_description(src, 'pg_class'));
    END IF;
    -- Grants: exactly those of the source (the defaults of the schema may have given more).
    FOR r IN SELECT DISTINCT a.grantee FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = dst AND a.grantee <> c.relowner LOOP
        EXECUTE format('REVOKE ALL ON %s FROM %s', dst,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.grantee::regrole::text) END);
    END LOOP;
    FOR r IN SELECT a.grantee, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a
             WHERE c.oid = src AND a.grantee <> c.relowner LOOP
        EXECUTE format('GRANT %s ON %s TO %s', r.privilege_type, dst,
                       CASE WHEN r.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.grantee::regrole::text) END);
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
            r.roles, coalesce('USING (' || r.q || ')', ''),
            coalesce('WITH CHECK (' || r.w || ')', ''));
    END LOOP;
    FOR r IN SELECT pg_get_triggerdef(t.oid) AS def FROM pg_trigger t
             WHERE t.tgrelid = src AND NOT t.tgisinternal LOOP
        EXECUTE replace(r.def, ' ON ' || src::text || ' ', ' ON ' || dst::text || ' ');
    END LOOP;
END
$$
"""

# The identity of dst continues where src's ended (and above every id copied).
_IDENTITY = """
SELECT setval(pg_get_serial_sequence('{dst}', 'id'), v)
FROM (SELECT greatest((SELECT max(id) FROM {dst}),
                      (SELECT pg_sequence_last_value(pg_get_serial_sequence('{src}', 'id'))))
      AS v) x
WHERE v > 0
"""

# One partition per UTC day holding readings, and [today - 1, today + 7].
_DAILY = """
DO $$
DECLARE d date;
BEGIN
    FOR d IN SELECT DISTINCT (observed_at AT TIME ZONE 'UTC')::date FROM {src}
             UNION
             SELECT g::date FROM generate_series((now() AT TIME ZONE 'UTC')::date - 1,
                                                 (now() AT TIME ZONE 'UTC')::date + 7,
                                                 interval '1 day') g
             ORDER BY 1 LOOP
        EXECUTE format('CREATE TABLE twin_part.%I PARTITION OF twin.observation'
                       ' FOR VALUES FROM (%L) TO (%L)', 'observation_p' || to_char(d, 'YYYYMMDD'),
                       d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END
$$
"""

_TOUCH = """
CREATE FUNCTION twin.observation_rollup_touch() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO twin.observation_rollup_queue (sensor_id, hour)
        SELECT DISTINCT n.sensor_id,
               date_bin('1 hour', n.observed_at, timestamptz '2000-01-01 00:00:00+00')
        FROM new_rows n;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO twin.observation_rollup_queue (sensor_id, hour)
        SELECT DISTINCT o.sensor_id,
               date_bin('1 hour', o.observed_at, timestamptz '2000-01-01 00:00:00+00')
        FROM old_rows o;
    END IF;
    RETURN NULL;
END
$$
"""

_TRIGGERS = (
    "CREATE TRIGGER rollup_touch_insert AFTER INSERT ON twin.observation"
    " REFERENCING NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION twin.observation_rollup_touch()",
    "CREATE TRIGGER rollup_touch_update AFTER UPDATE ON twin.observation"
    " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION twin.observation_rollup_touch()",
    "CREATE TRIGGER rollup_touch_delete AFTER DELETE ON twin.observation"
    " REFERENCING OLD TABLE AS old_rows"
    " FOR EACH STATEMENT EXECUTE FUNCTION twin.observation_rollup_touch()",
)
_TRIGGER_NAMES = ("rollup_touch_insert", "rollup_touch_update", "rollup_touch_delete")


def _observation_columns() -> list[Any]:
    return [
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), nullable=True),
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("observed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("feature_id", sa.BigInteger(), nullable=True),
        sa.Column("parameters", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(["sensor_id"], ["twin.sensor.id"], ondelete="CASCADE",
                                name="fk_observation_sensor_id_sensor"),
        sa.ForeignKeyConstraint(["feature_id"], ["twin.sta_feature.id"], ondelete="SET NULL",
                                name="fk_observation_feature_id_sta_feature"),
        sa.PrimaryKeyConstraint("sensor_id", "observed_at", name="pk_observation"),
    ]  # fmt: skip


def _observation_indexes() -> None:
    op.create_index("ix_observation_observed_at", "observation", ["observed_at"], schema=S)
    op.create_index("ix_observation_feature_id", "observation", ["feature_id"], schema=S)


def _stats() -> list[sa.Column]:
    return [
        sa.Column("n", sa.Integer(), nullable=False, comment="readings in the bucket"),
        sa.Column("min", sa.Float(), nullable=False),
        sa.Column("max", sa.Float(), nullable=False),
        sa.Column("sum", sa.Float(), nullable=False),
        sa.Column("mean", sa.Float(), sa.Computed("sum / n", persisted=True), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False,
                  comment="earliest phenomenon time"),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False,
                  comment="latest phenomenon time"),
    ]  # fmt: skip


def _rollup_tables() -> None:
    for width in ("5min", "1h"):
        name = f"observation_{width}"
        op.create_table(
            name,
            *_stats(),
            sa.Column("sensor_id", sa.BigInteger(), nullable=False),
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.ForeignKeyConstraint(["sensor_id"], ["twin.sensor.id"], ondelete="CASCADE",
                                    name=f"fk_{name}_sensor_id_sensor"),
            sa.PrimaryKeyConstraint("sensor_id", "bucket", name=f"pk_{name}"),
            schema=S,
        )  # fmt: skip
        op.create_index(f"ix_{name}_bucket", name, ["bucket"], schema=S)
        name = f"observation_cell_{width}"
        op.create_table(
            name,
            sa.Column("res", sa.SmallInteger(), nullable=False),
            sa.Column("cell", sa.BigInteger(), nullable=False),
            sa.Column("kind", sa.Text(), nullable=False),
            sa.Column("unit", sa.Text(), nullable=False),
            sa.Column("bucket", sa.DateTime(timezone=True), nullable=False),
            sa.Column("datastreams", sa.Integer(), nullable=False,
                      comment="datastreams with readings"),
            *_stats(),
            sa.PrimaryKeyConstraint("res", "cell", "kind", "unit", "bucket", name=f"pk_{name}"),
            schema=S,
        )  # fmt: skip
        op.create_index(f"ix_{name}_bucket", name, ["bucket"], schema=S)
    op.create_table(
        "observation_rollup_queue",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("sensor_id", sa.BigInteger(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_observation_rollup_queue"),
        schema=S,
    )  # fmt: skip
    op.create_table(
        "observation_detached",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("partition", sa.Text(), nullable=False, comment="table in schema twin_part"),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("dropped", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("detached_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.PrimaryKeyConstraint("day", name="pk_observation_detached"),
        schema=S,
    )  # fmt: skip


def upgrade() -> None:
    old = "twin_part.observation_plain"
    op.execute("CREATE SCHEMA IF NOT EXISTS twin_part")
    op.execute("REVOKE ALL ON SCHEMA twin_part FROM PUBLIC")
    op.execute("ALTER TABLE twin.observation SET SCHEMA twin_part")
    op.execute("ALTER TABLE twin_part.observation RENAME TO observation_plain")
    op.execute(_NO_REFERENCES.format(table=old))
    op.create_table("observation", *_observation_columns(),
                    sa.UniqueConstraint("id", "observed_at", name="uq_observation_id_observed_at"),
                    schema=S, postgresql_partition_by="RANGE (observed_at)")  # fmt: skip
    _observation_indexes()
    op.execute("CREATE TABLE twin_part.observation_default PARTITION OF twin.observation DEFAULT")
    op.execute(_DAILY.format(src=old))
    op.execute(f"INSERT INTO twin.observation ({COLUMNS}) SELECT {COLUMNS} FROM {old}")
    op.execute(_IDENTITY.format(src=old, dst="twin.observation"))
    op.execute(_CARRY.format(src=old, dst="twin.observation"))
    op.execute(f"DROP TABLE {old}")

    _rollup_tables()
    op.execute(_TOUCH)
    for statement in _TRIGGERS:
        op.execute(statement)
    op.execute(
        "INSERT INTO twin.observation_rollup_queue (sensor_id, hour)"
        " SELECT DISTINCT sensor_id,"
        "  date_bin('1 hour', observed_at, timestamptz '2000-01-01 00:00:00+00')"
        " FROM twin.observation"
    )


def downgrade() -> None:
    for name in _TRIGGER_NAMES:
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON twin.observation")
    op.execute("DROP FUNCTION IF EXISTS twin.observation_rollup_touch()")
    for table in ("observation_detached", "observation_rollup_queue", "observation_cell_1h",
                  "observation_cell_5min", "observation_1h", "observation_5min"):  # fmt: skip
        op.drop_table(table, schema=S)
    parted = "twin_part.observation_partitioned"
    op.execute("ALTER TABLE twin.observation SET SCHEMA twin_part")
    op.execute("ALTER TABLE twin_part.observation RENAME TO observation_partitioned")
    op.create_table("observation", *_observation_columns(),
                    sa.UniqueConstraint("id", name="uq_observation_id"), schema=S)  # fmt: skip
    _observation_indexes()
    op.execute(f"INSERT INTO twin.observation ({COLUMNS}) SELECT {COLUMNS} FROM {parted}")
    op.execute(_IDENTITY.format(src=parted, dst="twin.observation"))
    op.execute(_CARRY.format(src=parted, dst="twin.observation"))
    op.execute(f"DROP TABLE {parted}")  # and its attached partitions
    op.execute(
        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace ="
        " 'twin_part'::regnamespace) THEN DROP SCHEMA twin_part; ELSE RAISE NOTICE"
        " 'schema twin_part keeps detached partitions of twin.observation'; END IF; END $$"
    )
