"""Layer data versions for cached tiles, read without a pooled connection per request.

A cached tile is only as fresh as the version it was looked up under, so every tile request
must read the versions after it arrived. Reading them in the request's own transaction costs
a pool checkout and four statements: far more than serving the cached bytes. Here one
dedicated connection (autocommit, the API's role) reads the whole ``twin.layer_version`` table,
and the reads are shared: a request waits for the next read that *starts* after it arrived
and takes that read's answer. A write committed before the request arrived is therefore
visible to it (READ COMMITTED, each statement a new snapshot), which is the same no-stale
guarantee as a read of its own; under load one read answers every request that queued during
the previous one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import psycopg

from twin.errors import DatabaseUnavailableError

log = logging.getLogger(__name__)

#: The primary's WAL insert position, read after the versions (see :class:`Versions`).
LSN_SQL = "SELECT pg_current_wal_insert_lsn()::text"


class Versions(dict[str, int]):
    """Every layer's version, and (``with_lsn``) the primary's WAL position read just after
    them: a read replica that has replayed up to ``lsn`` holds data at least that new."""

    lsn: str = "0/0"


class VersionReader:
    """Coalesced reads of ``twin.layer_version`` on one dedicated connection.

    Parameters
    ----------
    url
        The database URL (the same as the pool's).
    role
        Database role to read as (the API's role: it may read the versions, nothing more is
        needed).
    timeout_s
        Connect and read timeout (s); past it the waiting requests get a 503.
    options
        libpq ``options`` (statement timeout and such), as the pool's connections get.
    with_lsn
        Also read the WAL position after each read (:class:`Versions`; with read replicas).
    """

    read_sql = "SELECT layer, version FROM twin.layer_version"

    def __init__(
        self, url: str, *, role: str, timeout_s: float, options: str = "", with_lsn: bool = False
    ) -> None:
        self.url = url
        self.with_lsn = with_lsn
        self.role = role
        self.timeout_s = timeout_s
        self.options = options
        self._conn: psycopg.AsyncConnection | None = None
        # The read that has not started yet: requests arriving now wait for it.
        self._next: asyncio.Future[Versions] | None = None
        self._worker: asyncio.Task[None] | None = None
        self.reads = 0  # how many reads ran (a test checks that they are shared)
        self._closed = False

    async def versions(self) -> Versions:
        """Every layer's version as of a read that started after this call."""
        if self._closed:
            raise DatabaseUnavailableError("the server is shutting down")
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        fut = self._next
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._run())
        # shield: one cancelled request (client gone) must not cancel the read others share.
        return await asyncio.shield(fut)

    async def version_of(self, keys: tuple[str, ...]) -> int:
        """Sum of the versions of ``keys`` (each only grows, so the sum does too)."""
        got = await self.versions()
        return sum(got.get(k, 0) for k in keys)

    async def version_and_lsn(self, keys: tuple[str, ...]) -> tuple[int, str]:
        """:meth:`version_of`, and the primary's WAL position as of that read (``0/0``
        without ``with_lsn``)."""
        got = await self.versions()
        return sum(got.get(k, 0) for k in keys), got.lsn

    async def _run(self) -> None:
        while self._next is not None:
            # Take the pending future before the read starts: whoever arrives from here on
            # waits for the following read, which starts after them.
            waiting, self._next = [self._next], None
            try:
                result = await self._read_retrying(waiting)
            except DatabaseUnavailableError as exc:
                for fut in waiting:
                    fut.set_exception(exc)
                    fut.exception()  # retrieved here, so an abandoned future logs nothing
            except BaseException as exc:  # cancelled at shutdown, or a bug: release every waiter
                await self._drop()
                if self._next is not None:
                    waiting.append(self._next)
                    self._next = None
                for fut in waiting:
                    fut.set_exception(DatabaseUnavailableError(f"version read stopped: {exc!r}"))
                    fut.exception()
                if not isinstance(exc, Exception):  # cancellation, interpreter exit
                    raise
                log.exception("layer version reader failed")
            else:
                for fut in waiting:
                    fut.set_result(result)

    async def _read_retrying(self, waiting: list[asyncio.Future[Versions]]) -> Versions:
        """Read; while the database is away (a restart, say) retry until ``timeout_s`` has
        passed, as a request waits for the pool, rather than answer 503 at once. Requests that
        arrive meanwhile join ``waiting``: the retry starts after them."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        backoff = 0.05
        while True:
            try:
                async with asyncio.timeout(max(deadline - loop.time(), 0.05)):
                    return await self._read()  # (not wait_for: see twin.cancellation)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                await self._drop()
                if loop.time() + backoff >= deadline:
                    log.warning("layer version read failed: %r", exc)
                    raise DatabaseUnavailableError(f"database unavailable: {exc}") from exc
            await asyncio.sleep(backoff)
            backoff = min(2 * backoff, 0.5)
            if self._next is not None:
                waiting.append(self._next)
                self._next = None

    async def _read(self) -> Versions:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url,
                autocommit=True,
                connect_timeout=max(1, int(self.timeout_s)),
                application_name="twin-api-versions",
                options=self.options,
            )
            await self._conn.execute("SELECT set_config('role', %s, false)", (self.role,))
        self.reads += 1
        cur = await self._conn.execute(self.read_sql)
        got = Versions((layer, int(version)) for layer, version in await cur.fetchall())
        if self.with_lsn:  # after the versions' statement: at or past every commit it saw
            cur = await self._conn.execute(LSN_SQL)
            row = await cur.fetchone()
            got.lsn = str(row[0]) if row else "0/0"
        return got

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: nothing more to release
                await conn.close()

    async def close(self) -> None:
        self._closed = True  # a request arriving now must not open a connection again
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            with contextlib.suppress(BaseException):
                await self._worker
        await self._drop()
