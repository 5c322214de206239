"""The API's connection pools (twin.api.app.make_pool) against a real PostGIS: a connection
always goes back into the pool in the pool's own mode, whatever a request or the pool's own
check left it in."""

from __future__ import annotations

import asyncio

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from twin.api.app import make_pool
from twin.settings import Settings


def _one(settings: Settings) -> Settings:
    return settings.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})


async def _isolation(conn: AsyncConnection) -> str:
    # What the stream's read does: a transaction setting first, then a read in it.
    await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    row = await (await conn.execute("SELECT current_setting('transaction_isolation')")).fetchone()
    await conn.rollback()
    assert row is not None
    return str(row[0])


def test_a_connection_returned_in_autocommit_comes_back_out_of_it(tiny_settings: Settings) -> None:
    async def main() -> tuple[bool, str]:
        pool = make_pool(tiny_settings.database_url or "", _one(tiny_settings))
        await pool.open(wait=True)
        try:
            async with pool.connection() as conn:
                await conn.set_autocommit(True)  # left so by a request, or a cancelled check
            async with pool.connection() as conn:
                return conn.autocommit, await _isolation(conn)
        finally:
            await pool.close()

    autocommit, isolation = asyncio.run(main())
    assert autocommit is False and isolation == "repeatable read"


def test_a_check_cancelled_halfway_leaves_no_autocommit_behind(tiny_settings: Settings) -> None:
    # The way it happened: psycopg_pool's check turns autocommit on, probes, turns it off; a
    # request cancelled in between put the connection back in autocommit. Here the check
    # stops in between until the waiting request is cancelled.
    async def main(reset: bool) -> bool:
        halfway = asyncio.Event()

        async def check(conn: AsyncConnection) -> None:
            if not halfway.is_set():
                await conn.set_autocommit(True)
                halfway.set()
                await asyncio.sleep(30)
                await conn.set_autocommit(False)  # never reached

        pool = make_pool(tiny_settings.database_url or "", _one(tiny_settings))
        if not reset:
            pool._reset = None  # the control: the pool as psycopg_pool builds it
        pool._check = check
        await pool.open(wait=True)
        try:
            waiting = asyncio.create_task(pool.getconn())
            await halfway.wait()
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)
            async with pool.connection() as conn:
                return bool(conn.autocommit)
        finally:
            await pool.close()

    assert asyncio.run(main(reset=True)) is False
    assert asyncio.run(main(reset=False)) is True  # without the reset the mode leaks


def test_the_public_pool_stays_in_autocommit(tiny_settings: Settings) -> None:
    async def main() -> bool:
        pool: AsyncConnectionPool = make_pool(
            tiny_settings.database_url or "", _one(tiny_settings), public=True
        )
        await pool.open(wait=True)
        try:
            async with pool.connection() as conn:
                await conn.set_autocommit(False)
            async with pool.connection() as conn:
                return bool(conn.autocommit)
        finally:
            await pool.close()

    assert asyncio.run(main()) is True
