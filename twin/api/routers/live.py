"""``/api/live``: Server-Sent Events of new observations, for the map to follow readings
without a reload; the router's lifespan also runs the MQTT bridge when ``TWIN_MQTT_URL`` is set
(in one process only, however many ``TWIN_WORKERS``: :mod:`twin.sense.elect`), the rule watch
(``TWIN_LIVE_ALERTS``) and, with it, the nowcast loop (``TWIN_NOWCAST_EVERY_S``).

Each event is ``event: observation`` with the SensorThings Observation JSON (``@iot.id``,
``phenomenonTime``, ``result``, ``Datastream``) as data; a comment line every 15 s keeps
proxies from closing an idle stream. A stream lasts at most a minute (the client reconnects).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import StreamingResponse

from twin.alerts.rules import load_rules
from twin.alerts.watch import RuleWatch
from twin.api.deps import require
from twin.cancellation import get_within
from twin.db.engine import DatabaseNotConfiguredError, database_url
from twin.runs.nowloop import NowcastLoop
from twin.sense.bridge import ORIGIN, Bridge, running
from twin.sense.elect import Elected
from twin.sense.live import LiveHub

log = logging.getLogger(__name__)
HEARTBEAT_S = 15.0
# A stream ends after this long and the client reconnects: a server shutting down waits for open
# responses, so none may last for ever.
STREAM_S = 60.0


def hub_of(app: Any) -> LiveHub:
    """The app's live feed (made on first use)."""
    hub: LiveHub | None = getattr(app.state, "live_hub", None)
    if hub is None:
        hub = app.state.live_hub = LiveHub()
    return hub


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.settings
    hub = hub_of(app)
    try:
        url = database_url(settings)
    except DatabaseNotConfiguredError as exc:
        if settings.mqtt_url:
            log.warning("not starting the MQTT bridge: %s", exc)
        yield
        return
    async with contextlib.AsyncExitStack() as stack:
        if settings.live_alerts:
            rules, _ = load_rules(settings.rules_dir)
            watch = app.state.rule_watch = RuleWatch(url, rules, hub=hub)
            await stack.enter_async_context(running(watch))
            if settings.nowcast_every_s > 0:
                loop = app.state.nowcast_loop = NowcastLoop(
                    settings, rules, every_s=settings.nowcast_every_s
                )
                await stack.enter_async_context(running(loop))
        if settings.mqtt_url:
            await stack.enter_async_context(_bridge(app, settings, url, hub))
        yield


@asynccontextmanager
async def _bridge(app: FastAPI, settings: Any, url: str, hub: LiveHub) -> AsyncIterator[None]:
    base = f"http://{settings.host}:{settings.port}/sta/v1.1"
    bridge = Bridge(settings.mqtt_url, url, base=base, hub=hub, selects=settings.mqtt_selects,
                    future_tolerance_s=settings.sense_future_tolerance_s,
                    client_id=settings.mqtt_client_id,
                    session_expiry_s=settings.mqtt_session_expiry_s)  # fmt: skip
    app.state.sense_bridge = bridge
    # Every worker of `twin serve --workers N` gets here; the advisory lock keyed by the client
    # id lets one of them run the bridge (the others stand by and take over if it goes).
    election = app.state.sense_election = Elected(bridge, url, name=settings.mqtt_client_id)
    log.info("MQTT bridge on %s (in the process that holds its lock)", settings.mqtt_url)
    async with running(election):
        yield


router = APIRouter(prefix="/api/live", tags=["live"], lifespan=lifespan)


async def _events(
    hub: LiveHub, datastreams: set[int] | None, limit: int | None
) -> AsyncIterator[bytes]:
    sent = 0
    yield b"retry: 1000\n: live observations\n\n"
    end = time.monotonic() + STREAM_S
    async with hub.subscribe() as queue:
        while (limit is None or sent < limit) and time.monotonic() < end:
            wait = min(HEARTBEAT_S, max(0.0, end - time.monotonic()))
            item = await get_within(queue, wait)
            if item is None:
                yield b": keep-alive\n\n"
                continue
            if "dropped" in item:
                yield b"event: dropped\ndata: {}\n\n"
                continue
            ds = (item.get("Datastream") or {}).get("@iot.id")
            if datastreams is not None and ds not in datastreams:
                continue
            data = json.dumps({k: v for k, v in item.items() if k != ORIGIN})
            sent += 1
            yield f"id: {item.get('@iot.id', '')}\nevent: observation\ndata: {data}\n\n".encode()


# Left out of the OpenAPI schema: an endless text/event-stream is no JSON response a schema can
# describe, and a schema-driven client (the fuzz tests) would wait on it for ever.
@router.get(
    "", summary="New observations as Server-Sent Events", response_class=StreamingResponse,
    dependencies=[require("important", "sensor readings")], include_in_schema=False,
)  # fmt: skip
async def live(
    request: Request,
    datastream: Annotated[
        list[int] | None, Query(description="only these datastream (sensor) ids; repeat")
    ] = None,
    limit: Annotated[int | None, Query(ge=1, le=1_000_000, description="close after N")] = None,
) -> StreamingResponse:
    """A stream of ``event: observation`` lines as readings are stored (over MQTT or POST)."""
    wanted = set(datastream) if datastream else None
    return StreamingResponse(
        _events(hub_of(request.app), wanted, limit), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )  # fmt: skip
