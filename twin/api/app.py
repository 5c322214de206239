"""The app factory. ``create_app(settings)`` builds a fresh app; the lifespan opens the pool.

The pool opens without waiting for the database, so the API starts (and answers 503 on
``/healthz``) while the database is down, and recovers without a restart when it comes back:
each connection is checked before it is handed out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

import twin
from twin.access.audit import AuditBuffer
from twin.access.principal import PUBLIC
from twin.api import error_docs, errors
from twin.api.hosts import TrustedHostMiddleware
from twin.api.limits import BodyLimitMiddleware
from twin.api.reads import ReadRouter, Replica
from twin.api.routers import addresses, cells, features, health, simulations, tiles, webmap
from twin.api.routers import alerts as alerts_router
from twin.api.routers import catalog as catalog_router
from twin.api.routers import cockpit as cockpit_router
from twin.api.routers import files as files_router
from twin.api.routers import history as history_router
from twin.api.routers import live as live_router
from twin.api.routers import me as me_router
from twin.api.routers import nowcast as nowcast_router
from twin.api.routers import processes as processes_router
from twin.api.routers import review as review_router
from twin.api.routers import risk as risk_router
from twin.api.routers import sta as sta_router
from twin.api.routers import stream as stream_router
from twin.api.routers import tasks as tasks_router
from twin.api.security_headers import SecurityHeadersMiddleware, install_cors
from twin.db.engine import DatabaseNotConfiguredError, database_url, libpq_url
from twin.reporting.answers import AnswerCache
from twin.runs import jobs
from twin.sense.maintain import Maintainer
from twin.settings import Settings
from twin.tiles.cache import TileCache
from twin.tiles.versions import VersionReader

log = logging.getLogger(__name__)


def connection_options(settings: Settings, *, public: bool = False) -> str:
    """libpq ``options`` of API connections.

    A request's connection starts with ``twin.scope=none``: a statement outside the request's
    scoped transaction sees no scoped rows (fail closed); each request sets its own scope. A
    ``public`` connection is the anonymous caller for its whole life: the API role, every
    area, actor ``anonymous``.

    Every statement is planned for its own parameters (``plan_cache_mode``): psycopg prepares
    a query from its fifth run, and PostgreSQL may then keep one generic plan for any
    parameters. For a bounding box that plan cannot know how much the box holds: the whole
    city's res-7 cells went from 1 ms (the key's index, 428 rows) to 130 ms (the spatial index
    and 149 k rows filtered), from the sixth request of a benchmark on.
    """
    options = (
        f"-c statement_timeout={settings.statement_timeout_ms}"
        f" -c max_parallel_workers_per_gather={settings.parallel_workers}"
        " -c plan_cache_mode=force_custom_plan"
    )
    if not public:
        return f"{options} -c twin.scope=none"
    return (
        f"{options} -c role={settings.api_db_role} -c twin.scope={PUBLIC.scope_setting}"
        f" -c twin.actor={PUBLIC.name}"
    )


def _keep_autocommit(autocommit: bool) -> Callable[[AsyncConnection], Awaitable[None]]:
    """A pool's ``reset``: every connection goes back into the pool in the pool's own mode.

    psycopg_pool's ``check_connection`` turns autocommit on for its probe and off again after.
    A request cancelled between the two (a client leaving an SSE stream while it waits for a
    connection) put the connection back in autocommit, and from then on every transaction
    setting on it did nothing: ``SET TRANSACTION ISOLATION LEVEL REPEATABLE READ`` only warned,
    so the stream failed on every read, and a caller's scope set for the transaction lasted one
    statement (the next saw none: closed, but wrong)."""

    async def reset(conn: AsyncConnection) -> None:
        if conn.autocommit != autocommit:
            await conn.set_autocommit(autocommit)

    return reset


def make_pool(
    url: str, settings: Settings, *, public: bool = False, name: str = "twin-api"
) -> AsyncConnectionPool:
    """The API's pool; ``public=True``: connections fixed to the anonymous caller, in autocommit
    (one statement per read, no transaction or scope to set up: public tiles use them).
    ``name``: the pool's (and its connections' application) name; a replica's carries its own."""
    name = f"{name}-public" if public else name
    return AsyncConnectionPool(
        url,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        timeout=settings.pool_timeout_s,
        open=False,
        check=AsyncConnectionPool.check_connection,
        reset=_keep_autocommit(public),
        # Backoff grows without bound while an attempt lasts, so keep attempts short: once one
        # gives up, the next waiting request starts a fresh attempt at once.
        reconnect_timeout=settings.pool_reconnect_timeout_s,
        kwargs={
            "options": connection_options(settings, public=public),
            "connect_timeout": max(1, int(settings.pool_timeout_s)),
            "application_name": name,
            "autocommit": public,
        },
        name=name,
    )


def make_reads(settings: Settings) -> ReadRouter | None:
    """The read router over ``TWIN_READ_DATABASE_URLS`` (None without replicas): each replica
    gets a scoped and a public pool set up exactly as the primary's."""
    replicas = []
    for i, raw in enumerate(settings.read_urls, start=1):
        url = libpq_url(raw)
        name = f"twin-api-read{i}"
        replicas.append(Replica(
            name=f"read{i}", url=url, pool=make_pool(url, settings, name=name),
            public_pool=make_pool(url, settings, public=True, name=name),
        ))  # fmt: skip
    if not replicas:
        return None
    return ReadRouter(
        replicas, wait_s=settings.read_replica_wait_ms / 1000, retry_s=settings.read_replica_retry_s
    )


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = None
    app.state.public_pool = None
    app.state.versions = None
    app.state.reads = None
    app.state.db_error = None
    try:
        url = database_url(settings)
    except DatabaseNotConfiguredError as exc:
        app.state.db_error = str(exc)
        log.warning("starting without a database: %s", exc)
        yield
        return
    app.state.tiles = TileCache(settings.tile_cache_mb * 2**20, settings.redis_url)
    pool = make_pool(url, settings)
    await pool.open(wait=False)
    app.state.pool = pool
    app.state.public_pool = make_pool(url, settings, public=True)
    await app.state.public_pool.open(wait=False)
    reads = app.state.reads = make_reads(settings)
    if reads is not None:
        await reads.open()
    app.state.versions = VersionReader(
        url, role=settings.api_db_role, timeout_s=settings.pool_timeout_s,
        options=connection_options(settings), with_lsn=reads is not None,
    )  # fmt: skip
    app.state.jobs = jobs.executor()
    audit_writer = asyncio.create_task(
        app.state.audit.run(pool, settings.api_db_role, settings.audit_flush_seconds)
    )
    # Roll-ups of readings and the partitions ahead (twin.sense.maintain).
    maintainer = None
    if settings.sense_maintenance_interval_s > 0:
        app.state.sense_maintainer = Maintainer(url, settings)
        maintainer = asyncio.create_task(app.state.sense_maintainer.run())
    try:
        yield
    finally:
        for task in (audit_writer, maintainer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await app.state.audit.flush(pool, settings.api_db_role)
        app.state.jobs.shutdown(wait=False, cancel_futures=True)
        await app.state.versions.close()
        if reads is not None:
            await reads.close()
        await app.state.public_pool.close()
        await pool.close()
        await app.state.tiles.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API for ``settings`` (read from the environment when omitted)."""
    settings = settings or Settings()
    app = FastAPI(
        title="City twin",
        version=twin.__version__,
        summary="A city information model on H3 cells: features, tiles, risk and simulations.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.pool = None
    app.state.versions = None  # the lifespan starts the layer version reader
    app.state.public_pool = None
    app.state.reads = None  # the lifespan opens the read replicas' pools (TWIN_READ_...)
    app.state.db_error = "not started"
    app.state.tiles = TileCache(settings.tile_cache_mb * 2**20)
    app.state.answers = AnswerCache(settings.cockpit_cache_seconds)  # cockpits, shared
    app.state.audit = AuditBuffer()  # tile reads of core layers, written in batches
    errors.install(app)
    app.include_router(health.router)
    app.include_router(cells.router)
    app.include_router(addresses.router)
    app.include_router(tiles.router)
    app.include_router(features.router)
    app.include_router(catalog_router.router)
    app.include_router(files_router.router)
    app.include_router(simulations.router)
    app.include_router(processes_router.router)
    app.include_router(risk_router.router)
    app.include_router(alerts_router.router)
    app.include_router(tasks_router.router)
    app.include_router(cockpit_router.router)
    app.include_router(review_router.router)
    app.include_router(me_router.router)
    app.include_router(webmap.router)
    app.include_router(sta_router.router)
    app.include_router(live_router.router)
    app.include_router(history_router.router)
    app.include_router(stream_router.router)
    app.include_router(nowcast_router.router)
    error_docs.install(app)  # the error answers of every operation, in /openapi.json
    # The last added runs first: security headers on every answer (413 and 400 included),
    # then the Host check, then body limits before anything reads the body, then CORS.
    install_cors(app, settings)
    app.add_middleware(BodyLimitMiddleware, default=settings.max_body_bytes)
    app.add_middleware(TrustedHostMiddleware, settings=settings)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
