"""The audit trail: every write through the API and every read of core data, with who, what,
when, which area and from which client address. Written in the request's own transaction, so
a change and its audit row commit (or roll back) together; the client comes from the
transaction's ``twin.client`` setting (``twin.access.principal.CALLER_SQL``) unless given.

A refused attempt (a device writing a datastream not its own) is recorded apart, in a
transaction of its own (:func:`record_apart`), since the request's transaction rolls back.

Tile reads of core layers are too many for a round trip each: :class:`AuditBuffer` keeps them
in memory and writes them in one statement every ``TWIN_AUDIT_FLUSH_SECONDS`` (and when the
server stops). A process killed outright loses at most that interval of tile audit rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from twin.access.principal import CALLER_SQL, Principal, caller_params

log = logging.getLogger(__name__)

INSERT_SQL = (
    "INSERT INTO twin.audit_log (user_id, action, resource, area_id, client, detail)"
    " VALUES (%s, %s, %s, %s,"
    " coalesce(%s::inet, nullif(current_setting('twin.client', true), '')::inet), %s)"
)
BATCH_SQL = (
    "INSERT INTO twin.audit_log (at, user_id, action, resource, area_id, client, detail)"
    " SELECT * FROM unnest(%s::timestamptz[], %s::bigint[], %s::text[], %s::text[],"
    " %s::bigint[], %s::inet[], %s::jsonb[])"
)


async def record(
    conn: AsyncConnection,
    who: Principal,
    action: str,
    resource: str,
    *,
    area_id: int | None = None,
    client: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row (``action`` e.g. ``task.update``; ``resource`` e.g. ``task/12``)."""
    await conn.execute(INSERT_SQL, _row(who, action, resource, area_id, client, detail))


async def record_apart(
    pool: AsyncConnectionPool,
    who: Principal,
    role: str,
    action: str,
    resource: str,
    *,
    client: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """:func:`record` in a transaction of its own, as ``who`` under ``role``: the trace of a
    refused attempt, whose request's own transaction rolls back with the refusal."""
    async with pool.connection() as conn, conn.transaction():
        await conn.execute(CALLER_SQL, caller_params(who, role, client))
        await record(conn, who, action, resource, client=client, detail=detail)


def record_sync(
    conn: psycopg.Connection,
    who: Principal,
    action: str,
    resource: str,
    *,
    area_id: int | None = None,
    client: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """:func:`record` on a synchronous connection (work run in a thread on a caller's behalf)."""
    conn.execute(INSERT_SQL, _row(who, action, resource, area_id, client, detail))


def _row(
    who: Principal,
    action: str,
    resource: str,
    area_id: int | None,
    client: str | None,
    detail: dict[str, Any] | None,
) -> tuple[Any, ...]:
    body = {"actor": who.name, "role": who.role, **(detail or {})}
    return (who.user_id, action, resource, area_id, client, json.dumps(body, default=str))


@dataclass(frozen=True)
class Entry:
    at: datetime
    user_id: int | None
    action: str
    resource: str
    area_id: int | None
    client: str | None
    detail: str  # JSON


class AuditBuffer:
    """Audit rows of hot read paths (core tile layers), written in batches.

    :meth:`add` costs no database work; :meth:`flush` writes everything pending in one
    statement, as the API role. Entries that cannot be written (database down) are kept for
    the next flush, up to ``max_pending``; beyond that the oldest are dropped, with a warning.
    """

    def __init__(self, max_pending: int = 200_000) -> None:
        self.pending: list[Entry] = []
        self.max_pending = max_pending
        self.dropped = 0
        self._lock = asyncio.Lock()

    def add(
        self,
        who: Principal,
        action: str,
        resource: str,
        *,
        client: str | None,
        area_id: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        body = {"actor": who.name, "role": who.role, **(detail or {})}
        self.pending.append(Entry(datetime.now(UTC), who.user_id, action, resource, area_id,
                                  client, json.dumps(body, default=str)))  # fmt: skip
        if len(self.pending) > self.max_pending:
            over = len(self.pending) - self.max_pending
            del self.pending[:over]
            self.dropped += over
            log.warning("audit buffer full: %d tile audit rows dropped", over)

    async def flush(self, pool: AsyncConnectionPool, role: str) -> int:
        """Write what is pending; returns the rows written (0 on failure, kept for later)."""
        async with self._lock:
            batch, self.pending = self.pending, []
            if not batch:
                return 0
            cols = list(zip(*((e.at, e.user_id, e.action, e.resource, e.area_id, e.client,
                               e.detail) for e in batch), strict=True))  # fmt: skip
            try:
                async with pool.connection() as conn, conn.transaction():
                    await conn.execute("SELECT set_config('role', %s, true)", (role,))
                    await conn.execute(BATCH_SQL, [list(c) for c in cols])
            except (psycopg.Error, OSError) as exc:
                log.warning("audit flush failed (%d rows kept): %s", len(batch), exc)
                self.pending[:0] = batch
                return 0
            return len(batch)

    async def run(self, pool: AsyncConnectionPool, role: str, every_s: float) -> None:
        """Flush every ``every_s`` seconds until cancelled (the owner flushes once more)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.flush(pool, role)
            except Exception:  # the writer must live on; the rows stay pending or are logged
                log.exception("audit flush failed")


def list_entries(
    conn: psycopg.Connection,
    *,
    user: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows, newest first, optionally of one user (by name), action prefix, or since."""
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(
        "SELECT l.id, l.at, coalesce(u.name, l.detail->>'actor') AS actor, l.action,"
        " l.resource, l.area_id, a.code AS area_code, host(l.client) AS client, l.detail"
        " FROM twin.audit_log l LEFT JOIN twin.app_user u ON u.id = l.user_id"
        " LEFT JOIN twin.admin_area a ON a.id = l.area_id"
        " WHERE (%(user)s::text IS NULL OR u.name = %(user)s OR l.detail->>'actor' = %(user)s)"
        " AND (%(action)s::text IS NULL OR l.action LIKE %(action)s || '%%')"
        " AND (%(since)s::timestamptz IS NULL OR l.at >= %(since)s)"
        " ORDER BY l.at DESC, l.id DESC LIMIT %(limit)s",
        {"user": user, "action": action, "since": since, "limit": limit},
    )
    return cur.fetchall()
