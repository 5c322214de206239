"""The city a database holds: its centre and the metric CRS that every grid of it uses.

A setting cannot know where a real city lies: the default centre is the demo city's. So the
first ingest that sees the city's extent (OSM) records the centre and its UTM zone in
``twin.city_meta``, and commands and the server read them from there. An explicit
``TWIN_CITY_CRS`` or ``TWIN_CITY_CENTER`` always wins (and is then what gets recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from twin.settings import Settings, utm_crs


@dataclass(frozen=True)
class CityMeta:
    """Name, centre (lon, lat in degrees) and projected CRS of the city."""

    name: str | None
    center: tuple[float, float]
    crs: str
    source: str | None = None


def explicit(settings: Settings) -> bool:
    """Whether the settings name the city's place themselves (env, .env or arguments)."""
    return bool({"city_crs", "city_center"} & settings.model_fields_set)


def read_city(conn: psycopg.Connection[Any]) -> CityMeta | None:
    """The recorded city, or None (no row, or a schema from before the table)."""
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT name, center_lon, center_lat, crs, source FROM twin.city_meta"
            ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    if row is None:
        return None
    return CityMeta(row[0], (float(row[1]), float(row[2])), str(row[3]), row[4])


def record_city(
    conn: psycopg.Connection[Any],
    settings: Settings,
    center: tuple[float, float],
    *,
    name: str | None = None,
    source: str | None = None,
    replace: bool = False,
) -> str:
    """The metric CRS for a city centred at ``center`` (lon, lat); records it when new.

    The settings' CRS when they name one; else the recorded one (unless ``replace``: a fresh
    load of a whole city); else the UTM zone of ``center``, recorded in the caller's
    transaction so that it lands or rolls back with the data.
    """
    if explicit(settings):
        crs, center = settings.metric_crs, settings.city_center
    else:
        known = read_city(conn)
        if known is not None and not replace:
            return known.crs
        crs = utm_crs(*center)
    conn.execute(
        "INSERT INTO twin.city_meta (id, name, center_lon, center_lat, crs, source)"
        " VALUES (1, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET name ="
        " coalesce(EXCLUDED.name, twin.city_meta.name), center_lon = EXCLUDED.center_lon,"
        " center_lat = EXCLUDED.center_lat, crs = EXCLUDED.crs, source = EXCLUDED.source,"
        " updated_at = now()",
        (name, center[0], center[1], crs, source),
    )
    return crs


def with_city(settings: Settings, city: CityMeta | None) -> Settings:
    """``settings`` placed at the recorded city, unless they name a place themselves."""
    if city is None or explicit(settings):
        return settings
    placed = settings.model_copy(update={"city_center": city.center, "city_crs": city.crs})
    # model_copy marks the updated fields as set: keep "explicit" meaning the user's choice.
    object.__setattr__(placed, "__pydantic_fields_set__", set(settings.model_fields_set))
    return placed


def settings_for(settings: Settings, url: str) -> Settings:
    """Read the recorded city from the database at ``url`` and place ``settings`` there.

    Quiet on any connection problem: a command that needs the database reports it itself.
    """
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return with_city(settings, read_city(conn))
    except psycopg.Error:
        return settings
