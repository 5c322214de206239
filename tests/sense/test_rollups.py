"""Roll-ups of readings (twin.sense.rollups) on a real PostGIS: after inserts (several
transactions, out of order, replays), updates, deletes and a writer committing after a later
one, the 5-minute and hourly roll-ups per datastream and per H3 cell equal the aggregates
computed straight from the raw table with GROUP BY date_bin (the expected values), and a
second refresh changes nothing. Cells are expected from the h3 library, not the database.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import h3
import psycopg
import pytest

from twin.db.migrate import upgrade
from twin.sense import rollups

RES = 9
ORIGIN = "timestamptz '2000-01-01 00:00:00+00'"


@pytest.fixture(scope="module")
def db(make_database: Callable[..., str]) -> str:
    url: str = make_database("twin_rollups")
    upgrade(url)
    return url


@pytest.fixture(scope="module")
def cells() -> dict[str, int]:
    """Two res-10 cells with one res-9 parent, and one in another res-9 cell."""
    a = h3.latlng_to_cell(30.25, 120.15, 10)
    parent = h3.cell_to_parent(a, RES)
    sibling = next(c for c in h3.cell_to_children(parent, 10) if c != a)
    other = h3.latlng_to_cell(30.30, 120.20, 10)
    assert h3.cell_to_parent(other, RES) != parent
    return {k: int(v, 16) for k, v in
            {"a": a, "b": sibling, "other": other, "parent": parent}.items()}  # fmt: skip


def connect(db: str) -> psycopg.Connection:
    conn = psycopg.connect(db, autocommit=True)
    conn.execute("SET TimeZone = 'Asia/Kolkata'")  # +05:30: buckets stay UTC whatever the zone
    return conn


def sensor(conn: psycopg.Connection, code: str, cell: int | None, kind: str = "rain_gauge",
           unit: str = "mm/h") -> int:  # fmt: skip
    row = conn.execute(
        "INSERT INTO twin.sensor (code, kind, unit, cell) VALUES (%s, %s, %s, %s) RETURNING id",
        (code, kind, unit, cell),
    ).fetchone()
    assert row is not None
    return int(row[0])


def put(conn: psycopg.Connection, rows: list[tuple[int, str, float]]) -> None:
    with conn.transaction():
        for s, at, v in rows:
            conn.execute(
                "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)"
                " ON CONFLICT DO NOTHING",
                (s, at, v),
            )


def expected_streams(conn: psycopg.Connection, width: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT sensor_id, date_bin(%s::interval, observed_at, " + ORIGIN + ") AS b, count(*),"
        " min(value), max(value), sum(value), avg(value), min(observed_at), max(observed_at)"
        " FROM twin.observation GROUP BY 1, 2 ORDER BY 1, 2",
        (width,),
    ).fetchall()


def got_streams(conn: psycopg.Connection, table: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT sensor_id, bucket, n, min, max, sum, mean, first_at, last_at FROM twin." + table
        + " ORDER BY 1, 2"
    ).fetchall()  # fmt: skip


def expected_cells(conn: psycopg.Connection, width: str, parent_of: dict[int, int]
                   ) -> list[tuple[Any, ...]]:  # fmt: skip
    """Per (res-9 parent from h3, kind, unit, bucket), straight from the raw rows."""
    raw = conn.execute(
        "SELECT s.cell, s.kind, s.unit, date_bin(%s::interval, o.observed_at, " + ORIGIN + "),"
        " o.sensor_id, o.value, o.observed_at"
        " FROM twin.observation o JOIN twin.sensor s ON s.id = o.sensor_id"
        " WHERE s.cell IS NOT NULL",
        (width,),
    ).fetchall()  # fmt: skip
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for cell, kind, unit, bucket, sid, value, at in raw:
        groups.setdefault((parent_of[cell], kind, unit, bucket), []).append((sid, value, at))
    out = []
    for key in sorted(groups):
        rows = groups[key]
        values = [v for _, v, _ in rows]
        out.append((RES, *key, len({s for s, _, _ in rows}), len(values), min(values),
                    max(values), sum(values), sum(values) / len(values),
                    min(t for *_, t in rows), max(t for *_, t in rows)))  # fmt: skip
    return out


def got_cells(conn: psycopg.Connection, table: str) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT res, cell, kind, unit, bucket, datastreams, n, min, max, sum, mean, first_at,"
        " last_at FROM twin." + table + " ORDER BY cell, kind, unit, bucket"
    ).fetchall()  # fmt: skip


def close(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w), (g, w)
        for x, y in zip(g, w, strict=True):
            assert x == (pytest.approx(y, rel=1e-12) if isinstance(y, float) else y), (g, w)


def check(conn: psycopg.Connection, cells: dict[str, int]) -> None:
    close(got_streams(conn, "observation_5min"), expected_streams(conn, "5 minutes"))
    close(got_streams(conn, "observation_1h"), expected_streams(conn, "1 hour"))
    parent_of = {c: int(h3.cell_to_parent(h3.int_to_str(c), RES), 16)
                 for c in (cells["a"], cells["b"], cells["other"])}  # fmt: skip
    close(got_cells(conn, "observation_cell_5min"), expected_cells(conn, "5 minutes", parent_of))
    close(got_cells(conn, "observation_cell_1h"), expected_cells(conn, "1 hour", parent_of))


def test_rollups_equal_direct_aggregates(db: str, cells: dict[str, int]) -> None:
    with connect(db) as conn:
        a = sensor(conn, "roll-a", cells["a"])
        b = sensor(conn, "roll-b", cells["b"])
        c = sensor(conn, "roll-c", cells["other"])
        level = sensor(conn, "roll-level", cells["a"], "water_level", "m")
        loose = sensor(conn, "roll-unplaced", None)
        put(
            conn,
            [
                (a, "2026-07-01T10:00:00Z", 1.0),
                (a, "2026-07-01T10:04:59Z", 3.0),
                (a, "2026-07-01T10:05:00Z", 2.5),
                (b, "2026-07-01T10:01:00Z", 10.0),
                (c, "2026-07-01T10:02:00Z", 7.0),
                (level, "2026-07-01T10:03:00Z", 0.4),
                (loose, "2026-07-01T10:03:00Z", 9.0),
                (a, "2026-07-01T11:59:59Z", -2.0),
            ],
        )
        got = rollups.refresh(conn, res=RES)
        assert got is not None and got.hours == 6 and got.recomputed == 6
        check(conn, cells)
        # hand-checked: sensor a's first 5 minutes hold 1.0 and 3.0
        row = conn.execute(
            "SELECT n, min, max, sum, mean FROM twin.observation_5min"
            " WHERE sensor_id = %s AND bucket = '2026-07-01T10:00:00Z'", (a,),
        ).fetchone()  # fmt: skip
        assert row == (2, 1.0, 3.0, 4.0, 2.0)
        row = conn.execute(
            "SELECT n, min, max, sum FROM twin.observation_1h"
            " WHERE sensor_id = %s AND bucket = '2026-07-01T10:00:00Z'", (a,),
        ).fetchone()  # fmt: skip
        assert row == (3, 1.0, 3.0, 6.5)
        row = conn.execute(
            "SELECT datastreams, n, sum FROM twin.observation_cell_5min"
            " WHERE cell = %s AND kind = 'rain_gauge' AND bucket = '2026-07-01T10:00:00Z'",
            (cells["parent"],),
        ).fetchone()  # fmt: skip
        assert row == (2, 3, 14.0)  # a's two readings and b's one

        # out of order (an old hour), replays (same key, other value), a new hour
        put(
            conn,
            [
                (a, "2026-07-01T10:01:00Z", 5.0),
                (a, "2026-07-01T10:00:00Z", 99.0),
                (b, "2026-07-01T09:58:00Z", 4.0),
                (c, "2026-07-01T12:00:00Z", 1.0),
            ],
        )
        put(conn, [(b, "2026-07-01T10:01:00Z", 50.0)])  # a replay alone queues nothing
        got = rollups.refresh(conn, res=RES)
        assert got is not None and got.hours == 3
        check(conn, cells)

        # corrections and deletions re-aggregate their hours too
        conn.execute("UPDATE twin.observation SET value = value + 1 WHERE sensor_id = %s", (c,))
        conn.execute(
            "DELETE FROM twin.observation WHERE sensor_id = %s AND observed_at >= "
            "'2026-07-01T11:00:00Z'", (a,),
        )  # fmt: skip
        rollups.refresh(conn, res=RES)
        check(conn, cells)
        assert conn.execute(
            "SELECT count(*) FROM twin.observation_1h WHERE sensor_id = %s"
            " AND bucket = '2026-07-01T11:00:00Z'", (a,),
        ).fetchone() == (0,)  # fmt: skip

        # idempotent: nothing queued, nothing changes
        before = got_streams(conn, "observation_5min"), got_cells(conn, "observation_cell_1h")
        got = rollups.refresh(conn, res=RES)
        assert got is not None and (got.hours, got.buckets_5min) == (0, 0)
        assert (got_streams(conn, "observation_5min"),
                got_cells(conn, "observation_cell_1h")) == before  # fmt: skip


def test_a_writer_committing_late_is_not_missed(db: str, cells: dict[str, int]) -> None:
    """Transaction A writes first and commits last: an id watermark would skip its reading."""
    with connect(db) as conn, psycopg.connect(db) as slow, psycopg.connect(db) as fast:
        s = sensor(conn, "roll-late", cells["other"])
        slow.execute("INSERT INTO twin.observation (sensor_id, observed_at, value)"
                     " VALUES (%s, '2026-07-02T08:00:00Z', 1)", (s,))  # fmt: skip
        fast.execute("INSERT INTO twin.observation (sensor_id, observed_at, value)"
                     " VALUES (%s, '2026-07-02T08:01:00Z', 2)", (s,))  # fmt: skip
        fast.commit()
        rollups.refresh(conn, res=RES)
        slow.commit()
        rollups.refresh(conn, res=RES)
        row = conn.execute(
            "SELECT n, sum FROM twin.observation_1h WHERE sensor_id = %s", (s,)
        ).fetchone()
        assert row == (2, 3.0)
        check(conn, cells)


def test_a_busy_refresh_is_skipped_and_the_queue_waits(db: str, cells: dict[str, int]) -> None:
    with connect(db) as conn, psycopg.connect(db) as other:
        s = sensor(conn, "roll-busy", cells["a"])
        put(conn, [(s, "2026-07-03T00:00:00Z", 1.0)])
        other.execute("SELECT pg_advisory_xact_lock(%s)", (rollups.LOCK_KEY,))
        assert rollups.refresh(conn, res=RES, wait=False) is None
        assert rollups.pending(conn) == 1
        other.rollback()
        got = rollups.refresh(conn, res=RES, wait=False)
        assert got is not None and got.hours == 1
        check(conn, cells)
        with pytest.raises(ValueError, match="width"):
            rollups.series(conn, datastream=s, width="2min", start=None, end=None)  # type: ignore[arg-type]


def test_sense_rollups_cli(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from twin.cli import app

    with connect(db) as conn:
        s = sensor(conn, "roll-cli", None)
        put(conn, [(s, "2026-07-04T00:00:00Z", 1.0), (s, "2026-07-04T01:00:00Z", 2.0)])
    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    r = CliRunner().invoke(app, ["sense", "rollups", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["hours"] == 2


def test_the_api_process_keeps_the_rollups(db: str, tmp_path: Any, cells: dict[str, int]) -> None:
    """An Observation POSTed over SensorThings reaches the roll-ups by the API's own upkeep."""
    import time

    from fastapi.testclient import TestClient

    from twin.api.app import create_app
    from twin.settings import Settings

    settings = Settings(
        _env_file=None, database_url=db, data_dir=tmp_path, open_operations=True,
        public_clearance="important", sense_maintenance_interval_s=0.2,
    )  # fmt: skip
    with connect(db) as conn:
        s = sensor(conn, "roll-api", cells["b"])
    with TestClient(create_app(settings)) as client:
        r = client.post(f"/sta/v1.1/Datastreams({s})/Observations",
                        json={"phenomenonTime": "2026-07-05T06:07:08Z", "result": 4.5})  # fmt: skip
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 20
        with connect(db) as conn:
            while True:
                row = conn.execute(
                    "SELECT bucket, n, sum FROM twin.observation_5min WHERE sensor_id = %s", (s,)
                ).fetchone()
                if row is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert row is not None, "the API process did not refresh the roll-ups"
            assert (row[1], row[2]) == (1, 4.5)
            check(conn, cells)
        stats = client.app.state.sense_maintainer.stats  # type: ignore[attr-defined]
        assert stats["refreshes"] >= 1 and stats["errors"] == 0
