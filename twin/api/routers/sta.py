"""``/sta/v1.1``: the OGC SensorThings API 1.1 (read, create, dataArray batch of Observations).

Thin handlers over ``twin.sense``: every statement runs on the request's connection, as the
caller under row-level security. Sensors and their readings are important data: reads need
that clearance, writes the operator right (``TWIN_OPEN_OPERATIONS`` opens them to callers
without a token in a demo). A device's token (``twin sense device add``) may create only
Observations of the device's own datastreams, whatever its role; any other write is a 403,
recorded in the audit log (``sta.refused``) in a transaction of its own.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, BackgroundTasks, Body, Request, Response

from twin.access import audit
from twin.access.principal import Principal
from twin.api.deps import Conn, PrincipalDep, SettingsDep, client_address, open_session, require
from twin.api.errors import ForbiddenError, InvalidParameterError, NotFoundError
from twin.api.routers.live import hub_of
from twin.api.schemas.sta import CreatedLinks, Entity, ReadAnswer, ServiceRoot
from twin.errors import DatastreamNotOwnedError
from twin.sense import query, write
from twin.sense.bridge import observation_json
from twin.sense.entities import SETS
from twin.sense.odata import ODataError, parse_options
from twin.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/sta/v1.1"
router = APIRouter(
    prefix=PREFIX, tags=["sensorthings"],
    dependencies=[require("important", "SensorThings data (sensors and readings)")],
)  # fmt: skip

CONFORMANCE = [
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete/create-entity",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-observations-via-mqtt/observations-creation",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/receive-updates-via-mqtt/receive-updates",
]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _bad(exc: Exception) -> InvalidParameterError:
    if isinstance(exc, ODataError):
        return InvalidParameterError(exc.option, str(exc).partition(": ")[2])
    return InvalidParameterError("body", str(exc))


@router.get("", summary="SensorThings service root", response_model=ServiceRoot)
async def root(request: Request) -> dict[str, Any]:
    base = base_url(request)
    return {
        "value": [{"name": name, "url": f"{base}/{name}"} for name in SETS],
        "serverSettings": {"conformance": CONFORMANCE},
    }


#: Members an entity lacks (no ``@iot.count`` without ``$count``) stay absent, not null.
@router.get(
    "/{path:path}", summary="An entity set, an entity, or a navigation path",
    response_model=ReadAnswer, response_model_exclude_unset=True,
)  # fmt: skip
async def read(path: str, request: Request, conn: Conn, settings: SettingsDep) -> dict[str, Any]:
    """``Things``, ``Things(1)``, ``Things(1)/Datastreams`` ... with ``$filter``, ``$expand``,
    ``$select``, ``$orderby``, ``$top``, ``$skip`` and ``$count``."""
    raw = dict(request.query_params)
    try:
        target = query.parse_path(path)
        opts = parse_options(raw)
        return await query.read(
            conn, target, opts, base=base_url(request), page_size=settings.sta_page_size,
            self_url=str(request.url).split("?")[0], raw=raw,
        )  # fmt: skip
    except query.NotFound as exc:
        raise NotFoundError(str(exc)) from None
    except ODataError as exc:
        raise _bad(exc) from None


async def _keep_refused(request: Request, rows: list[write.DeadLetter]) -> None:
    """Dead letters of a refused request, in their own transaction (the request's is rolled
    back), as the caller. Best effort: the caller gets its 400 either way."""
    try:
        async with open_session(request, request.app.state.pool) as session:
            await write.store_dead_letters(session.conn, rows, "http", session.principal.name)
    except (psycopg.Error, OSError) as exc:
        log.warning("could not keep %d refused observation(s): %s", len(rows), exc)


async def _raw(request: Request, body: Any) -> bytes:
    try:
        return await request.body()
    except RuntimeError:  # the stream was read some other way
        return json.dumps(body).encode()


def _may_write(who: Principal, settings: Settings) -> None:
    """Operators (and callers without a token where TWIN_OPEN_OPERATIONS says so); a device
    writes its own datastreams' Observations whatever its role (checked per datastream)."""
    if not who.device and not who.may_operate(settings.open_operations):
        raise ForbiddenError("creating SensorThings entities needs the operator role")


async def _device_may_create(request: Request, who: Principal, settings: Settings,
                             entity_set: str, resource: str) -> None:  # fmt: skip
    if who.device and entity_set != "Observations":
        exc = ForbiddenError(f"device {who.name!r} may create only Observations of its own "
                             f"datastreams, not {entity_set}")  # fmt: skip
        await _refused(request, who, settings, exc, resource)
        raise exc


async def _refused(request: Request, who: Principal, settings: Settings, exc: ForbiddenError,
                   resource: str) -> None:  # fmt: skip
    """The audit row of a device's refused write, committed although the request rolls back."""
    datastream = getattr(exc, "datastream", None)
    if datastream is not None:
        resource = f"sta/Datastreams({datastream})"
    await audit.record_apart(
        request.app.state.pool, who, settings.api_db_role, "sta.refused", resource,
        client=client_address(request),
        detail={"reason": str(exc), "device": who.name, "datastream": datastream, "via": "http"},
    )  # fmt: skip


@router.post(
    "/CreateObservations", status_code=201, summary="Observations, dataArray form",
    response_model=CreatedLinks,
)  # fmt: skip
async def create_observations(
    request: Request, conn: Conn, settings: SettingsDep, who: PrincipalDep,
    tasks: BackgroundTasks, body: Annotated[Any, Body()],
) -> list[str]:  # fmt: skip
    """A list of ``{"Datastream", "components", "dataArray"}``; the answer has one selfLink
    (or ``error: ...``) per row, in order."""
    _may_write(who, settings)
    base = base_url(request)
    dead: list[write.DeadLetter] = []
    try:
        answers, ids = await write.create_observations(
            conn, body, base, who=who, future_tolerance_s=settings.sense_future_tolerance_s,
            dead=dead, path=request.url.path,
        )  # fmt: skip
    except write.Rejected as exc:
        await _keep_refused(request, [(request.url.path, exc.reason, await _raw(request, body),
                                       exc.datastream)])  # fmt: skip
        raise _bad(exc) from None
    except write.BadEntity as exc:
        raise _bad(exc) from None
    except DatastreamNotOwnedError as exc:
        await _refused(request, who, settings, exc, "sta/CreateObservations")
        raise
    if dead:  # committed with the rows that were stored
        await write.store_dead_letters(conn, dead, "http", who.name)
    if ids:
        tasks.add_task(_publish_ids, request, ids)
    return answers


@router.post(
    "/{path:path}", status_code=201, summary="Create an entity", response_model=Entity,
    response_model_exclude_unset=True,
)  # fmt: skip
async def create(
    path: str, request: Request, response: Response, conn: Conn, settings: SettingsDep,
    who: PrincipalDep, tasks: BackgroundTasks, body: Annotated[Any, Body()],
) -> dict[str, Any]:  # fmt: skip
    """POST to an entity set (or ``Parent(id)/Nav``): 201 with ``Location``; related entities
    may be created inline or referenced as ``{"@iot.id": n}``."""
    _may_write(who, settings)
    base = base_url(request)
    try:
        target = query.parse_path(path)
        await _device_may_create(request, who, settings, target.entity_set.name,
                                 f"sta/{path}"[:300])  # fmt: skip
        if target.ident is not None:
            raise write.BadEntity("POST goes to an entity set, not to one entity")
        parent = None
        if target.parent_set is not None and target.nav is not None:
            parent = (target.parent_set.name, target.nav.name, target.parent_id or 0)
        ident = await write.create(
            conn, target.entity_set.name, body, parent=parent, who=who,
            future_tolerance_s=settings.sense_future_tolerance_s,
        )  # fmt: skip
        es = target.entity_set
        created = await query.read(
            conn, query.Path(es, ident), parse_options({}), base=base,
            page_size=settings.sta_page_size, self_url="", raw={},
        )  # fmt: skip
    except query.NotFound as exc:
        raise NotFoundError(str(exc)) from None
    except write.Rejected as exc:
        await _keep_refused(request, [(request.url.path, exc.reason, await _raw(request, body),
                                       exc.datastream)])  # fmt: skip
        raise _bad(exc) from None
    except (ODataError, write.BadEntity) as exc:
        raise _bad(exc) from None
    except DatastreamNotOwnedError as exc:
        await _refused(request, who, settings, exc, f"sta/{path}"[:300])
        raise
    response.headers["Location"] = f"{base}/{es.name}({ident})"
    if es.name == "Observations":
        tasks.add_task(_publish_ids, request, [ident])
    else:
        await audit.record(conn, who, "sta.create", f"sta/{es.name}({ident})")
    return created


async def _publish_ids(request: Request, ids: list[int]) -> None:
    """After the commit: the new Observations to the live feed (SSE, MQTT fan-out)."""
    hub = hub_of(request.app)
    if hub.subscribers == 0:
        return
    pool = request.app.state.pool
    async with pool.connection() as conn:
        cur = await conn.execute(
            "SELECT id, sensor_id, observed_at, observed_until, result_time, value, quality,"
            " parameters FROM twin.observation WHERE id = ANY(%(i)s) ORDER BY id", {"i": ids}
        )  # fmt: skip
        rows = await cur.fetchall()
    base = base_url(request)
    hub.publish([observation_json(write.Reading(r[1], r[2], r[5], r[3], r[4], r[6], r[7]), r[0],
                                  base) for r in rows])  # fmt: skip
