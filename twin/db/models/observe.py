"""What happens and what is measured: events, sensors, observations and raster assets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import (
    Base,
    cell_column,
    check_in,
    geom,
    geom_3857,
    gist,
    now_default,
    row_secured,
)

EVENT_SOURCES = ("hotline", "sensor", "patrol", "simulation", "import")
EVENT_STATUSES = ("open", "in_progress", "closed")
SENSOR_KINDS = ("rain_gauge", "water_level", "traffic_counter", "other")
RASTER_KINDS = ("dem", "roughness", "drainage_capacity", "infiltration", "other")


class Event(Base):
    """A city event: hotline complaint, fire, accident, waterlogging report, ...

    Partitioned by RANGE of ``occurred_at``, one partition per UTC month in schema ``twin_part``
    (:mod:`twin.db.history`); the primary key holds the partition key: ``(id, occurred_at)``."""

    __tablename__ = "event"
    __table_args__ = (
        check_in("source", EVENT_SOURCES, "source"),
        check_in("status", EVENT_STATUSES, "status"),
        sa.CheckConstraint("severity BETWEEN 1 AND 4", name="severity"),
        sa.Index("ix_event_occurred_at", "occurred_at", postgresql_using="brin"),
        *gist("event", "geom", "geom_3857"),
        row_secured(postgresql_partition_by="RANGE (occurred_at)"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    type: Mapped[str] = mapped_column(sa.Text, index=True)
    severity: Mapped[int] = mapped_column(sa.SmallInteger, server_default="1")
    status: Mapped[str] = mapped_column(sa.Text, server_default="open")
    source: Mapped[str] = mapped_column(sa.Text)
    occurred_at: Mapped[datetime] = mapped_column(primary_key=True)
    closed_at: Mapped[datetime | None]
    description: Mapped[str | None] = mapped_column(sa.Text)
    area_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("admin_area.id", ondelete="SET NULL"), index=True
    )
    sim_run_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sim_run.id", ondelete="CASCADE"), index=True
    )
    source_id: Mapped[str | None] = mapped_column(sa.Text)
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("POINT")
    geom_3857: Mapped[Any] = geom_3857("POINT")
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))


class Sensor(Base):
    """A sensor's stream of readings of one quantity: a SensorThings Datastream (same id).

    ``unit`` is a UCUM code; the STA columns (name, thing, procedure, observed property) are
    empty for sensors loaded with the city and filled for those created over SensorThings."""

    __tablename__ = "sensor"
    __table_args__ = (
        check_in("kind", SENSOR_KINDS, "kind"),
        sa.CheckConstraint(
            "value_min IS NULL OR value_max IS NULL OR value_min <= value_max", name="range"
        ),
        *gist("sensor", "geom", "geom_3857"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    code: Mapped[str] = mapped_column(sa.Text, unique=True)
    kind: Mapped[str] = mapped_column(sa.Text, index=True)
    unit: Mapped[str] = mapped_column(sa.Text, comment="mm/h, m, veh/h, ...")
    road_link_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("road_link.id", ondelete="SET NULL"), index=True
    )
    cell: Mapped[int | None] = cell_column()
    geom: Mapped[Any] = geom("POINT", nullable=True)  # None: not placed yet (STA Thing)
    geom_3857: Mapped[Any] = geom_3857("POINT", nullable=True)
    attrs: Mapped[dict[str, Any]] = mapped_column(server_default=sa.text("'{}'::jsonb"))
    name: Mapped[str | None] = mapped_column(sa.Text, comment="STA Datastream name")
    description: Mapped[str | None] = mapped_column(sa.Text)
    quantity: Mapped[str | None] = mapped_column(
        sa.Text, comment="what is measured (the observed property's name)"
    )
    unit_name: Mapped[str | None] = mapped_column(sa.Text, comment="e.g. millimetre per hour")
    unit_definition: Mapped[str | None] = mapped_column(sa.Text, comment="UCUM definition URL")
    observation_type: Mapped[str | None] = mapped_column(sa.Text)
    thing_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sta_thing.id", ondelete="SET NULL"), index=True
    )
    procedure_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sta_sensor.id", ondelete="SET NULL"), index=True,
        comment="the STA Sensor (instrument or procedure)",
    )  # fmt: skip
    observed_property_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sta_observed_property.id", ondelete="SET NULL"), index=True
    )
    # The physical range (STA properties.physicalRange); readings outside it are dead letters.
    value_min: Mapped[float | None] = mapped_column(
        sa.Float, comment="lowest value the sensor can physically measure, in its unit"
    )
    value_max: Mapped[float | None] = mapped_column(
        sa.Float, comment="highest value the sensor can physically measure, in its unit"
    )


class Observation(Base):
    """One reading of a sensor (value in the sensor's unit): a SensorThings Observation.

    The key (sensor, observed_at) makes a replayed reading a no-op; ``id`` is its @iot.id.
    Partitioned by day of ``observed_at`` (partitions live in schema ``twin_part``, made by
    :mod:`twin.sense.partitions`); a unique key must hold the partition key, hence
    ``(id, observed_at)``."""

    __tablename__ = "observation"
    __table_args__ = (
        sa.Index("ix_observation_observed_at", "observed_at"),
        sa.UniqueConstraint("id", "observed_at"),
        {"postgresql_partition_by": "RANGE (observed_at)"},
    )

    sensor_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True
    )
    observed_at: Mapped[datetime] = mapped_column(primary_key=True)
    value: Mapped[float] = mapped_column(sa.Float)
    quality: Mapped[int | None] = mapped_column(sa.SmallInteger)
    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity())
    observed_until: Mapped[datetime | None] = mapped_column(
        comment="end of an interval phenomenonTime"
    )
    result_time: Mapped[datetime | None]
    feature_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("sta_feature.id", ondelete="SET NULL"), index=True
    )
    parameters: Mapped[dict[str, Any] | None]


class RasterAsset(Base):
    """A GeoTIFF on disk (DEM, roughness, drainage capacity), referenced by path."""

    __tablename__ = "raster_asset"
    __table_args__ = (
        check_in("kind", RASTER_KINDS, "kind"),
        sa.UniqueConstraint("kind", "name"),
        *gist("raster_asset", "footprint"),
    )

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    kind: Mapped[str] = mapped_column(sa.Text)
    name: Mapped[str] = mapped_column(sa.Text)
    path: Mapped[str] = mapped_column(sa.Text)
    crs: Mapped[str] = mapped_column(sa.Text)
    transform: Mapped[list[float]] = mapped_column(
        ARRAY(sa.Float), comment="affine (a, b, c, d, e, f)"
    )
    width: Mapped[int] = mapped_column(sa.Integer)
    height: Mapped[int] = mapped_column(sa.Integer)
    nodata: Mapped[float | None] = mapped_column(sa.Float)
    unit: Mapped[str | None] = mapped_column(sa.Text)
    footprint: Mapped[Any] = geom("POLYGON")
    created_at: Mapped[datetime] = now_default()
