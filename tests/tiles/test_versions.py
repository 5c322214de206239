"""The shared layer version reader: reads are shared, yet never older than the request."""

from __future__ import annotations

import asyncio
import socket

import psycopg
import pytest

from twin.api.errors import DatabaseUnavailableError
from twin.db.migrate import upgrade
from twin.tiles.versions import VersionReader


@pytest.fixture(scope="module")
def url(make_database) -> str:  # type: ignore[no-untyped-def]
    u: str = make_database("twin_versions")
    upgrade(u)
    with psycopg.connect(u, autocommit=True) as c:
        c.execute("INSERT INTO twin.layer_version (layer, version) VALUES ('building', 1)"
                  " ON CONFLICT (layer) DO UPDATE SET version = 1")  # fmt: skip
    return u


def _bump(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("UPDATE twin.layer_version SET version = version + 1 WHERE layer = 'building'")


def _direct(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT version FROM twin.layer_version WHERE layer = 'building'")
        return int(row.fetchone()[0])  # type: ignore[index]


class SlowReader(VersionReader):
    # The statement's snapshot is taken when it starts; the sleep keeps it in flight after.
    read_sql = "SELECT layer, version FROM twin.layer_version, pg_sleep(0.6)"


def test_concurrent_requests_share_one_read(url: str) -> None:
    async def go() -> tuple[list[int], int]:
        reader = VersionReader(url, role="twin_api", timeout_s=5)
        try:
            got = await asyncio.gather(*(reader.version_of(("building",)) for _ in range(50)))
            return list(got), reader.reads
        finally:
            await reader.close()

    got, reads = asyncio.run(go())
    assert got == [_direct(url)] * 50
    assert reads == 1


def test_a_request_never_gets_a_read_that_started_before_it(url: str) -> None:
    """A commit lands while a read is in flight; a request arriving after the commit must not
    take that read's (older) answer but wait for a read of its own."""

    async def go() -> tuple[int, int, int]:
        reader = SlowReader(url, role="twin_api", timeout_s=5)
        try:
            early = asyncio.create_task(reader.version_of(("building",)))
            await asyncio.sleep(0.2)  # the first read is under way, its snapshot taken
            await asyncio.to_thread(_bump, url)
            late = await reader.version_of(("building",))
            return await early, late, reader.reads
        finally:
            await reader.close()

    before = _direct(url)
    early, late, reads = asyncio.run(go())
    after = _direct(url)
    assert after == before + 1
    assert early == before  # the in-flight read did not see the commit: the test bites
    assert late == after
    assert reads == 2


def test_unreachable_database_is_a_clear_503_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes

    async def go() -> None:
        reader = VersionReader(f"postgresql://twin@127.0.0.1:{port}/twin", role="twin_api",
                               timeout_s=1)  # fmt: skip
        try:
            with pytest.raises(DatabaseUnavailableError, match="database unavailable"):
                await reader.versions()
            with pytest.raises(DatabaseUnavailableError):  # and again: no stuck state
                await reader.versions()
        finally:
            await reader.close()

    asyncio.run(go())


def test_a_closed_reader_refuses_instead_of_reconnecting(url: str) -> None:
    async def go() -> None:
        reader = VersionReader(url, role="twin_api", timeout_s=5)
        await reader.versions()
        await reader.close()
        with pytest.raises(DatabaseUnavailableError, match="shutting down"):
            await reader.versions()
        assert reader._conn is None

    asyncio.run(go())
