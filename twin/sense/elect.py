"""One MQTT bridge per client id, however many processes would start one: a PostgreSQL advisory
lock elects the process that runs it.

``twin serve --workers N`` runs the API's lifespan in each of its N processes, and each would
start the bridge; N bridges with one client id take the broker session from each other (the
broker closes the older connection whenever another connects with its id, and each reconnects
at once). :class:`Elected` runs a service only while its process holds a session-level advisory
lock, keyed by the client id, on a connection of its own: the first process to take the lock
runs the bridge, the others try again every ``retry_s`` seconds and one of them takes over
within that time when the holder stops or dies (the server releases a session's locks when its
connection ends). The holder checks its lock connection as often, and stops the service as soon
as that connection is lost, since another process may hold the lock by then.

A session lock needs a session: the database URL must not go through a pooler in transaction
mode (PgBouncer's ``pool_mode = transaction``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

import psycopg

from twin.sense.bridge import Runs

log = logging.getLogger(__name__)

#: First key of the advisory lock (the second is the hash of the client id): "twnb".
LOCK_SPACE = 0x74776E62
TRY_LOCK_SQL = "SELECT pg_try_advisory_lock(%(space)s, hashtext(%(name)s))"
UNLOCK_SQL = "SELECT pg_advisory_unlock(%(space)s, hashtext(%(name)s))"
HOLDER_SQL = """
SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = %(space)s
  AND l.objid::bigint = (hashtext(%(name)s)::bigint & 4294967295)
"""


@dataclass
class ElectionStats:
    terms: int = 0  # times this process took the lock and started the service
    attempts: int = 0  # times it asked for the lock
    last_error: str | None = None


class Elected:
    """Run ``service`` while this process holds the advisory lock ``name``.

    Parameters
    ----------
    service
        What to run (``await service.run()``, until cancelled): the bridge.
    db_url
        Database whose advisory lock elects the runner (every process uses the same one).
    name
        The lock's name: one service runs per name over all processes (the MQTT client id).
    retry_s
        Seconds (s) between attempts at the lock, and between checks of the held lock's
        connection.
    """

    def __init__(self, service: Runs, db_url: str, *, name: str, retry_s: float = 5.0) -> None:
        self.service = service
        self.db_url = db_url
        self.name = name
        self.retry_s = retry_s
        self.leading = asyncio.Event()
        self.stats = ElectionStats()

    @property
    def _key(self) -> dict[str, object]:
        return {"space": LOCK_SPACE, "name": self.name}

    async def run(self) -> None:
        """Until cancelled: take the lock when it is free and run the service while held."""
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.db_url, autocommit=True, connect_timeout=10,
                    application_name="twin-sense-election",
                )  # fmt: skip
                async with conn:
                    while True:
                        self.stats.attempts += 1
                        cur = await conn.execute(TRY_LOCK_SQL, self._key)
                        row = await cur.fetchone()
                        if row is not None and row[0]:
                            await self._lead(conn)
                        await asyncio.sleep(self.retry_s)
            except psycopg.Error as exc:
                self.stats.last_error = str(exc)[:300]
                log.warning("bridge election (%s): database unavailable: %s", self.name, exc)
            await asyncio.sleep(self.retry_s)

    async def _lead(self, conn: psycopg.AsyncConnection) -> None:
        """Run the service while ``conn`` (holding the lock) answers; on its own end, unlock."""
        self.stats.terms += 1
        log.info("bridge election (%s): this process runs it", self.name)
        task = asyncio.create_task(self.service.run())
        self.leading.set()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.retry_s)
                if done:
                    break
                await conn.execute("SELECT 1")  # the lock lives as long as this session
        finally:
            self.leading.clear()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        # The service ended by itself (it raised): let another process (or this one) try.
        if not task.cancelled() and task.exception() is not None:
            log.warning("bridge election (%s): the service failed: %s", self.name,
                        task.exception())  # fmt: skip
        await conn.execute(UNLOCK_SQL, self._key)


async def holders(db_url: str, name: str) -> list[int]:
    """Backend pids holding the lock ``name`` (at most one): for status and tests."""
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        cur = await conn.execute(HOLDER_SQL, {"space": LOCK_SPACE, "name": name})
        return [int(r[0]) for r in await cur.fetchall()]
