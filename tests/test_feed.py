"""The change feed's cursor (:mod:`twin.feed`): a snapshot, read in pages of ``limit`` rows of
each kind, resumed from any event id, with transactions committing out of order.

What should arrive is the set of rows this test commits itself; visibility is PostgreSQL's own
``pg_visible_in_snapshot``, not the module's.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
import pytest

from twin import feed
from twin.db.queries import query

Walk = list[tuple[str, int, feed.Cursor]]


async def _read(url: str, after: feed.Cursor | None, limit: int) -> tuple[list[feed.Change],
                                                                           feed.Cursor]:  # fmt: skip
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute(query("feed.sql", "begin"))
        out = await feed.changes(conn, after, limit=limit)
        await conn.rollback()
        return out


def read(url: str, after: feed.Cursor | None, limit: int = 500) -> tuple[list[feed.Change],
                                                                         feed.Cursor]:  # fmt: skip
    return asyncio.run(_read(url, after, limit))


def walk(url: str, after: feed.Cursor, ours: set[tuple[str, int]], *, limit: int,
         pages: int | None = None) -> tuple[Walk, feed.Cursor, int]:  # fmt: skip
    """Our events from ``after`` on, page by page, until a new snapshot's whole batch brings
    none of ours (or after ``pages`` pages); also the cursor reached and how many pages ended inside a
    batch."""
    got: Walk = []
    inside = 0
    for _ in range(pages or 400):
        fresh = after.batch is None  # this read takes a new snapshot
        changes, after = read(url, after, limit)
        inside += after.batch is not None
        mine = [(c.kind, c.data.get("transition_id", c.data.get("id")), c.cursor)
                for c in changes]  # fmt: skip
        got += [m for m in mine if (m[0], m[1]) in ours]
        if fresh and after.batch is None and not [m for m in mine if (m[0], m[1]) in ours]:
            return got, after, inside
    assert pages is not None, "the walk did not end"
    return got, after, inside


def alert(c: psycopg.Connection, tag: str) -> int:
    row = c.execute(
        "INSERT INTO twin.alert (rule_id, dedup_key, level, message)"
        " VALUES ('feed-test', %s, 'orange', 'feed test') RETURNING id",
        (f"feed-{tag}-{time.monotonic_ns()}",),
    ).fetchone()
    assert row is not None
    return int(row[0])


def transitions(c: psycopg.Connection, n: int, area: int) -> list[int]:
    row = c.execute(
        "INSERT INTO twin.task (title, area_id) VALUES ('feed test', %s) RETURNING id", (area,)
    ).fetchone()
    assert row is not None
    return [
        int(r[0])
        for r in c.execute(
            "INSERT INTO twin.task_transition (task_id, to_state, actor)"
            " SELECT %s, 'open', 'feed-test' FROM generate_series(1, %s) RETURNING id",
            (row[0], n),
        ).fetchall()
    ]


def now(url: str) -> feed.Cursor:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT pg_current_snapshot()::text").fetchone()
    assert row is not None
    return feed.Cursor(feed.Snapshot.from_pg(str(row[0])))


def test_pages_and_resumes_from_any_event_miss_nothing_and_repeat_nothing(db_url: str) -> None:
    with psycopg.connect(db_url) as c:
        row = c.execute(
            "INSERT INTO twin.admin_area (level, code, name, geom) VALUES ('district',"
            " 'feed-test', 'feed test', ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326))) RETURNING id"
        ).fetchone()
    assert row is not None
    start = now(db_url)
    held = psycopg.connect(db_url)  # starts first, commits in the middle of the walk
    ours: set[tuple[str, int]] = {("alert", alert(held, "held"))}
    try:
        for n in range(3):
            with psycopg.connect(db_url) as c:
                ours |= {("alert", alert(c, f"{n}.{k}")) for k in range(3)}
                ours |= {("task", t) for t in transitions(c, 2 + n, int(row[0]))}
        first, cursor, _ = walk(db_url, start, ours, limit=2, pages=2)  # two pages only
        held.commit()
        rest, _, _ = walk(db_url, cursor, ours, limit=2)
        got = first + rest
        assert sorted((k, i) for k, i, _ in got) == sorted(ours)  # each exactly once
        assert ("alert", min(i for k, i in ours if k == "alert")) not in {(k, i) for k, i, _
                                                                         in first}  # fmt: skip
        # From every event id, with pages of 2 (inside batches) and of 500: exactly the rest.
        inside_total = 0
        for j, (_, _, event_id) in enumerate(got):
            assert feed.Cursor.parse(str(event_id)) == event_id
            for limit in (2, 500):
                after, _, inside = walk(db_url, event_id, ours, limit=limit)
                inside_total += inside
                assert sorted((k, i) for k, i, _ in after) == sorted(
                    (k, i) for k, i, _ in got[j + 1 :]
                ), (j, limit)
        assert inside_total > 0  # the per-kind cap did stop reads inside batches
    finally:
        held.close()
        with psycopg.connect(db_url) as c:
            c.execute("DELETE FROM twin.alert WHERE rule_id = 'feed-test'")
            c.execute("DELETE FROM twin.task WHERE title = 'feed test'")
            c.execute("DELETE FROM twin.admin_area WHERE code = 'feed-test'")


@pytest.mark.parametrize("snap", ["10:20:", "10:20:12,15,19", "7:7:", "3:100:3,50,99"])
def test_visibility_is_postgresqls(conn: psycopg.Connection, snap: str) -> None:
    s = feed.Snapshot.from_pg(snap)
    assert s.pg() == snap
    assert feed.Cursor.parse(str(s)) == feed.Cursor(s)
    for tx in range(1, 110):
        row = conn.execute("SELECT pg_visible_in_snapshot(%s::text::xid8, %s::pg_snapshot)",
                           (tx, snap)).fetchone()  # fmt: skip
        assert row is not None and s.visible(tx) is row[0], tx


def test_a_former_id_reads_as_the_same_rows() -> None:
    """``<tx>.<kind>.<id>``: every transaction below tx had ended and the reader had the rows up
    to that key; ``<tx>.0.0`` (no event yet) claims nothing of tx itself."""
    c = feed.Cursor.parse("100.1.7")
    assert c.batch is not None and c.last == (100, 1, 7)
    assert all(c.done.visible(t) for t in range(1, 100)) and not c.done.visible(100)
    assert c.batch.visible(100) and not c.batch.visible(101)
    mark = feed.Cursor.parse("100.0.0")
    assert mark.batch is None and not mark.done.visible(100) and mark.done.visible(99)


@pytest.mark.parametrize(
    "text",
    ["", "1-", "1-2-", "a-1", "1-1-1", "5-3-2,2", "1.2.3", "10-5/10-5", "10-5/11-5/10.0.1",
     "10-5/10-5/16.0.1", "10-5/10-6/15.2.1", "1-1/2-0/1.0.99999999999999999999"],
)  # fmt: skip
def test_a_malformed_id_is_refused(text: str) -> None:
    with pytest.raises(feed.CursorError, match="event id"):
        feed.Cursor.parse(text)
