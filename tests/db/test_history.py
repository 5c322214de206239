"""Monthly partitions of twin.event, twin.task_transition and twin.audit_log (migration 0023,
twin.db.history) on a real PostGIS: months made ahead out of the open-ended last partition,
old months detached CONCURRENTLY past the retention without touching newer rows, row-level
security through the parent and none through the partitions, the change feed still reading
task transitions. Days are passed explicitly; expectations come from the catalogs and from
checksums of the rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from psycopg import sql

from twin.db import history
from twin.db import partitions as parts
from twin.db.migrate import upgrade
from twin.db.queries import query

TODAY = datetime.now(UTC).date()


@pytest.fixture(scope="module")
def db(make_database: Callable[..., str]) -> str:
    url: str = make_database("twin_history")
    upgrade(url)
    return url


@pytest.fixture
def conn(db: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(db, autocommit=True) as c:
        c.execute("SET TimeZone = 'UTC'")
        yield c


def area(conn: psycopg.Connection, code: str) -> int:
    row = conn.execute(
        "INSERT INTO twin.admin_area (level, code, name, geom) VALUES ('district', %s, %s,"
        " ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326))) RETURNING id",
        (code, code),
    ).fetchone()
    assert row is not None
    return int(row[0])


def event(conn: psycopg.Connection, at: datetime, area_id: int | None = None) -> int:
    row = conn.execute(
        "INSERT INTO twin.event (type, source, occurred_at, area_id, geom) VALUES"
        " ('test', 'import', %s, %s, ST_SetSRID(ST_MakePoint(0.5, 0.5), 4326)) RETURNING id",
        (at, area_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def where(conn: psycopg.Connection, ident: int) -> str:
    row = conn.execute(
        "SELECT tableoid::regclass::text FROM twin.event WHERE id = %s", (ident,)
    ).fetchone()
    assert row is not None
    return str(row[0])


def checksum(conn: psycopg.Connection, ids: list[int]) -> tuple[int, str]:
    row = conn.execute(
        "SELECT count(*), md5(string_agg(e::text, '|' ORDER BY e.id)) FROM twin.event e"
        " WHERE e.id = ANY (%s)",
        (ids,),
    ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def at(month: date, day: int = 15) -> datetime:
    return datetime(month.year, month.month, day, 12, tzinfo=UTC)


def test_the_migration_lays_out_months_without_a_default(conn: psycopg.Connection) -> None:
    for table in history.TABLES:
        children = parts.children(conn, table)
        assert not any(c.default for c in children), "DETACH CONCURRENTLY needs no DEFAULT"
        names = {c.name for c in children}
        now = history.month_start(TODAY)
        assert {f"{table}_before", f"{table}_after", history.month_name(table, now),
                history.month_name(table, history.add_months(now, 3))} <= names  # fmt: skip
        brin = conn.execute(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'twin' AND tablename = %s"
            " AND indexdef LIKE '%%USING brin (' || %s || ')'",
            (table, history.TABLES[table]),
        ).fetchone()
        assert brin == (1,)


def test_ensure_cuts_months_ahead_out_of_the_last_partition(conn: psycopg.Connection) -> None:
    now = history.month_start(TODAY)
    far = history.add_months(now, 8)
    later = event(conn, at(far))
    assert where(conn, later) == "twin_part.event_after"
    made = history.ensure(conn, "event", today=far, ahead_months=1)
    assert made[history.month_name("event", far)] == 1
    assert history.month_name("event", history.add_months(far, 1)) in made
    assert where(conn, later) == f"twin_part.{history.month_name('event', far)}"
    assert history.ensure(conn, "event", today=far, ahead_months=1) == {}
    months = sorted(m for c in parts.children(conn, "event")
                    if (m := history.month_of("event", c.name)))  # fmt: skip
    assert months == [history.add_months(months[0], k) for k in range(len(months))]


@pytest.fixture
def own(make_database: Callable[..., str]) -> Iterator[psycopg.Connection]:
    """A database of its own: the retention test takes months out for good."""
    url: str = make_database("twin_history_ret")
    upgrade(url)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("SET TimeZone = 'UTC'")
        yield c


def test_retention_detaches_old_months_and_keeps_newer_rows(own: psycopg.Connection) -> None:
    conn = own
    # A clock 14 months on: the months up to then are made, the first one falls out.
    later = history.add_months(history.month_start(TODAY), 14)
    history.ensure(conn, "event", today=later, ahead_months=0)
    first = min(m for c in parts.children(conn, "event")
                if (m := history.month_of("event", c.name)))  # fmt: skip
    ancient = event(conn, datetime(1990, 5, 1, tzinfo=UTC))  # -> event_before
    old = event(conn, at(first))  # the first month's partition
    recent = [event(conn, at(later, d)) for d in (1, 2, 3)]
    assert where(conn, ancient) == "twin_part.event_before"
    before = checksum(conn, recent)
    cutoff_days = (later - history.next_month(first)).days  # the first month ends on the cutoff
    done = history.detach(conn, "event", today=later, retention_days=cutoff_days)
    assert done[history.month_name("event", first)] >= 1
    assert any(n.startswith("event_before_") for n in done)
    assert checksum(conn, recent) == before, "newer rows untouched"
    gone = conn.execute(
        "SELECT count(*) FROM twin.event WHERE id = ANY (%s)", ([old, ancient],)
    ).fetchone()
    assert gone == (0,)
    kept = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE id = %s").format(
            parts.part(history.month_name("event", first))
        ),
        (old,),
    ).fetchone()
    assert kept == (1,), "a detached month stays in twin_part"
    names = {c.name for c in parts.children(conn, "event")}
    assert history.month_name("event", first) not in names
    assert "event_before" in names, "an empty _before covers up to the first month kept"
    kept_tables = parts.plain_tables(conn, "event_")
    again = history.detach(conn, "event", today=later, retention_days=cutoff_days)
    assert again == {} and parts.plain_tables(conn, "event_") == kept_tables, "a no-op"
    late = event(conn, datetime(1991, 1, 1, tzinfo=UTC))  # old rows still have a home
    assert where(conn, late) == "twin_part.event_before"
    states = {p.name: p.state for p in history.partitions(conn, "event")}
    assert states[history.month_name("event", first)] == "detached"


def test_detach_refuses_a_transaction(db: str) -> None:
    with psycopg.connect(db) as c, pytest.raises(ValueError, match="autocommit"):
        history.detach(c, "event", today=TODAY, retention_days=30)


def test_scoped_callers_see_their_rows_and_never_the_partitions(conn: psycopg.Connection) -> None:
    mine, other = area(conn, "hist-mine"), area(conn, "hist-other")
    a, b = event(conn, at(history.month_start(TODAY)), mine), event(conn, at(TODAY), other)
    assert conn.execute(
        "SELECT has_schema_privilege('twin_api', 'twin_part', 'USAGE')"
    ).fetchone() == (False,)
    with conn.transaction():
        conn.execute(
            "SELECT set_config('role', 'twin_api', true), set_config('twin.scope', %s, true)",
            (str(mine),),
        )
        seen = {r[0] for r in conn.execute(
            "SELECT id FROM twin.event WHERE id = ANY (%s)", ([a, b],))}  # fmt: skip
        assert seen == {a}
        name = history.month_name("event", history.month_start(TODAY))
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(sql.SQL("SELECT count(*) FROM {}").format(parts.part(name)))


def test_the_change_feed_reads_partitioned_transitions(conn: psycopg.Connection) -> None:
    district = area(conn, "hist-feed")
    row = conn.execute(
        "INSERT INTO twin.task (title, area_id) VALUES ('feed', %s) RETURNING id", (district,)
    ).fetchone()
    assert row is not None
    task = int(row[0])
    conn.execute(
        "INSERT INTO twin.task_transition (task_id, to_state, at) VALUES (%s, 'open', %s),"
        " (%s, 'accepted', %s)",
        (task, datetime(1995, 1, 1, tzinfo=UTC), task, datetime.now(UTC) + timedelta(days=1)),
    )
    rows = conn.execute(
        query("feed.sql", "transitions"),
        {
            "tx": 0,
            "kind": 0,
            "id": 0,
            "lo": "1:1:",
            "lo_xip": [],
            "from_tx": 1,
            "hi": f"{2**62 + 1}:{2**62 + 1}:",
            "hi_xmax": 2**62 + 1,
            "limit": 1000,
        },
    ).fetchall()
    assert [r[4] for r in rows if r[2] == task] == ["open", "accepted"]
    held = {
        r[0]
        for r in conn.execute(
            "SELECT tableoid::regclass::text FROM twin.task_transition WHERE task_id = %s", (task,)
        )
    }
    assert "twin_part.task_transition_before" in held and len(held) == 2


def test_cli_lists_and_maintains(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from twin.cli import app

    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    monkeypatch.setenv("TWIN_AUDIT_RETENTION_DAYS", "400")
    r = CliRunner().invoke(
        app, ["db", "partitions", "--ensure", "--detach", "--today", TODAY.isoformat(), "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["detached"] == {}  # nothing of the audit trail is 400 days old
    states = {(p["table"], p["name"]): p["state"] for p in out["partitions"]}
    month = history.month_start(TODAY)
    for table in history.TABLES:
        assert states[(table, history.month_name(table, month))] == "attached"
    assert states[("person", "person_default")] == "attached"
    r = CliRunner().invoke(app, ["db", "partitions", "--today", "someday"])
    assert r.exit_code == 2 and "--today" in r.output
