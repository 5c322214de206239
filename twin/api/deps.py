"""FastAPI dependencies, as ``Annotated`` aliases used by every router.

Each request gets one pooled connection and one transaction. Before any handler query runs,
the caller is identified (a bearer token, else the anonymous public) and the transaction is
switched to the API's database role with the caller's scope (``SET LOCAL`` semantics through
``set_config(..., true)``), so row-level security in PostgreSQL holds whatever the handler does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from twin.access import PUBLIC, Principal
from twin.api.errors import DatabaseUnavailableError, ForbiddenError, UnauthorizedError
from twin.auth import TOKEN_PREFIX, principal_for_token
from twin.settings import Settings

# The dependencies below are ``async def`` although they do not await: FastAPI runs a plain
# ``def`` dependency in a worker thread, a hop that costs more than a cached tile.
SCOPE_SQL = (
    "SELECT set_config('role', %(role)s, true), set_config('twin.scope', %(scope)s, true),"
    " set_config('twin.actor', %(actor)s, true)"
)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_pool(request: Request) -> AsyncConnectionPool:
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


def public_principal(settings: Settings) -> Principal:
    """The anonymous caller, with the clearance this deployment gives it."""
    if settings.public_clearance == PUBLIC.public_clearance:
        return PUBLIC
    return replace(PUBLIC, public_clearance=settings.public_clearance)


@dataclass
class Session:
    conn: AsyncConnection
    principal: Principal


@asynccontextmanager
async def open_session(request: Request, pool: AsyncConnectionPool) -> AsyncIterator[Session]:
    """A pooled connection in a transaction scoped to the request's caller; commits at the end.

    For handlers that need a connection only on some paths (a tile missing from the cache)."""
    token = bearer_token(request)
    settings: Settings = request.app.state.settings
    async with pool.connection() as conn:
        who = public_principal(settings)
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


async def get_session(
    request: Request, pool: Annotated[AsyncConnectionPool, Depends(get_pool)]
) -> AsyncIterator[Session]:
    """The request's connection, in a transaction scoped to its caller; commits at the end."""
    async with open_session(request, pool) as session:
        yield session


# scope="function": the transaction commits before the response is sent, so a 2xx answer means
# the write is in the database; a commit that fails (database gone) is answered 503, never lost.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_conn(session: SessionDep) -> AsyncConnection:
    return session.conn


async def get_principal(session: SessionDep) -> Principal:
    """The caller: the user of the bearer token, else the anonymous public."""
    return session.principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
Conn = Annotated[AsyncConnection, Depends(get_conn)]


def ensure_cleared(who: Principal, level: str, what: str) -> None:
    """Refuse ``what`` (labelled ``level``) to a caller not cleared for it: 401 without a
    token (signing in may help), 403 with one."""
    if who.cleared_for(level):
        return
    if who.anonymous:
        raise UnauthorizedError(f"{what} is {level} data: sign in with a token (viewer or above)")
    raise ForbiddenError(f"{what} is {level} data, beyond the {who.role} role")


def require(level: str, what: str) -> Any:
    """A dependency refusing callers not cleared for ``level`` (routers of labelled data)."""

    async def check(who: PrincipalDep) -> None:
        ensure_cleared(who, level, what)

    return Depends(check)
