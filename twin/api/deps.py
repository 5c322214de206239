"""FastAPI dependencies, as ``Annotated`` aliases used by every router.

Each request gets one pooled connection and one transaction. Before any handler query runs,
the caller is identified (a bearer token, else the anonymous public) and the transaction is
switched to the API's database role with the caller's scope (``SET LOCAL`` semantics through
``set_config(..., true)``), so row-level security in PostgreSQL holds whatever the handler does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from twin.access import PUBLIC, Principal
from twin.api.errors import DatabaseUnavailableError, UnauthorizedError
from twin.auth import TOKEN_PREFIX, principal_for_token
from twin.settings import Settings

SCOPE_SQL = (
    "SELECT set_config('role', %(role)s, true), set_config('twin.scope', %(scope)s, true),"
    " set_config('twin.actor', %(actor)s, true)"
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> AsyncConnectionPool:
    pool: AsyncConnectionPool | None = request.app.state.pool
    if pool is None:
        raise DatabaseUnavailableError(request.app.state.db_error or "database not configured")
    return pool


def bearer_token(request: Request) -> str | None:
    """The bearer token of the request, None without one; 401 for a malformed header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise UnauthorizedError("expected 'Authorization: Bearer twin_...' (see twin users add)")
    return token


@dataclass
class Session:
    conn: AsyncConnection
    principal: Principal


async def get_session(
    request: Request, pool: Annotated[AsyncConnectionPool, Depends(get_pool)]
) -> AsyncIterator[Session]:
    """The request's connection, in a transaction scoped to its caller; commits at the end."""
    token = bearer_token(request)
    settings: Settings = request.app.state.settings
    async with pool.connection() as conn:
        who = PUBLIC
        if token is not None:
            found = await principal_for_token(conn, token)
            if found is None:
                raise UnauthorizedError("unknown or revoked token")
            who = found
        await conn.execute(
            SCOPE_SQL, {"role": settings.api_db_role, "scope": who.scope_setting,
                        "actor": who.name},
        )  # fmt: skip
        request.state.principal = who
        yield Session(conn, who)


def get_conn(session: Annotated[Session, Depends(get_session)]) -> AsyncConnection:
    return session.conn


def get_principal(session: Annotated[Session, Depends(get_session)]) -> Principal:
    """The caller: the user of the bearer token, else the anonymous public."""
    return session.principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
Conn = Annotated[AsyncConnection, Depends(get_conn)]
