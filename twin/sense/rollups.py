"""Roll-ups of readings: 5-minute and hourly aggregates per datastream and per H3 cell.

Statement triggers on ``twin.observation`` append every (sensor, hour) an INSERT, UPDATE or
DELETE touches to ``twin.observation_rollup_queue``, in the writer's own transaction: a queued
hour becomes visible exactly when its readings do, whatever order writers commit in, so no
reading is missed (an id or inserted-time watermark would skip a reading whose transaction
commits after a later one's). The queue has no unique key, so writers never wait on each
other there. A replayed reading (``ON CONFLICT DO NOTHING``) queues nothing.

:func:`refresh` takes the queue and re-aggregates each queued hour from the raw rows (its
twelve 5-minute buckets and the hour), then the cells at ``res`` holding those sensors from
the datastream roll-ups: a late, out-of-order reading re-aggregates its old hour. Re-running it
is harmless (it recomputes, never adds). One refresh runs at a time (an advisory lock).

Buckets start at ``date_bin(width, observed_at, 2000-01-01 00:00Z)`` (UTC). A cell roll-up
covers the sensors of one kind and unit whose cell's parent at ``res`` is the cell; sensors
without a cell are left out. Who refreshes: the API process and ``twin sense run`` every
``TWIN_SENSE_MAINTENANCE_INTERVAL_S`` (:mod:`twin.sense.maintain`), ``twin sense rollups`` by
hand, ``twin sense status`` before it counts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from twin.db.queries import query

#: Serialises refreshes across processes.
LOCK_KEY = 0x7477_696E_0018
WIDTHS = {"5min": "observation_5min", "1h": "observation_1h"}


@dataclass(frozen=True)
class Refreshed:
    entries: int  # rows taken from the queue
    hours: int  # distinct (sensor, hour) among them
    recomputed: int  # of those, recomputed (the others are of detached days)
    buckets_5min: int
    cells: int  # (cell, kind, unit) recomputed

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def refresh(
    conn: psycopg.Connection, *, res: int, limit: int | None = None, wait: bool = True
) -> Refreshed | None:
    """Re-aggregate the queued hours (at most ``limit``) and their cells at ``res``, in one
    transaction; None when another refresh holds the lock and ``wait`` is false."""
    if not 0 <= res <= 15:
        raise ValueError(f"res must be 0..15, got {res}")
    with conn.transaction():
        if wait:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        else:
            row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()
            if not (row and row[0]):
                return None
        streams = conn.execute(query("sense_rollups.sql", "refresh_streams"),
                               {"limit": limit}).fetchone()  # fmt: skip
        assert streams is not None
        entries, claimed, sensors, hours, buckets = streams
        cells = 0
        if sensors:
            row = conn.execute(
                query("sense_rollups.sql", "refresh_cells"),
                {"res": res, "sensors": sensors, "hours": hours},
            ).fetchone()
            cells = int(row[0]) if row else 0
    return Refreshed(int(entries), int(claimed), len(sensors), int(buckets), cells)


def refresh_all(conn: psycopg.Connection, *, res: int, batch: int = 5000) -> Refreshed:
    """:func:`refresh` in batches of ``batch`` queue rows until the queue is empty."""
    total = Refreshed(0, 0, 0, 0, 0)
    while True:
        got = refresh(conn, res=res, limit=batch)
        assert got is not None
        total = Refreshed(*(a + b for a, b in zip(asdict(total).values(),
                                                  asdict(got).values(), strict=True)))  # fmt: skip
        if got.entries < batch:
            return total


def pending(conn: psycopg.Connection) -> int:
    """Rows waiting in the queue."""
    row = conn.execute("SELECT count(*) FROM twin.observation_rollup_queue").fetchone()
    return int(row[0]) if row else 0


def series(
    conn: psycopg.Connection, *, datastream: int, width: str, start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """A datastream's buckets of ``width`` (``5min`` or ``1h``) starting in ``[start, end)``."""
    if width not in WIDTHS:
        raise ValueError(f"width must be one of {', '.join(WIDTHS)}, got {width!r}")
    rows = conn.execute(
        sql.SQL(
            "SELECT bucket, n, min, max, mean, first_at, last_at FROM {}"
            " WHERE sensor_id = %s AND bucket >= %s AND bucket < %s ORDER BY bucket"
        ).format(sql.Identifier("twin", WIDTHS[width])),
        (datastream, start, end),
    ).fetchall()
    names = ("bucket", "n", "min", "max", "mean", "first_at", "last_at")
    return [dict(zip(names, r, strict=True)) for r in rows]
