"""FastAPI dependencies, as ``Annotated`` aliases used by every router.

Each request gets one pooled connection and one transaction. Before any handler query runs,
the caller is identified (a bearer token, else the anonymous public) and the transaction is
switched to the API's database role with the caller's scope (``SET LOCAL`` semantics through
``set_config(..., true)``), so row-level security in PostgreSQL holds whatever the handler does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Annotated, Any

from fastapi import Depends, Request
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from twin.access.principal import CALLER_SQL, PUBLIC, Principal, caller_params
from twin.access.tokens import TOKEN_PREFIX, principal_for_token, remembered
from twin.api.errors import DatabaseUnavailableError, ForbiddenError, UnauthorizedError
from twin.api.reads import ReadRouter
from twin.settings import Settings

#: Methods that write nothing (RFC 9110 section 9.2.1).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# The dependencies below are ``async def`` although they do not await: FastAPI runs a plain
# ``def`` dependency in a worker thread, a hop that costs more than a cached tile.


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


def _ip(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        return None


def client_address(request: Request) -> str | None:
    """The caller's IP address for the audit log: the peer's, or, when the peer is one of the
    trusted proxies (``TWIN_TRUSTED_PROXIES``, none by default), the last address in
    ``X-Forwarded-For`` that is not a trusted proxy. None when it is not an IP address."""
    settings: Settings = request.app.state.settings
    peer = _ip(request.client.host if request.client else None)
    trusted = settings.trusted_proxy_networks
    if peer is None or not trusted or not any(peer in net for net in trusted):
        return str(peer) if peer is not None else None
    hops = [h for v in request.headers.getlist("x-forwarded-for") for h in v.split(",")]
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:
            break  # a malformed hop: trust nothing before it
        if not any(addr in net for net in trusted):
            return str(addr)
        peer = addr
    return str(peer)


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
            found = await principal_for_token(conn, token, cache_s=settings.auth_cache_seconds)
            if found is None:
                raise UnauthorizedError("unknown or revoked token")
            who = found
        await conn.execute(
            CALLER_SQL, caller_params(who, settings.api_db_role, client_address(request))
        )
        request.state.principal = who
        yield Session(conn, who)


async def get_session(
    request: Request, pool: Annotated[AsyncConnectionPool, Depends(get_pool)]
) -> AsyncIterator[Session]:
    """The request's connection, in a transaction scoped to its caller; commits at the end.
    After a write has committed, shared answers (cockpits) are forgotten, except after sensor
    readings: they reach a cockpit only through the alerts the rule watch writes, and a storm's
    stream of them would otherwise keep every cockpit uncached."""
    async with open_session(request, pool) as session:
        yield session
    if request.method not in SAFE_METHODS and not request.url.path.startswith("/sta/"):
        request.app.state.answers.clear()


# scope="function": the transaction commits before the response is sent, so a 2xx answer means
# the write is in the database; a commit that fails (database gone) is answered 503, never lost.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def get_conn(session: SessionDep) -> AsyncConnection:
    return session.conn


async def get_principal(session: SessionDep) -> Principal:
    """The caller: the user of the bearer token, else the anonymous public."""
    return session.principal


async def resolve_principal(request: Request, pool: AsyncConnectionPool) -> Principal:
    """The caller, looking its token up on the primary only when it is not remembered (the
    lookup writes ``last_used_at``: a replica cannot take it)."""
    settings: Settings = request.app.state.settings
    token = bearer_token(request)
    if token is None:
        return public_principal(settings)
    known, who = remembered(token)
    if not known:
        async with pool.connection() as conn:
            who = await principal_for_token(conn, token, cache_s=settings.auth_cache_seconds)
    if who is None:
        raise UnauthorizedError("unknown or revoked token")
    return who


@asynccontextmanager
async def open_read_session(request: Request, pool: AsyncConnectionPool) -> AsyncIterator[Session]:
    """:func:`open_session` for a request that only reads: on a read replica
    (``TWIN_READ_DATABASE_URLS``) when one is healthy, the caller's role, scope, actor and
    client set exactly as on the primary, so row-level security holds there too; else (no
    replicas, all down) on the primary. Callers who may see unsuppressed people counts stay on
    the primary: their reads are audited in the same transaction."""
    reads: ReadRouter | None = request.app.state.reads
    if reads is None:
        async with open_session(request, pool) as session:
            yield session
        return
    who = await resolve_principal(request, pool)
    if who.can_see_people:
        async with open_session(request, pool) as session:
            yield session
        return
    params = caller_params(who, request.app.state.settings.api_db_role, client_address(request))

    async def setup(conn: AsyncConnection) -> None:
        await conn.execute(CALLER_SQL, params)

    request.state.principal = who
    async with reads.connection(pool.connection, public=False, setup=setup) as conn:
        yield Session(conn, who)


async def get_read_session(
    request: Request, pool: Annotated[AsyncConnectionPool, Depends(get_pool)]
) -> AsyncIterator[Session]:
    """The request's read-only connection (:func:`open_read_session`); commits at the end."""
    async with open_read_session(request, pool) as session:
        yield session


ReadSessionDep = Annotated[Session, Depends(get_read_session, scope="function")]


async def get_read_conn(session: ReadSessionDep) -> AsyncConnection:
    return session.conn


async def get_read_principal(session: ReadSessionDep) -> Principal:
    return session.principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
PoolDep = Annotated[AsyncConnectionPool, Depends(get_pool)]
Conn = Annotated[AsyncConnection, Depends(get_conn)]
#: A connection and caller for handlers that only read: a read replica's when configured.
ReadConn = Annotated[AsyncConnection, Depends(get_read_conn)]
ReadPrincipalDep = Annotated[Principal, Depends(get_read_principal)]


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
