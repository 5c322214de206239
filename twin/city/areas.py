"""Where a request points: an admin area by id or code, a bounding box, an H3 cell, an admin
level. One behaviour for every route and command (they used to differ: `<` against `<=`, four
numbers against six; an unknown area was a 404 in cockpits and a 400 in tasks).

An area is always named by a query or body parameter, never by a path, so an unknown one is a
400 that names the parameter (:class:`InvalidParameterError`), everywhere.

The bbox rule kept is OGC API Features' (Part 1, ``bbox``): four numbers, or six with heights
(dropped), ``min <= max`` on each axis in degrees, so a box around one point is a valid query,
as QGIS and GDAL send it. Boxes across the antimeridian are refused, not wrapped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import h3
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.db.models.city import ADMIN_LEVELS
from twin.db.queries import query
from twin.errors import InvalidParameterError, NotFoundError

__all__ = [
    "ADMIN_LEVELS",
    "MAX_ID",
    "Area",
    "area_by_id",
    "check_id",
    "check_level",
    "find_area",
    "is_id_text",
    "lift",
    "parse_bbox",
    "parse_cell",
    "patch_of_cell",
    "root_area",
]

#: The largest id a BIGINT column holds (an id text above it is no id).
MAX_ID = 2**63 - 1


def parse_bbox(text: str, parameter: str = "bbox") -> tuple[float, float, float, float]:
    """``'minlon,minlat,maxlon,maxlat'`` (or with heights, six numbers) -> four floats."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise InvalidParameterError(
            parameter, "expected numbers: minlon,minlat,maxlon,maxlat"
        ) from None
    if len(parts) == 6:  # 3D bbox: drop the heights
        parts = [parts[0], parts[1], parts[3], parts[4]]
    if len(parts) != 4:
        raise InvalidParameterError(parameter, "expected 4 (or 6) numbers")
    minx, miny, maxx, maxy = parts
    # NaN fails every comparison, so it is refused here too.
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise InvalidParameterError(
            parameter, "need -180 <= minlon <= maxlon <= 180 and -90 <= minlat <= maxlat <= 90"
        )
    return minx, miny, maxx, maxy


def parse_cell(cell: str, parameter: str = "cell") -> int:
    """An H3 cell (hex string, any resolution) -> its signed BIGINT id."""
    text = cell.strip().lower() if isinstance(cell, str) else ""
    try:
        valid = bool(text) and h3.is_valid_cell(text)
    except (ValueError, TypeError, OverflowError):  # not hex, or hex outside 0..2**64-1
        valid = False
    if not valid:
        raise InvalidParameterError(parameter, f"{cell!r} is not an H3 cell id (hex string)")
    return int(text, 16)  # valid ids are < 2**63, so they fit a signed BIGINT


def check_level(level: str, parameter: str = "level") -> str:
    """``level`` when it is an admin level (:data:`ADMIN_LEVELS`); else a 400 naming it."""
    if level not in ADMIN_LEVELS:
        raise InvalidParameterError(
            parameter, f"{level!r} is not a level; one of {', '.join(ADMIN_LEVELS)}"
        )
    return level


def is_id_text(text: str) -> bool:
    """Whether ``text`` is the decimal form of a BIGINT id (ASCII digits only: ``int('²')``
    fails, and ``int()`` refuses texts of more than 4300 digits)."""
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_ID


def check_id(value: int | None, parameter: str) -> int | None:
    """``value`` when it is None or a valid BIGINT id (1..MAX_ID); else a 400 naming it."""
    if value is not None and not 1 <= value <= MAX_ID:
        raise InvalidParameterError(parameter, f"{value} is not an id")
    return value


# ---------------------------------------------------------------------------- areas
@dataclass(frozen=True)
class Area:
    """An admin area: its id, code, names, level and parent."""

    id: int
    code: str
    name: str
    name_en: str | None
    level: str
    parent_id: int | None

    def as_dict(self) -> dict[str, Any]:
        """The area as responses show it."""
        return {"id": self.id, "code": self.code, "name": self.name, "level": self.level}


async def _one(conn: AsyncConnection, name: str, params: dict[str, Any]) -> Area | None:
    cur = await conn.cursor(row_factory=dict_row).execute(query("areas.sql", name), params)
    row = await cur.fetchone()
    return Area(**row) if row else None


async def area_by_id(conn: AsyncConnection, area_id: int) -> Area | None:
    """The area with id ``area_id``, or None."""
    return await _one(conn, "area_by_id", {"id": area_id})


async def root_area(conn: AsyncConnection) -> Area:
    """The city: the area without a parent at the city level.

    Raises
    ------
    NotFoundError
        when the twin has no city area yet.
    """
    found = await _one(conn, "root_area", {})
    if found is None:
        raise NotFoundError("the twin has no city area (build the demo or ingest areas)")
    return found


async def find_area(conn: AsyncConnection, ref: int | str, parameter: str = "area") -> Area:
    """The admin area with id or code ``ref`` (an id wins when a code reads like one).

    Raises
    ------
    InvalidParameterError
        naming ``parameter`` when ``ref`` is blank or no area has that id or code.
    """
    text = str(ref).strip()
    if not text:
        raise InvalidParameterError(parameter, "empty; give an admin area id or code")
    as_id = int(text) if is_id_text(text) else None
    found = await _one(conn, "area_by_ref", {"id": as_id, "code": text})
    if found is None:
        raise InvalidParameterError(parameter, f"no admin area with id or code {text!r}")
    return found


async def patch_of_cell(conn: AsyncConnection, cell: int, parameter: str = "cell") -> Area:
    """The grid patch whose polygon contains the centre of ``cell`` (an H3 id).

    Raises
    ------
    InvalidParameterError
        naming ``parameter`` when the centre lies in no grid patch.
    """
    lat, lng = h3.cell_to_latlng(format(cell, "x"))
    found = await _one(conn, "patch_of_point", {"x": lng, "y": lat})
    if found is None:
        raise InvalidParameterError(
            parameter, f"the centre of cell {cell:x} ({lat:.6f}, {lng:.6f}) is in no grid patch"
        )
    return found


async def lift(conn: AsyncConnection, area: Area, level: str) -> Area:
    """The ancestor of ``area`` (itself included) at ``level``.

    Raises
    ------
    InvalidParameterError
        naming ``level`` when ``area`` has no ancestor at that level.
    """
    cur = await conn.cursor(row_factory=dict_row).execute(
        query("areas.sql", "area_at_level"), {"id": area.id, "level": level}
    )
    row = await cur.fetchone()
    up = await area_by_id(conn, row["id"]) if row and row["id"] is not None else None
    if up is None:
        raise InvalidParameterError(
            "level", f"area {area.code} is a {area.level}: there is no {level} at or above it"
        )
    return up
