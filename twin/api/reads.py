"""Routing reads to read replicas (``TWIN_READ_DATABASE_URLS``), with the primary as fallback.

Each replica has two pools, as the primary has: scoped connections (each request sets its
caller with :data:`~twin.access.principal.CALLER_SQL`, so row-level security holds on the
replica exactly as on the primary) and public ones (role, scope and actor fixed at connect).
:meth:`ReadRouter.connection` hands out a connection of a healthy replica, round robin, and
the primary's otherwise:

* **Freshness.** With ``min_lsn`` (the primary's WAL position when the caller read the data
  version a tile is cached under) the replica must have replayed up to it: it is polled for up
  to ``wait_s``, then the read goes to the primary. A tile cached under version *v* therefore
  always holds data at least as new as *v* ("never stale after a write", as without replicas).
* **Failover.** A replica that cannot be reached, or whose connection breaks, is left out for
  ``retry_s`` and the read goes to the primary (or the next replica); an error that breaks a
  query mid-way is raised as :class:`ReplicaLostError`, which callers may retry.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from twin.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

#: True when the server has replayed the WAL up to %s (NULL, false: not a standby, or behind).
REPLAYED_SQL = "SELECT coalesce(pg_last_wal_replay_lsn() >= %s::pg_lsn, false)"
#: The primary's WAL insert position: every commit visible to an earlier statement lies before.
PRIMARY_LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text"
#: How long a request waits for a replica's pool before it takes the primary's.
CHECKOUT_S = 0.5
#: Poll interval while a replica catches up with ``min_lsn``.
POLL_S = 0.01

Setup = Callable[[AsyncConnection], Awaitable[None]]


class ReplicaLostError(DatabaseUnavailableError):
    """A replica's connection broke during a read (the replica is now left out for a while)."""


@dataclass
class Replica:
    """One read replica: its pools and its health."""

    name: str
    url: str
    pool: AsyncConnectionPool  # scoped connections (caller set per transaction)
    public_pool: AsyncConnectionPool  # the anonymous caller, autocommit
    down_until: float = 0.0
    last_error: str | None = None

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until


@dataclass
class ReadStats:
    """Where reads went (tests and the benchmark read them)."""

    replica: int = 0
    primary_behind: int = 0  # a replica had not replayed min_lsn within wait_s
    primary_down: int = 0  # no healthy replica
    failures: int = 0  # replica errors (each marks the replica down)
    by_replica: dict[str, int] = field(default_factory=dict)


class ReadRouter:
    """Hands out read connections on the replicas, falling back to the primary.

    Parameters
    ----------
    replicas
        The replicas, each with its two pools (not yet open).
    wait_s
        How long (s) a read with ``min_lsn`` waits for a replica to replay up to it.
    retry_s
        How long (s) a replica that failed gets no reads.
    """

    def __init__(self, replicas: list[Replica], *, wait_s: float, retry_s: float) -> None:
        self.replicas = replicas
        self.wait_s = wait_s
        self.retry_s = retry_s
        self.stats = ReadStats()
        self._turn = itertools.count()

    async def open(self) -> None:
        for r in self.replicas:
            await r.pool.open(wait=False)
            await r.public_pool.open(wait=False)

    async def close(self) -> None:
        for r in self.replicas:
            await r.public_pool.close()
            await r.pool.close()

    def mark_down(self, replica: Replica, exc: BaseException) -> None:
        if replica.healthy:
            log.warning("read replica %s left out for %.0f s: %r", replica.name, self.retry_s, exc)
        replica.down_until = time.monotonic() + self.retry_s
        replica.last_error = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        self.stats.failures += 1

    def _candidates(self) -> list[Replica]:
        """The healthy replicas, starting with the next in turn."""
        healthy = [r for r in self.replicas if r.healthy]
        if not healthy:
            return []
        start = next(self._turn) % len(healthy)
        return healthy[start:] + healthy[:start]

    @asynccontextmanager
    async def connection(
        self,
        primary: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
        *,
        public: bool,
        setup: Setup | None = None,
        min_lsn: str | None = None,
    ) -> AsyncIterator[AsyncConnection]:
        """A connection for a read: a replica's (``public``: of its public pool) when one is
        healthy and, with ``min_lsn``, has replayed up to it; else ``primary()``'s. ``setup``
        runs on whichever connection it is before it is handed out (the caller's scope)."""
        async with AsyncExitStack() as stack:
            conn, replica = await self._replica(stack, public, min_lsn)
            if conn is None:
                conn = await stack.enter_async_context(primary())
            if replica is None:
                if setup is not None:
                    await setup(conn)
                yield conn
                return
            try:
                if setup is not None:
                    await setup(conn)
                yield conn
            except psycopg.OperationalError as exc:  # the server went away (or was shut down)
                self.mark_down(replica, exc)
                raise ReplicaLostError(f"read replica {replica.name} lost: {exc}") from exc
            self.stats.replica += 1
            self.stats.by_replica[replica.name] = self.stats.by_replica.get(replica.name, 0) + 1

    async def _replica(
        self, stack: AsyncExitStack, public: bool, min_lsn: str | None
    ) -> tuple[AsyncConnection | None, Replica | None]:
        candidates = self._candidates()
        if not candidates:
            if self.replicas:
                self.stats.primary_down += 1
            return None, None
        behind = False
        for replica in candidates:
            pool = replica.public_pool if public else replica.pool
            inner = AsyncExitStack()
            try:
                conn = await inner.enter_async_context(pool.connection(timeout=CHECKOUT_S))
                fresh = await self._caught_up(conn, min_lsn or "0/0")
            except PoolTimeout as exc:
                await _quiet_close(inner)
                # Busy (the read goes elsewhere, the replica stays in) or unreachable (out).
                if not await _answers(replica.url):
                    self.mark_down(replica, exc)
                continue
            except (psycopg.Error, OSError) as exc:
                await _quiet_close(inner)
                self.mark_down(replica, exc)
                continue
            except BaseException:
                await _quiet_close(inner)
                raise
            if fresh:
                await stack.enter_async_context(inner)
                return conn, replica
            behind = True
            await _quiet_close(inner)
        if behind:
            self.stats.primary_behind += 1
        else:
            self.stats.primary_down += 1
        return None, None

    async def _caught_up(self, conn: AsyncConnection, lsn: str) -> bool:
        """Whether the replica has replayed up to ``lsn``, waiting up to ``wait_s`` for it.

        The same query checks that the replica answers at all (its pool checks nothing)."""
        deadline = time.monotonic() + self.wait_s
        while True:
            cur = await conn.execute(REPLAYED_SQL, (lsn,))
            row = await cur.fetchone()
            if row is not None and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_S)


async def _quiet_close(stack: AsyncExitStack) -> None:
    """Give a connection back to its pool; a broken one is the pool's to discard."""
    with contextlib.suppress(Exception):
        await stack.aclose()


async def _answers(url: str) -> bool:
    """Whether the server takes a new connection now (a refusal comes back at once)."""
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=1)
    except (psycopg.Error, OSError):
        return False
    await conn.close()
    return True


async def primary_lsn(conn: AsyncConnection) -> str:
    """The primary's WAL insert position (run it after the statement that read the version)."""
    cur = await conn.execute(PRIMARY_LSN_SQL)
    row = await cur.fetchone()
    return str(row[0]) if row else "0/0"
