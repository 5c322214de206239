"""The eight SensorThings 1.1 entity sets, mapped onto the twin's tables.

A Datastream is a row of ``twin.sensor`` (one quantity, unit in UCUM), an Observation a row of
``twin.observation``; Things, Locations, HistoricalLocations, Sensors (``sta_sensor``),
ObservedProperties and FeaturesOfInterest have tables of their own (migration 0011). Each
entity set lists its properties (an SQL expression on the alias ``t`` and a type) and its
navigation properties (how to reach the target rows from a set of parent ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from twin.sense.odata import Field, FieldType

OM_MEASUREMENT = "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"
UCUM = "http://unitsofmeasure.org/ucum.html#para-"


@dataclass(frozen=True)
class Prop:
    name: str
    sql: str
    type: FieldType
    filterable: bool = True
    nullable: bool = True


@dataclass(frozen=True)
class Nav:
    """``target`` rows of a parent: ``FROM <target> t <join> WHERE <parent> = ANY(ids)``."""

    name: str
    target: str  # entity set name
    many: bool
    parent: str  # SQL giving the parent's id for each target row
    join: str = ""


@dataclass(frozen=True)
class EntitySet:
    name: str  # Things
    singular: str  # Thing
    table: str  # quoted, schema-qualified
    props: tuple[Prop, ...]
    navs: tuple[Nav, ...]
    default_order: str = "t.id"
    filters: dict[str, Field] = field(default_factory=dict)

    def nav(self, name: str) -> Nav | None:
        return next((n for n in self.navs if n.name == name), None)

    @property
    def fields(self) -> dict[str, Field]:
        out = {"id": Field("t.id", "int", False), "@iot.id": Field("t.id", "int", False)}
        out.update({p.name: Field(p.sql, p.type, p.nullable) for p in self.props if p.filterable})
        out.update(self.filters)
        return out

    @property
    def selectable(self) -> set[str]:
        return {"id", "@iot.id", "@iot.selfLink", *(p.name for p in self.props),
                *(n.name for n in self.navs)}  # fmt: skip


def _geojson(col: str) -> str:
    return f"ST_AsGeoJSON({col})::json"


# The twin's own columns as Datastream properties: code, kind and the physical range.
_DS_PROPERTIES = (
    "t.attrs || jsonb_build_object('code', t.code, 'kind', t.kind)"
    " || CASE WHEN t.value_min IS NULL AND t.value_max IS NULL THEN '{}'::jsonb"
    " ELSE jsonb_build_object('physicalRange', jsonb_strip_nulls("
    "jsonb_build_object('min', t.value_min, 'max', t.value_max))) END"
)
_DS_PHENOMENON = (
    "(SELECT CASE WHEN min(o.observed_at) IS NULL THEN NULL ELSE "
    "to_char(min(o.observed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') || '/' || "
    "to_char(max(coalesce(o.observed_until, o.observed_at)) AT TIME ZONE 'UTC', "
    '\'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"\') END '
    "FROM twin.observation o WHERE o.sensor_id = t.id)"
)

SETS: dict[str, EntitySet] = {
    s.name: s
    for s in (
        EntitySet(
            "Things", "Thing", "twin.sta_thing",
            (Prop("name", "t.name", "text"), Prop("description", "t.description", "text"),
             Prop("properties", "t.properties", "json")),
            (Nav("Locations", "Locations", True, "l.thing_id",
                 "JOIN twin.sta_thing_location l ON l.location_id = t.id"),
             Nav("HistoricalLocations", "HistoricalLocations", True, "t.thing_id"),
             Nav("Datastreams", "Datastreams", True, "t.thing_id")),
        ),
        EntitySet(
            "Locations", "Location", "twin.sta_location",
            (Prop("name", "t.name", "text"), Prop("description", "t.description", "text"),
             Prop("encodingType", "t.encoding_type", "text"),
             Prop("location", "t.geom", "geom"), Prop("properties", "t.properties", "json")),
            (Nav("Things", "Things", True, "l.location_id",
                 "JOIN twin.sta_thing_location l ON l.thing_id = t.id"),
             Nav("HistoricalLocations", "HistoricalLocations", True, "t.location_id")),
        ),
        EntitySet(
            "HistoricalLocations", "HistoricalLocation", "twin.sta_historical_location",
            (Prop("time", "t.time", "time"),),
            (Nav("Thing", "Things", False, "p.id",
                 "JOIN twin.sta_historical_location p ON p.thing_id = t.id"),
             Nav("Locations", "Locations", True, "p.id",
                 "JOIN twin.sta_historical_location p ON p.location_id = t.id")),
        ),
        EntitySet(
            "Sensors", "Sensor", "twin.sta_sensor",
            (Prop("name", "t.name", "text"), Prop("description", "t.description", "text"),
             Prop("encodingType", "t.encoding_type", "text"),
             Prop("metadata", "t.metadata", "text"), Prop("properties", "t.properties", "json")),
            (Nav("Datastreams", "Datastreams", True, "t.procedure_id"),),
        ),
        EntitySet(
            "ObservedProperties", "ObservedProperty", "twin.sta_observed_property",
            (Prop("name", "t.name", "text"), Prop("definition", "t.definition", "text"),
             Prop("description", "t.description", "text"),
             Prop("properties", "t.properties", "json")),
            (Nav("Datastreams", "Datastreams", True, "t.observed_property_id"),),
        ),
        EntitySet(
            "Datastreams", "Datastream", "twin.sensor",
            (Prop("name", "coalesce(t.name, t.code)", "text"),
             Prop("description", "coalesce(t.description, '')", "text"),
             Prop("observationType", f"coalesce(t.observation_type, '{OM_MEASUREMENT}')", "text"),
             Prop("unitOfMeasurement",
                  "json_build_object('name', coalesce(t.unit_name, t.unit), 'symbol', t.unit, "
                  f"'definition', coalesce(t.unit_definition, '{UCUM}' || t.unit))", "json"),
             Prop("phenomenonTime", _DS_PHENOMENON, "text", filterable=False),
             Prop("observedArea", "t.geom", "geom"),
             Prop("properties", _DS_PROPERTIES, "json")),
            (Nav("Thing", "Things", False, "p.id", "JOIN twin.sensor p ON p.thing_id = t.id"),
             Nav("Sensor", "Sensors", False, "p.id", "JOIN twin.sensor p ON p.procedure_id = t.id"),
             Nav("ObservedProperty", "ObservedProperties", False, "p.id",
                 "JOIN twin.sensor p ON p.observed_property_id = t.id"),
             Nav("Observations", "Observations", True, "t.sensor_id")),
            filters={"unitOfMeasurement/symbol": Field("t.unit", "text"),
                     "properties/code": Field("t.code", "text"),
                     "properties/kind": Field("t.kind", "text"),
                     "Thing/id": Field("t.thing_id", "int")},
        ),
        EntitySet(
            "Observations", "Observation", "twin.observation",
            (Prop("phenomenonTime", "t.observed_at", "time", nullable=False),
             Prop("phenomenonTimeEnd", "t.observed_until", "time", filterable=False),
             Prop("resultTime", "t.result_time", "time"),
             Prop("result", "t.value", "float", nullable=False),
             Prop("resultQuality", "t.quality", "int"),
             Prop("parameters", "t.parameters", "json")),
            (Nav("Datastream", "Datastreams", False, "p.id",
                 "JOIN twin.observation p ON p.sensor_id = t.id"),
             Nav("FeatureOfInterest", "FeaturesOfInterest", False, "p.id",
                 "JOIN twin.observation p ON p.feature_id = t.id")),
            filters={"Datastream/id": Field("t.sensor_id", "int"),
                     "FeatureOfInterest/id": Field("t.feature_id", "int")},
        ),
        EntitySet(
            "FeaturesOfInterest", "FeatureOfInterest", "twin.sta_feature",
            (Prop("name", "t.name", "text"), Prop("description", "t.description", "text"),
             Prop("encodingType", "t.encoding_type", "text"),
             Prop("feature", "t.geom", "geom"), Prop("properties", "t.properties", "json")),
            (Nav("Observations", "Observations", True, "t.feature_id"),),
        ),
    )
}  # fmt: skip

#: Output columns that are geometries are selected as GeoJSON.
HIDDEN = {"phenomenonTimeEnd"}


def select_sql(prop: Prop) -> str:
    return _geojson(prop.sql) if prop.type == "geom" else prop.sql


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(
    es: EntitySet, row: dict[str, Any], base: str, select: list[str] | None
) -> dict[str, Any]:
    """A row (id and the props by name) as a SensorThings JSON object."""
    ident = row["id"]
    self_link = f"{base}/{es.name}({ident})"
    out: dict[str, Any] = {}
    want = set(select) if select else None

    def wanted(name: str) -> bool:
        return want is None or name in want

    if wanted("@iot.id") or wanted("id"):
        out["@iot.id"] = ident
    if wanted("@iot.selfLink"):
        out["@iot.selfLink"] = self_link
    for p in es.props:
        if p.name in HIDDEN or not wanted(p.name):
            continue
        value = row.get(p.name)
        if isinstance(value, datetime):
            value = iso(value)
        if p.name == "phenomenonTime" and es.name == "Observations":
            end = row.get("phenomenonTimeEnd")
            if end is not None:
                value = f"{value}/{iso(end)}"
        if value is None and p.name in ("resultTime",):
            out[p.name] = None
            continue
        if value is None and p.name in ("observedArea", "phenomenonTime", "resultQuality",
                                        "parameters"):  # fmt: skip
            continue
        out[p.name] = value
    for n in es.navs:
        if wanted(n.name):
            out[f"{n.name}@iot.navigationLink"] = f"{self_link}/{n.name}"
    return out
