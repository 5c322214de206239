"""Creating SensorThings entities: POST of each entity set (with deep insert of related
entities and ``{"@iot.id": n}`` references), and Observations one by one or in the dataArray
batch form (``POST CreateObservations``).

Observations are stored with ``ON CONFLICT DO NOTHING`` on (datastream, phenomenon time), so a
replayed reading is harmless: its answer is the row already there. An Observation of an unknown
Datastream, outside its Datastream's physical range (``properties.physicalRange``) or too far in
the future is :class:`Rejected`: a 400 for one, an error item in the dataArray form, and a dead
letter (``twin.sense_dead_letter``, source ``http``) either way.

A device or gateway (``twin.sense.devices``) writes only its own datastreams: given the caller
(``who``), an Observation of another datastream raises
:class:`~twin.errors.DatastreamNotOwnedError` before anything is written.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import shapely.geometry
from psycopg import AsyncConnection, sql

from twin.access.principal import Principal
from twin.db.models.observe import SENSOR_KINDS
from twin.errors import DatastreamNotOwnedError
from twin.sense.odata import ODataError, parse_time
from twin.sense.ranges import (
    OUT_OF_RANGE,
    PROPERTY,
    TOO_FAR_AHEAD,
    UNKNOWN_DATASTREAM,
    Limits,
    limits_of,
)

MAX_TEXT = 10_000
MAX_BATCH = 100_000


class BadEntity(ValueError):
    """The posted JSON is not a valid entity; the message names the field."""


class Rejected(BadEntity):
    """A well-formed Observation refused on its content; ``reason`` is the dead-letter reason
    (:data:`~twin.sense.ranges.OUT_OF_RANGE`, ...), the message names the field."""

    def __init__(self, message: str, reason: str, datastream: int | None) -> None:
        super().__init__(message)
        self.reason = reason
        self.datastream = datastream


#: A dead letter: (topic or request path, reason, raw bytes, datastream id or None).
DeadLetter = tuple[str, str, bytes, int | None]


@dataclass(frozen=True)
class Reading:
    """One Observation to store."""

    datastream: int
    time: datetime
    value: float
    until: datetime | None = None
    result_time: datetime | None = None
    quality: int | None = None
    parameters: dict[str, Any] | None = None
    feature: int | None = None


def _obj(body: Any, where: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadEntity(f"{where}: expected a JSON object")
    return body


def _text(body: dict[str, Any], key: str, where: str, *, required: bool = False,
          default: str = "") -> str:  # fmt: skip
    value = body.get(key)
    if value is None:
        if required:
            raise BadEntity(f"{where}.{key}: required")
        return default
    if not isinstance(value, str) or len(value) > MAX_TEXT or "\x00" in value:
        raise BadEntity(f"{where}.{key}: expected a string of at most {MAX_TEXT} characters"
                        " (no NUL)")  # fmt: skip
    return value


def _props(body: dict[str, Any], where: str, key: str = "properties") -> str:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise BadEntity(f"{where}.{key}: expected a JSON object")
    return json.dumps(value)


def _geometry(value: Any, where: str) -> str:
    """GeoJSON (a geometry or a Feature) -> GeoJSON geometry text, checked."""
    if isinstance(value, dict) and value.get("type") == "Feature":
        value = value.get("geometry")
    try:
        shape = shapely.geometry.shape(value)
    except Exception:
        raise BadEntity(f"{where}: expected a GeoJSON geometry") from None
    if shape.is_empty or not shape.is_valid:
        raise BadEntity(f"{where}: empty or invalid geometry")
    lon, lat = shape.centroid.x, shape.centroid.y
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise BadEntity(f"{where}: coordinates must be lon, lat in degrees (EPSG:4326)")
    return json.dumps(value)


def _ref(value: Any) -> int | None:
    """The id of a ``{"@iot.id": n}`` reference, None for an entity to create inline."""
    if isinstance(value, dict) and "@iot.id" in value:
        ident = value["@iot.id"]
        if isinstance(ident, str) and ident.isdigit():
            ident = int(ident)
        if not isinstance(ident, int) or isinstance(ident, bool) or not 1 <= ident < 2**63:
            raise BadEntity(f"@iot.id: expected a positive integer, got {ident!r}")
        return ident
    return None


def _time(value: Any, where: str) -> tuple[datetime, datetime | None]:
    if not isinstance(value, str):
        raise BadEntity(f"{where}: expected an ISO 8601 time or interval")
    start, _, end = value.partition("/")
    try:
        t0 = parse_time(start, where)
        t1 = parse_time(end, where) if end else None
    except ODataError as exc:
        raise BadEntity(str(exc)) from None
    if t1 is not None and t1 < t0:
        raise BadEntity(f"{where}: interval ends before it starts")
    return t0, t1


async def _one(
    conn: AsyncConnection, stmt: str | sql.SQL | sql.Composed, params: dict[str, Any]
) -> Any:
    cur = await conn.execute(stmt, params)
    row = await cur.fetchone()
    return row[0] if row else None


async def _exists(conn: AsyncConnection, table: str, ident: int, what: str) -> int:
    stmt = sql.SQL("SELECT id FROM {} WHERE id = %(i)s").format(sql.Identifier(*table.split(".")))
    if await _one(conn, stmt, {"i": ident}) is None:
        raise BadEntity(f"{what}: no entity with @iot.id {ident}")
    return ident


async def _link(conn: AsyncConnection, thing: int, location: int) -> None:
    params = {"t": thing, "l": location}
    await conn.execute(
        "INSERT INTO twin.sta_thing_location (thing_id, location_id) VALUES (%(t)s, %(l)s)"
        " ON CONFLICT DO NOTHING", params,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO twin.sta_historical_location (thing_id, location_id) VALUES (%(t)s, %(l)s)",
        params,
    )
    # A Datastream placed nowhere yet takes the Thing's new place.
    await conn.execute(
        "UPDATE twin.sensor SET geom = (SELECT ST_PointOnSurface(geom) FROM twin.sta_location"
        " WHERE id = %(l)s) WHERE thing_id = %(t)s AND geom IS NULL", params,
    )  # fmt: skip


async def create_thing(conn: AsyncConnection, body: Any, where: str = "Thing") -> int:
    body = _obj(body, where)
    if (ref := _ref(body)) is not None:
        return await _exists(conn, "twin.sta_thing", ref, where)
    ident = await _one(
        conn, "INSERT INTO twin.sta_thing (name, description, properties) VALUES"
        " (%(n)s, %(d)s, %(p)s::jsonb) RETURNING id",
        {"n": _text(body, "name", where, required=True), "d": _text(body, "description", where),
         "p": _props(body, where)},
    )  # fmt: skip
    for i, loc in enumerate(_list(body, "Locations", where)):
        await _link(conn, ident, await create_location(conn, loc, f"{where}.Locations[{i}]"))
    for i, ds in enumerate(_list(body, "Datastreams", where)):
        await create_datastream(conn, ds, f"{where}.Datastreams[{i}]", thing=ident)
    return int(ident)


def _list(body: dict[str, Any], key: str, where: str) -> list[Any]:
    value = body.get(key) or []
    if not isinstance(value, list):
        raise BadEntity(f"{where}.{key}: expected a list")
    return value


async def create_location(conn: AsyncConnection, body: Any, where: str = "Location") -> int:
    body = _obj(body, where)
    if (ref := _ref(body)) is not None:
        return await _exists(conn, "twin.sta_location", ref, where)
    if "location" not in body:
        raise BadEntity(f"{where}.location: required (a GeoJSON geometry)")
    ident = await _one(
        conn, "INSERT INTO twin.sta_location (name, description, encoding_type, geom, properties)"
        " VALUES (%(n)s, %(d)s, %(e)s, ST_SetSRID(ST_GeomFromGeoJSON(%(g)s), 4326), %(p)s::jsonb)"
        " RETURNING id",
        {"n": _text(body, "name", where, required=True), "d": _text(body, "description", where),
         "e": _text(body, "encodingType", where, default="application/geo+json"),
         "g": _geometry(body["location"], f"{where}.location"), "p": _props(body, where)},
    )  # fmt: skip
    for i, thing in enumerate(_list(body, "Things", where)):
        await _link(conn, await create_thing(conn, thing, f"{where}.Things[{i}]"), ident)
    return int(ident)


async def create_sensor(conn: AsyncConnection, body: Any, where: str = "Sensor") -> int:
    body = _obj(body, where)
    if (ref := _ref(body)) is not None:
        return await _exists(conn, "twin.sta_sensor", ref, where)
    meta = body.get("metadata", "")
    return int(await _one(
        conn, "INSERT INTO twin.sta_sensor (name, description, encoding_type, metadata,"
        " properties) VALUES (%(n)s, %(d)s, %(e)s, %(m)s, %(p)s::jsonb) RETURNING id",
        {"n": _text(body, "name", where, required=True), "d": _text(body, "description", where),
         "e": _text(body, "encodingType", where, default="text/plain"),
         "m": meta if isinstance(meta, str) else json.dumps(meta), "p": _props(body, where)},
    ))  # fmt: skip


async def create_observed_property(
    conn: AsyncConnection, body: Any, where: str = "ObservedProperty"
) -> int:
    body = _obj(body, where)
    if (ref := _ref(body)) is not None:
        return await _exists(conn, "twin.sta_observed_property", ref, where)
    return int(await _one(
        conn, "INSERT INTO twin.sta_observed_property (name, definition, description, properties)"
        " VALUES (%(n)s, %(f)s, %(d)s, %(p)s::jsonb) RETURNING id",
        {"n": _text(body, "name", where, required=True), "f": _text(body, "definition", where),
         "d": _text(body, "description", where), "p": _props(body, where)},
    ))  # fmt: skip


async def create_feature(conn: AsyncConnection, body: Any, where: str = "FeatureOfInterest") -> int:
    body = _obj(body, where)
    if (ref := _ref(body)) is not None:
        return await _exists(conn, "twin.sta_feature", ref, where)
    if "feature" not in body:
        raise BadEntity(f"{where}.feature: required (a GeoJSON geometry)")
    return int(await _one(
        conn, "INSERT INTO twin.sta_feature (name, description, encoding_type, geom, properties)"
        " VALUES (%(n)s, %(d)s, %(e)s, ST_SetSRID(ST_GeomFromGeoJSON(%(g)s), 4326), %(p)s::jsonb)"
        " RETURNING id",
        {"n": _text(body, "name", where, required=True), "d": _text(body, "description", where),
         "e": _text(body, "encodingType", where, default="application/geo+json"),
         "g": _geometry(body["feature"], f"{where}.feature"), "p": _props(body, where)},
    ))  # fmt: skip


async def create_datastream(
    conn: AsyncConnection, body: Any, where: str = "Datastream", *, thing: int | None = None
) -> int:
    body = _obj(body, where)
    if (ref := _ref(body)) is not None:
        return await _exists(conn, "twin.sensor", ref, where)
    unit = _obj(body.get("unitOfMeasurement"), f"{where}.unitOfMeasurement")
    symbol = _text(unit, "symbol", f"{where}.unitOfMeasurement", required=True)
    props = json.loads(_props(body, where))
    kind = props.pop("kind", "other")
    if kind not in SENSOR_KINDS:
        raise BadEntity(f"{where}.properties.kind: one of {', '.join(SENSOR_KINDS)}")
    code = props.pop("code", None) or f"sta-{uuid.uuid4().hex[:12]}"
    limits = limits_from(props, where)
    if not isinstance(code, str) or len(code) > 200:
        raise BadEntity(f"{where}.properties.code: a string of at most 200 characters")
    if thing is None and body.get("Thing") is not None:
        thing = await create_thing(conn, body["Thing"], f"{where}.Thing")
    procedure = (await create_sensor(conn, body["Sensor"], f"{where}.Sensor")
                 if body.get("Sensor") is not None else None)  # fmt: skip
    prop_id, quantity = None, None
    if body.get("ObservedProperty") is not None:
        prop_id = await create_observed_property(conn, body["ObservedProperty"],
                                                 f"{where}.ObservedProperty")  # fmt: skip
        quantity = await _one(conn, "SELECT name FROM twin.sta_observed_property WHERE id = %(i)s",
                              {"i": prop_id})  # fmt: skip
    if await _one(conn, "SELECT id FROM twin.sensor WHERE code = %(c)s", {"c": code}) is not None:
        raise BadEntity(f"{where}.properties.code: {code!r} is taken")
    return int(await _one(
        conn, "INSERT INTO twin.sensor (code, kind, unit, unit_name, unit_definition, name,"
        " description, observation_type, quantity, thing_id, procedure_id, observed_property_id,"
        " attrs, value_min, value_max, geom) VALUES (%(code)s, %(kind)s, %(unit)s, %(uname)s,"
        " %(udef)s, %(name)s, %(desc)s, %(otype)s, %(q)s, %(thing)s, %(proc)s, %(prop)s,"
        " %(attrs)s::jsonb, %(low)s, %(high)s,"
        " (SELECT ST_PointOnSurface(l.geom) FROM twin.sta_thing_location tl"
        "  JOIN twin.sta_location l ON l.id = tl.location_id WHERE tl.thing_id = %(thing)s"
        "  ORDER BY l.id DESC LIMIT 1)) RETURNING id",
        {"code": code, "kind": kind, "unit": symbol,
         "uname": _text(unit, "name", f"{where}.unitOfMeasurement") or None,
         "udef": _text(unit, "definition", f"{where}.unitOfMeasurement") or None,
         "name": _text(body, "name", where, required=True),
         "desc": _text(body, "description", where),
         "otype": _text(body, "observationType", where) or None, "q": quantity,
         "thing": thing, "proc": procedure, "prop": prop_id, "attrs": json.dumps(props),
         "low": limits.low, "high": limits.high},
    ))  # fmt: skip


def _bound(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadEntity(f"{where}: expected a finite number or null")
    return float(value)


def limits_from(props: dict[str, Any], where: str) -> Limits:
    """Take ``physicalRange`` out of a Datastream's ``properties`` (it is kept in columns)."""
    value = props.pop(PROPERTY, None)
    if value is None:
        return Limits()
    where = f"{where}.properties.{PROPERTY}"
    if not isinstance(value, dict) or set(value) - {"min", "max"}:
        raise BadEntity(f'{where}: expected {{"min": number, "max": number}} (either may be'
                        " left out)")  # fmt: skip
    low, high = _bound(value.get("min"), f"{where}.min"), _bound(value.get("max"), f"{where}.max")
    if low is not None and high is not None and low > high:
        raise BadEntity(f"{where}: min {low:g} is above max {high:g}")
    return Limits(low, high)


def reading_from(body: Any, where: str = "Observation", *, datastream: int | None = None,
                 now: datetime | None = None) -> tuple[Reading, Any]:  # fmt: skip
    """An Observation JSON -> a Reading (and its FeatureOfInterest JSON, if any)."""
    body = _obj(body, where)
    if datastream is None:
        ds = body.get("Datastream")
        datastream = _ref(ds) if ds is not None else None
        if datastream is None:
            raise BadEntity(f'{where}.Datastream: required, as {{"@iot.id": n}}')
    result = body.get("result")
    if isinstance(result, bool) or not isinstance(result, int | float):
        raise BadEntity(f"{where}.result: expected a number (OM_Measurement)")
    try:
        value = float(result)
    except OverflowError:  # an integer too large for a float
        value = float("inf")
    if value != value or value in (float("inf"), float("-inf")):
        raise BadEntity(f"{where}.result: expected a finite number")
    if body.get("phenomenonTime") is None:
        t0, t1 = now or datetime.now(UTC), None
    else:
        t0, t1 = _time(body["phenomenonTime"], f"{where}.phenomenonTime")
    result_time = None
    if body.get("resultTime") is not None:
        result_time, _ = _time(body["resultTime"], f"{where}.resultTime")
    quality = body.get("resultQuality")
    if quality is not None and (isinstance(quality, bool) or not isinstance(quality, int)
                                or not -32768 <= quality <= 32767):  # fmt: skip
        raise BadEntity(f"{where}.resultQuality: expected a small integer")
    params = body.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise BadEntity(f"{where}.parameters: expected a JSON object")
    reading = Reading(datastream, t0, value, t1, result_time, quality, params or None)
    return reading, body.get("FeatureOfInterest")


async def store_dead_letters(
    conn: AsyncConnection, rows: list[DeadLetter], source: str = "mqtt",
    username: str | None = None,
) -> None:  # fmt: skip
    """Keep refused payloads (topic, reason, raw bytes, datastream) in twin.sense_dead_letter."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO twin.sense_dead_letter (source, topic, reason, raw, datastream_id,"
            " username) VALUES (%s, %s, %s, %s, %s, %s)",
            [(source, t, r, raw, ds, username) for t, r, raw, ds in rows],
        )


def refusal(reading: Reading, limits: Limits, horizon: datetime | None,
            where: str) -> Rejected | None:  # fmt: skip
    """Why a well-formed reading of a known datastream is refused, or None."""
    if horizon is not None and reading.time > horizon:
        return Rejected(f"{where}.phenomenonTime: {reading.time.isoformat()} is too far in the"
                        " future", TOO_FAR_AHEAD, reading.datastream)  # fmt: skip
    why = limits.refusal(reading.value, f"{where}.result", reading.datastream)
    return None if why is None else Rejected(why, OUT_OF_RANGE, reading.datastream)


def _horizon(future_tolerance_s: float | None) -> datetime | None:
    if future_tolerance_s is None:
        return None
    return datetime.now(UTC) + timedelta(seconds=future_tolerance_s)


async def _limits(conn: AsyncConnection, ds: int, where: str) -> Limits:
    found = (await limits_of(conn, [ds])).get(ds)
    if found is None:
        raise Rejected(f"{where}: no Datastream with @iot.id {ds}", UNKNOWN_DATASTREAM, ds)
    return found


async def store(conn: AsyncConnection, readings: list[Reading], *, want_ids: bool = True
                ) -> list[int]:  # fmt: skip
    """Insert readings (one statement; a replayed one is a no-op); their ids in order."""
    return (await store_counted(conn, readings, want_ids=want_ids))[0]


async def store_counted(
    conn: AsyncConnection, readings: list[Reading], *, want_ids: bool = True
) -> tuple[list[int], int]:
    """:func:`store`, and how many rows were new."""
    if not readings:
        return [], 0
    cols = list(zip(*[(r.datastream, r.time, r.until, r.result_time, r.value, r.quality,
                       json.dumps(r.parameters) if r.parameters else None, r.feature)
                      for r in readings], strict=True))  # fmt: skip
    params = {f"c{i}": list(c) for i, c in enumerate(cols)}
    cur = await conn.execute(
        "INSERT INTO twin.observation (sensor_id, observed_at, observed_until, result_time,"
        " value, quality, parameters, feature_id)"
        " SELECT * FROM unnest(%(c0)s::bigint[], %(c1)s::timestamptz[], %(c2)s::timestamptz[],"
        " %(c3)s::timestamptz[], %(c4)s::float8[], %(c5)s::smallint[], %(c6)s::jsonb[],"
        " %(c7)s::bigint[]) ON CONFLICT DO NOTHING"
        " RETURNING id, sensor_id, observed_at",
        params,
    )
    new = await cur.fetchall()
    if not want_ids:
        return [], len(new)
    if len(new) == len(readings):  # all new: their ids by key, in the readings' order
        by_key = {(r[1], r[2]): r[0] for r in new}
        return [by_key[(r.datastream, r.time)] for r in readings], len(new)
    cur = await conn.execute(
        "SELECT u.n, o.id FROM unnest(%(c0)s::bigint[], %(c1)s::timestamptz[]) WITH ORDINALITY"
        " u(s, t, n) JOIN twin.observation o ON o.sensor_id = u.s AND o.observed_at = u.t"
        " ORDER BY u.n", {"c0": params["c0"], "c1": params["c1"]},
    )  # fmt: skip
    return [r[1] for r in await cur.fetchall()], len(new)


def check_owner(who: Principal | None, datastream: int) -> None:
    """Refuse a device writing a datastream that is not its own (others: their role decides)."""
    if who is not None and who.device and not who.owns_datastream(datastream):
        raise DatastreamNotOwnedError(who.name, datastream)


async def create_observation(
    conn: AsyncConnection, body: Any, *, datastream: int | None = None,
    who: Principal | None = None, future_tolerance_s: float | None = None,
) -> int:  # fmt: skip
    """Store one Observation; :class:`Rejected` when its content is refused."""
    reading, foi = reading_from(body, datastream=datastream)
    check_owner(who, reading.datastream)
    limits = await _limits(conn, reading.datastream, "Observation.Datastream")
    if (why := refusal(reading, limits, _horizon(future_tolerance_s), "Observation")) is not None:
        raise why
    if foi is not None:
        feature = await create_feature(conn, foi, "Observation.FeatureOfInterest")
        reading = Reading(**{**reading.__dict__, "feature": feature})
    return (await store(conn, [reading]))[0]


async def create_observations(
    conn: AsyncConnection, body: Any, base: str, *, who: Principal | None = None,
    future_tolerance_s: float | None = None, dead: list[DeadLetter] | None = None,
    path: str = "CreateObservations",
) -> tuple[list[str], list[int]]:  # fmt: skip
    """The dataArray form: a selfLink (or "error: ...") per row, and the stored ids.

    Rows refused on their content (:func:`refusal`) are appended to ``dead`` (topic ``path``,
    raw: the row as a JSON Observation); an unknown Datastream refuses the whole request, and so
    does a device naming a datastream not its own."""
    if not isinstance(body, list):
        raise BadEntity("CreateObservations: expected a JSON list of dataArray objects")
    answers: list[str] = []
    ids: list[int] = []
    total = 0
    for i, item in enumerate(body):
        where = f"CreateObservations[{i}]"
        item = _obj(item, where)
        ds = _ref(item.get("Datastream"))
        if ds is None:
            raise BadEntity(f'{where}.Datastream: required, as {{"@iot.id": n}}')
        check_owner(who, ds)
        limits = await _limits(conn, ds, f"{where}.Datastream")
        horizon = _horizon(future_tolerance_s)
        components = item.get("components")
        if not isinstance(components, list) or not all(isinstance(c, str) for c in components):
            raise BadEntity(f"{where}.components: expected a list of names")
        allowed = {"phenomenonTime", "result", "resultTime", "resultQuality", "parameters",
                   "FeatureOfInterest/id", "id"}  # fmt: skip
        unknown = [c for c in components if c not in allowed]
        if unknown or "result" not in components:
            raise BadEntity(f"{where}.components: needs result; known: {', '.join(sorted(allowed))}"
                            + (f"; unknown: {unknown}" if unknown else ""))  # fmt: skip
        rows = item.get("dataArray")
        if not isinstance(rows, list):
            raise BadEntity(f"{where}.dataArray: expected a list of rows")
        total += len(rows)
        if total > MAX_BATCH:
            raise BadEntity(f"CreateObservations: at most {MAX_BATCH} rows per request")
        good: list[Reading] = []
        slots: list[int] = []
        for j, row in enumerate(rows):
            if not isinstance(row, list) or len(row) != len(components):
                answers.append(f"error: row {j} needs {len(components)} values")
                continue
            obj: dict[str, Any] = dict(zip(components, row, strict=True))
            feature = obj.pop("FeatureOfInterest/id", None)
            obj.pop("id", None)
            try:
                reading, _ = reading_from(obj, f"{where}.dataArray[{j}]", datastream=ds)
                why = refusal(reading, limits, horizon, f"{where}.dataArray[{j}]")
                if why is not None:
                    if dead is not None:
                        raw = json.dumps({**obj, "Datastream": {"@iot.id": ds}}).encode()
                        dead.append((path, why.reason, raw, ds))
                    raise why
                if feature is not None:
                    fid = _ref({"@iot.id": feature})
                    await _exists(conn, "twin.sta_feature", fid or 0, "FeatureOfInterest/id")
                    reading = replace(reading, feature=fid)
            except BadEntity as exc:
                answers.append(f"error: {exc}")
                continue
            slots.append(len(answers))
            answers.append("")
            good.append(reading)
        stored = await store(conn, good)
        for slot, ident in zip(slots, stored, strict=True):
            answers[slot] = f"{base}/Observations({ident})"
        ids.extend(stored)
    return answers, ids


CREATORS = {
    "Things": create_thing,
    "Locations": create_location,
    "Sensors": create_sensor,
    "ObservedProperties": create_observed_property,
    "FeaturesOfInterest": create_feature,
    "Datastreams": create_datastream,
}

#: POST to a navigation path: the reference the new entity gets to its parent.
PARENT_REF = {
    ("Things", "Datastreams"): ("Thing", False),
    ("Things", "Locations"): ("Things", True),
    ("Locations", "Things"): ("Locations", True),
    ("Sensors", "Datastreams"): ("Sensor", False),
    ("ObservedProperties", "Datastreams"): ("ObservedProperty", False),
    ("FeaturesOfInterest", "Observations"): ("FeatureOfInterest", False),
}


async def create(conn: AsyncConnection, entity_set: str, body: Any, *,
                 parent: tuple[str, str, int] | None = None,
                 who: Principal | None = None,
                 future_tolerance_s: float | None = None) -> int:  # fmt: skip
    """POST ``body`` to ``entity_set`` (or to ``Parent(id)/Nav``): the new entity's id
    (``who``: the caller, held to its own datastreams if it is a device)."""
    body = _obj(body, entity_set)
    if parent is not None:
        parent_set, nav, parent_id = parent
        if (parent_set, nav) == ("Datastreams", "Observations"):
            return await create_observation(conn, body, datastream=parent_id, who=who,
                                            future_tolerance_s=future_tolerance_s)  # fmt: skip
        key_many = PARENT_REF.get((parent_set, nav))
        if key_many is None:
            raise BadEntity(f"cannot create through {parent_set}(id)/{nav}")
        key, many = key_many
        ref = {"@iot.id": parent_id}
        body = {**body, key: [ref] if many else ref}
    if entity_set == "Observations":
        return await create_observation(conn, body, who=who,
                                        future_tolerance_s=future_tolerance_s)  # fmt: skip
    creator = CREATORS.get(entity_set)
    if creator is None:
        raise BadEntity(f"{entity_set} cannot be created directly")
    return await creator(conn, body)
