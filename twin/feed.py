"""The change feed behind the push channel (``/api/stream``): alerts raised or changed and task
transitions since a cursor, read as the caller so row-level security scopes them.

Why a transaction id and not an identity id or a timestamp: ids and ``now()`` are taken when a
transaction *starts* writing, and transactions commit in another order. A reader that has seen
id 6 may still be shown id 5 a moment later, and a stream that resumed "after 6" would miss it.
Each row instead records the transaction that last wrote it (``tx``, migration 0019).

The cursor is a snapshot, not a horizon. A read runs in one REPEATABLE READ transaction, so the
rows it sees are exactly those written by transactions visible in its snapshot ``S'``
(``pg_current_snapshot()``). A reader that already has everything visible in ``S`` asks for the
rows whose ``tx`` is not visible in ``S`` (at or above its ``xmax``, or one of its running
transactions: the ``tx`` index picks them out); once it has them all it has everything visible
in ``S'``, and ``S'`` is its new cursor. A transaction still running at ``S'`` is not visible in
it, so its rows come on a later read whenever it commits, however long it runs and whatever
committed after it started: a long write transaction elsewhere (a bulk load in another database
of the cluster, a long ingest here) holds nothing back. The price is the event id: a snapshot
lists the transactions running when it was taken, so the id grows with them (a few digits
each, written relative to ``xmin``).

One read delivers at most ``limit`` rows of each kind, and a client may drop the connection
after any event, so an event id can stand inside a batch: ``(done, batch, last)`` means "every
row visible in ``done``, and the rows visible in ``batch`` up to the key ``last``" (keys are
``(tx, kind, id)``, the feed's order). Resuming from it first finishes that batch (rows visible
in ``batch``, not in ``done``, after ``last``), then goes on from ``batch``. Ids of the former
form ``<tx>.<kind>.<id>`` (before the cursor was a snapshot: every transaction below ``tx`` had
finished) are still read, as the same set of rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.alerts.evaluate import alert_row
from twin.db.queries import query
from twin.grid import to_hex

#: Event kinds, in the order the feed sorts events of one transaction.
KINDS = ("alert", "task")
MAX_TX = 2**63 - 1
#: The longest event id read (a snapshot of a few thousand running transactions).
MAX_ID_CHARS = 16384
_N = r"[0-9]{1,19}"
_SNAP = rf"({_N})-({_N})(?:-({_N}(?:,{_N})*))?"
_CURSOR = re.compile(rf"^{_SNAP}(?:/{_SNAP}/({_N})\.([01])\.({_N}))?$")
_LEGACY = re.compile(rf"^({_N})\.([01])\.({_N})$")
_FORMAT = (
    "an event id of this stream: <xmin>-<xmax-xmin>[-<xip-xmin>,...], optionally followed by"
    " /<snapshot>/<tx>.<kind>.<id> inside a batch, e.g. 1234-2-0 or 1234-2-0/1236-0/1235.0.56"
)

Key = tuple[int, int, int]


class CursorError(ValueError):
    """An event id that is no cursor of this stream (malformed, inconsistent, from the future)."""


def _xid(value: int) -> int:
    # PostgreSQL refuses an xid8 whose 32-bit transaction id is 0 (InvalidTransactionId).
    if value > MAX_TX or value % 2**32 == 0:
        raise CursorError(f"{_FORMAT} (transaction id {value} out of range)")
    return value


@dataclass(frozen=True)
class Snapshot:
    """A PostgreSQL snapshot (``pg_snapshot``): a transaction is visible in it, i.e. had ended
    when it was taken, when below ``xmin``, or below ``xmax`` and not in ``xip``."""

    xmin: int
    xmax: int
    xip: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _xid(self.xmin), _xid(self.xmax)
        inside = all(self.xmin <= x < self.xmax for x in self.xip)
        ordered = all(a < b for a, b in zip(self.xip, self.xip[1:], strict=False))
        if self.xmax < self.xmin or not inside or not ordered:
            raise CursorError(f"{_FORMAT} (xmin <= running transactions < xmax, ascending)")

    @cached_property
    def _running(self) -> frozenset[int]:
        return frozenset(self.xip)

    @cached_property
    def _text(self) -> str:
        tail = "-" + ",".join(str(x - self.xmin) for x in self.xip) if self.xip else ""
        return f"{self.xmin}-{self.xmax - self.xmin}{tail}"

    def visible(self, tx: int) -> bool:
        """Whether transaction ``tx`` had ended when the snapshot was taken."""
        return tx < self.xmin or (tx < self.xmax and tx not in self._running)

    def covers(self, other: Snapshot) -> bool:
        """Whether every transaction visible in ``other`` is visible in this one."""
        return other.xmax <= self.xmax and not any(other.visible(x) for x in self.xip)

    def pg(self) -> str:
        """The ``pg_snapshot`` text: ``xmin:xmax:xip,...``."""
        return f"{self.xmin}:{self.xmax}:{','.join(map(str, self.xip))}"

    @classmethod
    def from_pg(cls, text: str) -> Snapshot:
        """A snapshot from its ``pg_snapshot`` text."""
        xmin, xmax, xip = text.split(":")
        return cls(int(xmin), int(xmax), tuple(int(x) for x in xip.split(",") if x))

    def __str__(self) -> str:
        return self._text

    @classmethod
    def _of(cls, xmin: str, dmax: str, dxip: str | None) -> Snapshot:
        low = int(xmin)
        return cls(low, low + int(dmax), tuple(low + int(d) for d in (dxip or "").split(",") if d))


@dataclass(frozen=True)
class Cursor:
    """Where a reader of the feed stands: it has every row visible in ``done`` and, inside a
    batch, the rows visible in ``batch`` with a key up to ``last`` (``(tx, kind, id)``)."""

    done: Snapshot
    batch: Snapshot | None = None
    last: Key | None = None

    def check(self) -> Cursor:
        """This cursor, when it is consistent (CursorError if not): a batch follows ``done``
        and ``last`` is a key of the batch. The feed's own cursors are, by construction."""
        if (self.batch is None) != (self.last is None):
            raise CursorError(f"{_FORMAT} (a batch needs its last key)")
        if self.batch is not None and self.last is not None:
            tx = self.last[0]
            if not self.batch.covers(self.done) or self.done.visible(tx):
                raise CursorError(f"{_FORMAT} (the batch must follow the done snapshot)")
            if not self.batch.visible(tx):
                raise CursorError(f"{_FORMAT} (the last key must be of the batch)")
        return self

    def __str__(self) -> str:
        if self.batch is None or self.last is None:
            return str(self.done)
        return f"{self.done}/{self.batch}/{'.'.join(map(str, self.last))}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """A cursor from an event id (``Last-Event-ID``); CursorError when it is not one."""
        text = text.strip()
        if len(text) > MAX_ID_CHARS:
            raise CursorError(f"{_FORMAT} (at most {MAX_ID_CHARS} characters)")
        if (old := _LEGACY.match(text)) is not None:
            return cls._legacy(*(int(g) for g in old.groups()))
        m = _CURSOR.match(text)
        if m is None:
            raise CursorError(_FORMAT)
        g = m.groups()
        done = Snapshot._of(g[0], g[1], g[2])
        if g[3] is None:
            return cls(done)
        last = (_xid(int(g[6])), int(g[7]), int(g[8]))
        if last[2] > MAX_TX:
            raise CursorError(f"{_FORMAT} (row id out of range)")
        return cls(done, Snapshot._of(g[3], g[4], g[5]), last).check()

    @classmethod
    def _legacy(cls, tx: int, kind: int, id_: int) -> Cursor:
        # <tx>.<kind>.<id>: every transaction below tx had ended, and the reader had the rows
        # up to that key; (tx, 0, 0), the "no event yet" mark, claims nothing of tx itself.
        if id_ > MAX_TX:
            raise CursorError(f"{_FORMAT} (row id out of range)")
        done = Snapshot(_xid(tx), tx)
        if kind == 0 and id_ == 0:
            return cls(done)
        return cls(done, Snapshot(_xid(tx + 1), tx + 1), (tx, kind, id_)).check()


@dataclass(frozen=True)
class Change:
    """One event of the feed: its kind, its cursor (the SSE event id), its key ``(tx, kind,
    id)`` (the feed's order) and its JSON data."""

    kind: str
    cursor: Cursor
    key: Key
    data: dict[str, Any]


async def snapshot(conn: AsyncConnection) -> Snapshot:
    """The snapshot of ``conn``'s transaction, which must be REPEATABLE READ (or SERIALIZABLE):
    every statement of it then sees exactly the transactions visible in it."""
    row = await (await conn.execute(query("feed.sql", "snapshot"))).fetchone()
    assert row is not None
    if row[1] not in ("repeatable read", "serializable"):
        raise RuntimeError("the feed reads in a REPEATABLE READ transaction (feed.sql: begin)")
    return Snapshot.from_pg(str(row[0]))


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
    conn: AsyncConnection, after: Cursor | None, *, limit: int = 500
) -> tuple[list[Change], Cursor]:
    """Alerts and task transitions the reader at ``after`` does not have, oldest first, and the
    cursor after them.

    Parameters
    ----------
    conn
        A connection in a REPEATABLE READ transaction set up as the caller (row-level security
        applies); see :func:`snapshot`.
    after
        The cursor to read after (the last event the reader has); None: from now on.
    limit
        At most this many rows of each kind per call; the rest come on the next call.

    Returns
    -------
    The changes in feed order, and the cursor after them: this transaction's snapshot once the
    batch is complete (the next read starts there), else a place inside the batch.

    Raises
    ------
    CursorError
        ``after`` names transactions that had not ended when this read began (a forged id, or
        one from another cluster).
    """
    now = await snapshot(conn)
    if after is None:
        return [], Cursor(now)
    if not now.covers(after.batch or after.done):
        raise CursorError("an event id of this stream, not one from the future")
    lo, hi, last = after.done, after.batch or now, after.last or (0, 0, 0)
    params = {"lo": lo.pg(), "lo_xip": list(lo.xip), "from_tx": max(lo.xmax, last[0]),
              "hi": hi.pg(), "hi_xmax": hi.xmax, "tx": last[0], "kind": last[1], "id": last[2],
              "limit": limit}  # fmt: skip
    out: list[Change] = []
    capped = False
    async with conn.cursor(row_factory=dict_row) as cur:
        for kind, name, shape in ((0, "alerts", _alert), (1, "transitions", _task)):
            await cur.execute(query("feed.sql", name), params)
            rows = await cur.fetchall()
            capped = capped or len(rows) == limit
            for r in rows:
                key = (int(r["tx"]), kind, int(r["id"]))
                out.append(Change(KINDS[kind], Cursor(lo, hi, key), key, shape(r)))
    out.sort(key=lambda c: c.key)
    if capped:
        # One kind hit the limit: later rows of the other kind may sort before its next rows,
        # so stop at the last row of the capped kind and leave the rest for the next call.
        out = _before_cap(out, limit)
        return out, out[-1].cursor
    if out:
        # The batch is complete: its last event's id says so, in the short form.
        out[-1] = Change(out[-1].kind, Cursor(hi), out[-1].key, out[-1].data)
    return out, Cursor(hi)


def _before_cap(out: list[Change], limit: int) -> list[Change]:
    counts = {k: sum(1 for c in out if c.kind == k) for k in KINDS}
    stop = min(max(c.key for c in out if c.kind == k) for k in KINDS if counts[k] >= limit)
    return [c for c in out if c.key <= stop]


async def versions(conn: AsyncConnection) -> dict[str, int]:
    """Every tile layer's data version (a bump means: refetch that layer's tiles)."""
    rows = await (await conn.execute(query("feed.sql", "versions"))).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}
