"""Daily partitions of twin.observation (migration 0017, twin.sense.partitions) on a real
PostGIS: made ahead, detached past the retention, DEFAULT catching what no partition covers
and handing it over when its partition is made; the migration round-trips with the data, ids,
policies and grants. Days are passed explicitly (far from the clock, so the partitions the
migration made around today do not interfere); expectations come from the catalogs.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import psycopg
import pytest
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from twin.db.migrate import alembic_config, downgrade, upgrade
from twin.sense import partitions, rollups

REVISION = "0017_observation_partitions"


@pytest.fixture(scope="module")
def db(make_database: Callable[..., str]) -> str:
    url: str = make_database("twin_parts")
    upgrade(url)
    return url


def connect(db: str) -> psycopg.Connection:
    conn = psycopg.connect(db, autocommit=True)
    conn.execute("SET TimeZone = 'UTC'")
    return conn


def sensor(conn: psycopg.Connection, code: str) -> int:
    row = conn.execute(
        "INSERT INTO twin.sensor (code, kind, unit) VALUES (%s, 'rain_gauge', 'mm/h') RETURNING id",
        (code,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def where(conn: psycopg.Connection, ident: int) -> str:
    """The partition holding observation ``ident``."""
    row = conn.execute(
        "SELECT tableoid::regclass::text FROM twin.observation WHERE id = %s", (ident,)
    ).fetchone()
    assert row is not None
    return str(row[0])


def attached(conn: psycopg.Connection) -> dict[str, str]:
    """Partition name -> its bound, from pg_inherits/pg_class."""
    return dict(conn.execute(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i"
        " JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'twin.observation'::regclass"
    ).fetchall())  # fmt: skip


def insert(conn: psycopg.Connection, s: int, at: str, value: float = 1.0) -> int | None:
    row = conn.execute(
        "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)"
        " ON CONFLICT DO NOTHING RETURNING id",
        (s, at, value),
    ).fetchone()
    return int(row[0]) if row else None


def test_the_migration_partitions_observation(db: str) -> None:
    with connect(db) as conn:
        kind = conn.execute(
            "SELECT relkind, pg_get_partkeydef(oid) FROM pg_class"
            " WHERE oid = 'twin.observation'::regclass"
        ).fetchone()
        assert kind == ("p", "RANGE (observed_at)")
        bounds = attached(conn)
        assert bounds["observation_default"] == "DEFAULT"
        # the API's role reaches partitions only through the parent
        usage = conn.execute("SELECT has_schema_privilege('twin_api', 'twin_part', 'USAGE')")
        assert usage.fetchone() == (False,)
        assert conn.execute(
            "SELECT has_table_privilege('twin_api', 'twin.observation', 'INSERT')"
        ).fetchone() == (True,)


def test_ensure_makes_the_days_ahead_once(db: str) -> None:
    with connect(db) as conn:
        made = partitions.ensure(conn, today=date(2031, 3, 10), ahead_days=3)
        names = [f"observation_p203103{d:02d}" for d in range(9, 14)]
        assert made == dict.fromkeys(names, 0)
        bounds = attached(conn)
        assert bounds["observation_p20310310"] == (
            "FOR VALUES FROM ('2031-03-10 00:00:00+00') TO ('2031-03-11 00:00:00+00')"
        )
        assert partitions.ensure(conn, today=date(2031, 3, 10), ahead_days=3) == {}
        listed = {p.name: p for p in partitions.partitions(conn)}
        assert all(listed[n].state == "attached" for n in names)
        assert listed["observation_p20310313"].day == date(2031, 3, 13)
        # an index per partition for the key, so ON CONFLICT works as before
        s = sensor(conn, "part-ahead")
        first = insert(conn, s, "2031-03-10T12:00:00Z")
        assert first is not None and where(conn, first) == "twin_part.observation_p20310310"
        assert insert(conn, s, "2031-03-10T12:00:00Z", 5.0) is None


def test_a_reading_no_partition_covers_waits_in_default_then_moves(db: str) -> None:
    with connect(db) as conn:
        s = sensor(conn, "part-default")
        future = insert(conn, s, "2035-06-01T12:30:00Z", 3.0)
        past = insert(conn, s, "2001-01-01T08:00:00Z", 4.0)
        assert future is not None and past is not None
        assert where(conn, future) == where(conn, past) == "twin_part.observation_default"
        made = partitions.ensure(conn, today=date(2035, 6, 1), ahead_days=1)
        assert made["observation_p20350601"] == 1
        assert where(conn, future) == "twin_part.observation_p20350601"
        row = conn.execute(
            "SELECT id, value FROM twin.observation WHERE sensor_id = %s AND observed_at = %s",
            (s, "2035-06-01T12:30:00Z"),
        ).fetchone()
        assert row == (future, 3.0)  # same id, same reading
        assert insert(conn, s, "2035-06-01T12:30:00Z", 9.0) is None  # still a replay
        # within the retention, a day waiting in DEFAULT gets its partition
        made = partitions.ensure(conn, today=date(2001, 1, 5), ahead_days=0, retention_days=10)
        assert made["observation_p20010101"] == 1
        assert where(conn, past) == "twin_part.observation_p20010101"


def test_detach_past_the_retention_keeps_the_rollups(db: str) -> None:
    with connect(db) as conn:
        s = sensor(conn, "part-detach")
        partitions.ensure(conn, today=date(2003, 5, 10), ahead_days=0)
        for at in ("2003-05-09T10:00:00Z", "2003-05-09T10:07:00Z", "2003-05-10T01:00:00Z",
                   "2003-05-16T00:00:00Z"):  # fmt: skip
            insert(conn, s, at, 2.0)
        old_default = insert(conn, s, "2003-05-02T05:00:00Z", 7.0)  # no partition: DEFAULT
        assert old_default is not None and where(conn, old_default).endswith("default")
        rollups.refresh_all(conn, res=9)
        kept = conn.execute(
            "SELECT bucket, n FROM twin.observation_1h WHERE sensor_id = %s ORDER BY 1", (s,)
        ).fetchall()
        cutoff = date(2003, 5, 15)  # today 2003-05-20, 5 days kept
        older = {n for n, b in attached(conn).items()
                 if (d := partitions.day_of(n)) is not None and d < cutoff}  # fmt: skip
        assert {"observation_p20030509", "observation_p20030510"} <= older
        done = partitions.detach(conn, today=date(2003, 5, 20), retention_days=5)
        assert set(done) == older | {"observation_p20030502"}
        assert (done["observation_p20030509"], done["observation_p20030510"]) == (2, 1)
        assert done["observation_p20030502"] == 1
        assert not older & set(attached(conn))
        left = conn.execute(
            "SELECT observed_at::text FROM twin.observation WHERE sensor_id = %s", (s,)
        ).fetchall()
        assert left == [("2003-05-16 00:00:00+00",)]  # the rest went with their days
        # detached days stay as plain tables in twin_part, rows and all
        n = conn.execute("SELECT count(*) FROM twin_part.observation_p20030509").fetchone()
        assert n == (2,)
        assert conn.execute("SELECT count(*) FROM twin_part.observation_p20030502").fetchone() == (
            1,
        )
        states = {p.name: p.state for p in partitions.partitions(conn)}
        assert states["observation_p20030509"] == states["observation_p20030502"] == "detached"
        # a late reading of a detached day: stored (DEFAULT), its roll-ups stay as they were
        late = insert(conn, s, "2003-05-09T10:01:00Z", 100.0)
        assert late is not None and where(conn, late).endswith("default")
        rollups.refresh_all(conn, res=9)
        assert (
            conn.execute(
                "SELECT bucket, n FROM twin.observation_1h WHERE sensor_id = %s ORDER BY 1", (s,)
            ).fetchall()
            == kept
        )
        # dropping: the late reading's day is taken out of DEFAULT and deleted
        done = partitions.detach(conn, today=date(2003, 5, 20), retention_days=5, drop=True)
        assert done == {"observation_p20030509": 1}
        assert conn.execute(
            "SELECT rows, dropped FROM twin.observation_detached WHERE day = '2003-05-09'"
        ).fetchone() == (3, False)  # its detached table (2 rows) is still there
        assert conn.execute("SELECT count(*) FROM twin_part.observation_p20030509").fetchone() == (
            2,
        )


def test_detach_can_drop(db: str) -> None:
    with connect(db) as conn:
        s = sensor(conn, "part-drop")
        partitions.ensure(conn, today=date(2004, 1, 10), ahead_days=0)
        insert(conn, s, "2004-01-09T03:00:00Z")
        done = partitions.detach(conn, today=date(2004, 2, 1), retention_days=20, drop=True)
        ours = {k: done.pop(k) for k in ("observation_p20040109", "observation_p20040110")}
        assert ours == {"observation_p20040109": 1, "observation_p20040110": 0}
        assert all((partitions.day_of(k) or date.max) < date(2004, 1, 12) for k in done)
        assert conn.execute("SELECT to_regclass('twin_part.observation_p20040109')").fetchone() == (
            None,
        )
        assert conn.execute(
            "SELECT rows, dropped FROM twin.observation_detached WHERE day = '2004-01-09'"
        ).fetchone() == (1, True)
        states = {p.name: p.state for p in partitions.partitions(conn)}
        assert states["observation_p20040110"] == "dropped"
        with pytest.raises(ValueError, match="retention_days"):
            partitions.detach(conn, today=date(2004, 2, 1), retention_days=0)


def test_cli_shows_and_maintains(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from twin.cli import app

    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    r = CliRunner().invoke(app, ["sense", "partitions", "--ensure", "--ahead", "2",
                                 "--today", "2040-02-28", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert set(out["made"]) == {"observation_p20400227", "observation_p20400228",
                                "observation_p20400229", "observation_p20400301"}  # fmt: skip
    states = {p["name"]: p["state"] for p in out["partitions"]}
    assert states["observation_default"] == "default"
    assert states["observation_p20400229"] == "attached"
    r = CliRunner().invoke(app, ["sense", "partitions", "--today", "someday"])
    assert r.exit_code == 2 and "--today" in r.output


def _before(revision: str) -> str:
    script = ScriptDirectory.from_config(alembic_config("postgresql://"))
    down = script.get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


def _shape(conn: psycopg.Connection) -> dict[str, object]:
    return {
        "rows": conn.execute(
            "SELECT id, sensor_id, observed_at, value FROM twin.observation ORDER BY id"
        ).fetchall(),
        "policies": conn.execute(
            "SELECT policyname, cmd, qual FROM pg_policies"
            " WHERE schemaname = 'twin' AND tablename = 'observation'"
        ).fetchall(),
        "rls": conn.execute(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE oid = 'twin.observation'::regclass"
        ).fetchone(),
        "grants": sorted(
            conn.execute(
                "SELECT grantee, privilege_type FROM information_schema.role_table_grants"
                " WHERE table_schema = 'twin' AND table_name = 'observation'"
                " AND grantee <> current_user"
            ).fetchall()
        ),
        "comment": conn.execute(
            "SELECT d.description FROM pg_attribute a JOIN pg_description d"
            " ON d.objoid = a.attrelid AND d.objsubid = a.attnum"
            " WHERE a.attrelid = 'twin.observation'::regclass AND a.attname = 'observed_until'"
        ).fetchone(),
    }


def test_the_migration_round_trips_with_data(make_database: Callable[..., str]) -> None:
    url = make_database("twin_parts_mig")
    before = _before(REVISION)
    upgrade(url, before)
    with connect(url) as conn:
        s = sensor(conn, "mig")
        for at in ("2026-01-01T00:00:00Z", "2026-01-01T00:05:00Z", "2026-01-03T12:00:00Z"):
            insert(conn, s, at)
        conn.execute("DELETE FROM twin.observation WHERE observed_at = '2026-01-01T00:05:00Z'")
        # a policy and a grant of someone else's making are carried over
        conn.execute("ALTER TABLE twin.observation ENABLE ROW LEVEL SECURITY")
        conn.execute("CREATE POLICY mig_policy ON twin.observation FOR SELECT USING (value > 0)")
        conn.execute("REVOKE DELETE ON twin.observation FROM twin_api")
        shape = _shape(conn)
        last = conn.execute("SELECT max(id) FROM twin.observation").fetchone()
    assert shape["policies"] and shape["rls"] == (True, False)
    upgrade(url)
    with connect(url) as conn:
        assert _shape(conn) == shape
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'twin.observation'::regclass"
        ).fetchone() == ("p",)
        names = set(attached(conn))
        assert {"observation_p20260101", "observation_p20260103"} <= names
        # the identity goes on after the highest id ever given (2 was deleted, 3 is the max)
        new = insert(conn, s, "2026-01-03T13:00:00Z")
        assert last is not None and new == last[0] + 1
        assert conn.execute(
            "SELECT count(*) FROM twin.observation_rollup_queue WHERE sensor_id = %s", (s,)
        ).fetchone() == (3,)
        shape = _shape(conn)
    downgrade(url, before)
    with connect(url) as conn:
        assert _shape(conn) == shape
        assert conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'twin.observation'::regclass"
        ).fetchone() == ("r",)
        assert conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'twin_part'"
        ).fetchone() == (0,)
    upgrade(url)
    with connect(url) as conn:
        assert _shape(conn) == shape
