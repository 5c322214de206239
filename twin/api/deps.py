"""FastAPI dependencies, as ``Annotated`` aliases used by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from twin.access import PUBLIC, Principal
from twin.api.errors import DatabaseUnavailableError
from twin.settings import Settings


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool | None = request.app.state.pool
    if pool is None:
        raise DatabaseUnavailableError(request.app.state.db_error or "database not configured")
    return pool


async def get_conn(
    pool: Annotated[AsyncConnectionPool, Depends(get_pool)],
) -> AsyncIterator[AsyncConnection]:
    """A pooled connection for the request; its transaction commits when the request ends."""
    async with pool.connection() as conn:
        yield conn


def get_principal() -> Principal:
    """The caller. Anonymous (public) until authentication arrives."""
    return PUBLIC


SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
Conn = Annotated[AsyncConnection, Depends(get_conn)]
