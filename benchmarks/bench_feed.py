"""The change feed's read (one poll of ``/api/stream``) while a long write transaction runs.

A transaction takes a transaction id and stays open (a bulk load, a long ingest); meanwhile
``--rows`` alerts are committed, 1000 per transaction, and the reader's cursor is a snapshot
taken after them (so the held transaction is one of its running ones). Timed, per call:

- ``twin.feed.changes`` from that cursor with nothing new: what every poll of every open
  stream costs while the transaction runs (the rows are picked by the cursor's running
  transactions and from its xmax);
- the same selection as one range from the cursor's ``xmin`` (``tx >= pg_snapshot_xmin``, the
  simplest index prefilter): it reads every row committed since the held transaction began.

Each run uses a fresh database on the twin's server (private cluster or TWIN_DATABASE_URL).

    .venv/bin/python benchmarks/bench_feed.py --rows 200000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import psycopg
from bench_sense import drop_db, fresh_db

from twin import feed
from twin.db.queries import query

ONE_RANGE = (
    "SELECT count(*) FROM twin.alert al WHERE al.tx >= %s AND al.tx < %s"
    " AND NOT pg_visible_in_snapshot((al.tx::text)::xid8, %s::pg_snapshot)"
)


async def feed_ms(url: str, cursor: feed.Cursor, n: int) -> float:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        t = time.perf_counter()
        for _ in range(n):
            await conn.execute(query("feed.sql", "begin"))
            out, _ = await feed.changes(conn, cursor)
            assert not out
            await conn.rollback()
        return (time.perf_counter() - t) / n * 1e3


def one_range_ms(url: str, snap: feed.Snapshot, n: int) -> float:
    with psycopg.connect(url) as c:
        t = time.perf_counter()
        for _ in range(n):
            c.execute(ONE_RANGE, (snap.xmin, snap.xmax, snap.pg())).fetchone()
        return (time.perf_counter() - t) / n * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000, help="alerts committed meanwhile")
    ap.add_argument("--reads", type=int, default=50, help="timed reads of each kind")
    args = ap.parse_args()
    admin, url = fresh_db()
    try:
        held = psycopg.connect(url)
        held.execute("SELECT pg_current_xact_id()")  # the long write transaction
        for k in range(max(1, args.rows // 1000)):
            with psycopg.connect(url) as c:
                c.execute(
                    "INSERT INTO twin.alert (rule_id, dedup_key, level, message) SELECT 'bench',"
                    " 'bench-' || %s || '-' || g, 'orange', 'bench'"
                    " FROM generate_series(1, 1000) g",
                    (k,),
                )
        with psycopg.connect(url) as c:
            c.execute("ANALYZE twin.alert")
            row = c.execute("SELECT pg_current_snapshot()::text").fetchone()
        assert row is not None
        snap = feed.Snapshot.from_pg(str(row[0]))
        print(f"rows committed while held: {args.rows}; cursor {snap.pg()}")
        ms = asyncio.run(feed_ms(url, feed.Cursor(snap), args.reads))
        print(f"twin.feed.changes, nothing new: {ms:.2f} ms")
        print(f"one range from xmin, nothing new: {one_range_ms(url, snap, args.reads):.2f} ms")
        held.rollback()
        held.close()
    finally:
        drop_db(admin, url)


if __name__ == "__main__":
    main()
