"""The change feed behind the push channel (``/api/stream``): alerts raised or changed and task
transitions since a cursor, read as the caller so row-level security scopes them.

Why a transaction id and not an identity id or a timestamp: ids and ``now()`` are taken when a
transaction *starts* writing, and transactions commit in another order. A reader that has seen
id 6 may still be shown id 5 a moment later, and a stream that resumed "after 6" would miss it.
Each row instead records the transaction that last wrote it (``tx``, migration 0019), and a read
only takes rows below the oldest transaction still running (``pg_snapshot_xmin``): every
transaction below that mark has finished, so no row can appear there later. The cursor is the
last event's (tx, kind, id); resuming from it is exact. The price: a long-running write
transaction elsewhere holds events back until it ends (a read-only one does not: it has no
transaction id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.alerts.evaluate import alert_row
from twin.db.queries import query
from twin.grid import to_hex

#: Event kinds, in the order the feed sorts events of one transaction.
KINDS = ("alert", "task")
_CURSOR = re.compile(r"^(\d{1,19})\.([01])\.(\d{1,19})$")
MAX_TX = 2**63 - 1


@dataclass(frozen=True, order=True)
class Cursor:
    """Where a reader of the feed stands: after the event (``tx``, ``kind``, ``id``)."""

    tx: int
    kind: int = 0
    id: int = 0

    def __str__(self) -> str:
        return f"{self.tx}.{self.kind}.{self.id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor from an event id (``Last-Event-ID``); ValueError when it is not one."""
        m = _CURSOR.match(text.strip())
        if m is None or int(m.group(1)) > MAX_TX or int(m.group(3)) > MAX_TX:
            raise ValueError("an event id of this stream: <tx>.<kind>.<id>, e.g. 1234.0.56")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))


@dataclass(frozen=True)
class Change:
    """One event of the feed: its kind, its cursor (the SSE event id) and its JSON data."""

    kind: str
    cursor: Cursor
    data: dict[str, Any]


async def horizon(conn: AsyncConnection) -> int:
    """The feed's mark now: every transaction below it has finished."""
    row = await (await conn.execute(query("feed.sql", "horizon"))).fetchone()
    assert row is not None
    return int(row[0])


def _alert(row: dict[str, Any]) -> dict[str, Any]:
    return alert_row({k: v for k, v in row.items() if k != "tx"})


def _task(row: dict[str, Any]) -> dict[str, Any]:
    area = None
    if row["area_id"] is not None:
        area = {"id": row["area_id"], "code": row["area_code"], "name": row["area_name"],
                "level": row["area_level"]}  # fmt: skip
    return {
        "transition_id": row["id"], "task_id": row["task_id"], "from": row["from_state"],
        "to": row["to_state"], "actor": row["actor"], "note": row["note"], "at": row["at"],
        "task": {"id": row["task_id"], "title": row["title"], "state": row["state"],
                 "priority": row["priority"], "alert_id": row["alert_id"],
                 "cell": to_hex([int(row["cell"])])[0] if row["cell"] is not None else None,
                 "due_at": row["due_at"], "area": area},
    }  # fmt: skip


async def changes(
    conn: AsyncConnection, after: Cursor, *, limit: int = 500
) -> tuple[list[Change], Cursor]:
    """Alerts and task transitions written after ``after``, oldest first, and the new cursor.

    Parameters
    ----------
    conn
        A connection in a transaction set up as the caller (row-level security applies).
    after
        The cursor to read after (the last event the reader has).
    limit
        At most this many rows of each kind per call; the rest come on the next call.

    Returns
    -------
    The changes in feed order, and the cursor after them. With no change the cursor moves up
    to the horizon, so the next read starts there.
    """
    upto = await horizon(conn)
    params = {"tx": after.tx, "kind": after.kind, "id": after.id, "upto": upto, "limit": limit}
    out: list[Change] = []
    capped = False
    async with conn.cursor(row_factory=dict_row) as cur:
        for kind, name, shape in ((0, "alerts", _alert), (1, "transitions", _task)):
            await cur.execute(query("feed.sql", name), params)
            rows = await cur.fetchall()
            capped = capped or len(rows) == limit
            out += [Change(KINDS[kind], Cursor(int(r["tx"]), kind, int(r["id"])), shape(r))
                    for r in rows]  # fmt: skip
    out.sort(key=lambda c: c.cursor)
    if capped:
        # One kind hit the limit: later rows of the other kind may sort before its next rows,
        # so stop at the last row of the capped kind and leave the rest for the next call.
        out = _before_cap(out, limit)
    if out:
        return out, out[-1].cursor
    return out, max(after, Cursor(upto, 0, 0))


def _before_cap(out: list[Change], limit: int) -> list[Change]:
    counts = {k: sum(1 for c in out if c.kind == k) for k in KINDS}
    stop = min(max(c.cursor for c in out if c.kind == k) for k in KINDS if counts[k] >= limit)
    return [c for c in out if c.cursor <= stop]


async def versions(conn: AsyncConnection) -> dict[str, int]:
    """Every tile layer's data version (a bump means: refetch that layer's tiles)."""
    rows = await (await conn.execute(query("feed.sql", "versions"))).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
