"""``twin serve``: the HTTP API under uvicorn, in one process or several."""

from __future__ import annotations

import gc
import socket
from typing import TYPE_CHECKING, Annotated

import typer

from twin.cli.support import load_settings
from twin.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI


def served_app(settings: Settings | None = None) -> FastAPI:
    """The app of a serving process, its start-up objects frozen: uvicorn's factory for several
    processes (settings from the environment), and the one process's app.

    Why freeze: what the imports and the app build leave behind (some 290 k objects) lives as
    long as the process, yet each full pass of the cyclic collector walked all of it again:
    pauses of about 200 ms every hundred requests, the whole p99 of 8 clients reading the
    city's cells (p50 30 ms). Frozen objects are left out of those passes (``gc.freeze``).
    """
    from twin.api.app import create_app

    app = create_app(settings)
    gc.collect()  # garbage of the start-up is freed, not frozen
    gc.freeze()
    return app


def run_server(settings: Settings, *, log_level: str = "info") -> None:
    """Serve the API on ``settings.host:port`` with ``settings.workers`` processes."""
    import uvicorn

    from twin.logredact import uvicorn_log_config

    # uvicorn's logging, with credentials (?token=..., twin_ tokens) redacted in every line.
    log_config = uvicorn_log_config()

    if settings.workers == 1:
        app = served_app(settings)
        # proxy_headers=False: uvicorn would otherwise take X-Forwarded-For from 127.0.0.1; the
        # API reads it itself, only from TWIN_TRUSTED_PROXIES (twin.api.deps.client_address).
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level,
                    log_config=log_config, proxy_headers=False)  # fmt: skip
        return
    # Several processes: each builds its app from the environment (TWIN_*), as this one did.
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(
        "twin.cli.serve:served_app", factory=True, workers=settings.workers,
        host=settings.host, port=settings.port, log_level=log_level, log_config=log_config,
        proxy_headers=False,
    )  # fmt: skip
    sock = config.bind_socket()
    # uvicorn binds this shared socket without IPPROTO_TCP, so asyncio does not set TCP_NODELAY
    # on the connections it accepts, and small responses then wait ~40 ms for delayed ACKs.
    # Accepted sockets inherit the option from the listening one on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    Multiprocess(config, sockets=[sock]).run()


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (TWIN_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (TWIN_PORT).")] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="Server processes (TWIN_WORKERS).")
    ] = None,
) -> None:
    """Run the HTTP API with uvicorn (OpenAPI at /docs)."""
    settings = load_settings()
    overrides = {
        k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None
    }
    if overrides:
        settings = settings.model_copy(update=overrides)
    typer.echo(f"serving on http://{settings.host}:{settings.port} (map at /map, docs at /docs)")
    run_server(settings, log_level=log_level)
