"""The SensorThings entities the twin's own tables do not hold (OGC SensorThings API 1.1).

Datastreams are rows of ``sensor`` and Observations rows of ``observation``
(``twin.db.models.observe``); these tables hold the rest: Things and their Locations (with the
history of where a Thing was), Sensors (the instrument or procedure, here ``sta_sensor``),
ObservedProperties and FeaturesOfInterest.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from geoalchemy2 import Geometry
from sqlalchemy.orm import Mapped, mapped_column

from twin.db.models.base import Base, gist

GEOJSON = "application/geo+json"


def _props() -> Mapped[dict[str, Any]]:
    return mapped_column(server_default=sa.text("'{}'::jsonb"))


def _any_geom() -> Mapped[Any]:
    return mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=False))


class StaThing(Base):
    """A Thing: a device, a gauge station, a building that carries sensors."""

    __tablename__ = "sta_thing"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    properties: Mapped[dict[str, Any]] = _props()


class StaLocation(Base):
    """Where Things are (any geometry, EPSG:4326)."""

    __tablename__ = "sta_location"
    __table_args__ = gist("sta_location", "geom")

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    encoding_type: Mapped[str] = mapped_column(sa.Text, server_default=GEOJSON)
    geom: Mapped[Any] = _any_geom()
    properties: Mapped[dict[str, Any]] = _props()


class StaThingLocation(Base):
    """The current Location(s) of a Thing."""

    __tablename__ = "sta_thing_location"

    thing_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sta_thing.id", ondelete="CASCADE"), primary_key=True
    )
    location_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sta_location.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class StaHistoricalLocation(Base):
    """When a Thing was at a Location (one row each time a Thing gets a Location)."""

    __tablename__ = "sta_historical_location"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    thing_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sta_thing.id", ondelete="CASCADE"), index=True
    )
    location_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sta_location.id", ondelete="CASCADE"), index=True
    )
    time: Mapped[datetime] = mapped_column(server_default=sa.func.now())


class StaSensor(Base):
    """A SensorThings Sensor: the instrument or procedure behind Datastreams."""

    __tablename__ = "sta_sensor"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    encoding_type: Mapped[str] = mapped_column(sa.Text, server_default="text/plain")
    metadata_: Mapped[str] = mapped_column("metadata", sa.Text, server_default="")
    properties: Mapped[dict[str, Any]] = _props()


class StaObservedProperty(Base):
    """What is observed (rain rate, water level), with a definition URL."""

    __tablename__ = "sta_observed_property"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    definition: Mapped[str] = mapped_column(sa.Text, server_default="")
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    properties: Mapped[dict[str, Any]] = _props()


class StaFeature(Base):
    """A FeatureOfInterest: what an Observation is about (a place, a sample)."""

    __tablename__ = "sta_feature"
    __table_args__ = gist("sta_feature", "geom")

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text)
    description: Mapped[str] = mapped_column(sa.Text, server_default="")
    encoding_type: Mapped[str] = mapped_column(sa.Text, server_default=GEOJSON)
    geom: Mapped[Any] = _any_geom()
    properties: Mapped[dict[str, Any]] = _props()


class SenseDeadLetter(Base):
    """A payload the bridge refused, kept with why: received_at, topic, reason, raw bytes."""

    __tablename__ = "sense_dead_letter"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now(), index=True
    )
    source: Mapped[str] = mapped_column(sa.Text, server_default="mqtt")
    topic: Mapped[str] = mapped_column(sa.Text)
    reason: Mapped[str] = mapped_column(sa.Text, index=True)
    raw: Mapped[bytes] = mapped_column(sa.LargeBinary)
    datastream_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    username: Mapped[str | None] = mapped_column(sa.Text)


class SenseDevice(Base):
    """A device or gateway: its user (the bearer token, ``app_user``), its MQTT password (the
    broker's PBKDF2-SHA512 ``$7$`` hash, never the password) and, in
    ``sense_device_datastream``, the datastreams it may write."""

    __tablename__ = "sense_device"

    id: Mapped[int] = mapped_column(sa.BigInteger, sa.Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(sa.Text, unique=True, comment="its MQTT user name")
    user_id: Mapped[int] = mapped_column(
        sa.ForeignKey("app_user.id", ondelete="CASCADE"), unique=True
    )
    mqtt_password_hash: Mapped[str] = mapped_column(sa.Text, comment="mosquitto $7$ format")
    created_at: Mapped[datetime] = mapped_column(
        sa.DateTime(timezone=True), server_default=sa.func.now()
    )


class SenseDeviceDatastream(Base):
    """A datastream (``sensor``) a device owns: the only ones it may write."""

    __tablename__ = "sense_device_datastream"

    device_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sense_device.id", ondelete="CASCADE"), primary_key=True
    )
    sensor_id: Mapped[int] = mapped_column(
        sa.ForeignKey("sensor.id", ondelete="CASCADE"), primary_key=True, index=True
    )
