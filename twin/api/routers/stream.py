"""``/api/stream``: the push channel of the live twin, as Server-Sent Events.

It carries, as they are committed:
- ``event: alert``: an alert raised or changed (acknowledged, escalated, resolved), as
  ``/api/alerts`` shows it;
- ``event: task``: a task transition (dispatched, accepted, done, reassigned...) with the task;
- ``event: tiles``: tile layers whose data version went up (refetch their tiles);
- ``event: observation``: new sensor readings (as ``/api/live``; only with ``readings=true``).

Alerts and tasks are read from the change feed (:mod:`twin.feed`) as the caller, on the pool,
every ``TWIN_STREAM_POLL_S``: row-level security scopes them exactly as ``/api/alerts`` and
``/api/tasks``, so a district user never receives another district's events. Each of those
events has an ``id``; a client that reconnects with ``Last-Event-ID`` (browsers do it by
themselves) gets every change after that event and nothing twice; the id is a snapshot (see
:mod:`twin.feed`), so no transaction running elsewhere, however long, holds an event back. An
id that is malformed, or names transactions that had not started, is a 400 naming the header
(or ``since``). Tile and reading events carry
no id: they say what is current, not what happened, and a reconnect starts with the current
tile versions. A stream lasts at most a minute; the client reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from psycopg_pool import AsyncConnectionPool

from twin import feed
from twin.access.principal import CALLER_SQL, Principal, caller_params
from twin.api.deps import PoolDep, PrincipalDep, SettingsDep, client_address, require
from twin.api.errors import InvalidParameterError
from twin.api.routers.live import HEARTBEAT_S, STREAM_S, hub_of
from twin.db.queries import query
from twin.sense.bridge import ORIGIN
from twin.sense.live import LiveHub
from twin.settings import Settings

router = APIRouter(prefix="/api/stream", tags=["live"])


def _json(value: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, datetime | date):
            return o.isoformat()
        raise TypeError(type(o).__name__)

    return json.dumps(value, default=default, separators=(",", ":"))


def _event(kind: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {kind}\ndata: {_json(data)}\n\n".encode()


class _Reader:
    """Reads the feed as one caller: each read is one short transaction on the pool."""

    def __init__(self, pool: AsyncConnectionPool, who: Principal, settings: Settings,
                 client: str | None) -> None:  # fmt: skip
        self.pool, self.params = pool, caller_params(who, settings.api_db_role, client)

    async def read(self, after: feed.Cursor | None) -> tuple[list[feed.Change], feed.Cursor,
                                                             dict[str, int]]:  # fmt: skip
        async with self.pool.connection() as conn:
            # One snapshot for the whole read: the rows seen are those the new cursor covers.
            await conn.execute(query("feed.sql", "begin"))
            await conn.execute(CALLER_SQL, self.params)
            changes, cursor = await feed.changes(conn, after)
            return changes, cursor, await feed.versions(conn)


async def _events(
    reader: _Reader, first: tuple[list[feed.Change], feed.Cursor, dict[str, int]], *,
    poll_s: float, limit: int | None, hub: LiveHub | None, seconds: float,
) -> AsyncIterator[bytes]:  # fmt: skip
    yield b"retry: 1000\n: alerts, tasks, tiles\n\n"
    end = time.monotonic() + seconds
    changes, cursor, versions = first
    yield _event("tiles", versions)
    sent = 0
    beat = time.monotonic() + HEARTBEAT_S
    async with contextlib.AsyncExitStack() as stack:
        queue = await stack.enter_async_context(hub.subscribe()) if hub is not None else None
        while True:
            for change in changes:
                yield _event(change.kind, change.data, str(change.cursor))
                sent += 1
                if limit is not None and sent >= limit:
                    return
            while queue is not None and not queue.empty():
                item = queue.get_nowait()
                if "dropped" not in item:
                    yield _event("observation", {k: v for k, v in item.items() if k != ORIGIN})
            now = time.monotonic()
            if now >= end:
                return
            if now >= beat:
                yield b": keep-alive\n\n"
                beat = now + HEARTBEAT_S
            await asyncio.sleep(poll_s)
            changes, cursor, latest = await reader.read(cursor)
            bumped = {k: v for k, v in latest.items() if versions.get(k) != v}
            if bumped:
                yield _event("tiles", bumped)
                versions = latest


# Left out of the OpenAPI schema, as /api/live: an endless text/event-stream is no JSON answer
# a schema can describe, and a schema-driven client would wait on it for ever.
@router.get(
    "", summary="Alerts, task transitions, tile versions (and readings) as Server-Sent Events",
    response_class=StreamingResponse, include_in_schema=False,
    dependencies=[require("important", "alerts and tasks")],
)  # fmt: skip
async def stream(
    request: Request,
    pool: PoolDep,
    who: PrincipalDep,
    settings: SettingsDep,
    last_event_id: Annotated[str | None, Header(description="resume after this event")] = None,
    since: Annotated[
        str | None,
        Query(
            max_length=feed.MAX_ID_CHARS, description="resume after this event id (as the header)"
        ),
    ] = None,
    readings: Annotated[bool, Query(description="also new sensor readings")] = False,
    limit: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="close after N alert/task events")
    ] = None,
    timeout: Annotated[
        float, Query(gt=0, le=STREAM_S, description="close after this many seconds")
    ] = STREAM_S,
) -> StreamingResponse:
    """Changes as they are committed, scoped to the caller; resumable with ``Last-Event-ID``."""
    text = last_event_id if last_event_id is not None else since
    name = "Last-Event-ID" if last_event_id is not None else "since"
    reader = _Reader(pool, who, settings, client_address(request))
    try:
        after = feed.Cursor.parse(text) if text is not None else None
        # The first read before the answer starts: an id from the future is a 400 too.
        first = await reader.read(after)
    except feed.CursorError as exc:
        raise InvalidParameterError(name, str(exc)) from None
    hub = hub_of(request.app) if readings else None
    return StreamingResponse(
        _events(
            reader, first, poll_s=settings.stream_poll_s, limit=limit, hub=hub, seconds=timeout
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
