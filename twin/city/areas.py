"""Parsing where a request points: a bounding box, an H3 cell, an admin level. One behaviour
for every route and command (they used to differ: `<` against `<=`, four numbers against six).

The bbox rule kept is OGC API Features' (Part 1, ``bbox``): four numbers, or six with heights
(dropped), ``min <= max`` on each axis in degrees, so a box around one point is a valid query,
as QGIS and GDAL send it. Boxes across the antimeridian are refused, not wrapped.
"""

from __future__ import annotations

import h3

from twin.db.models.city import ADMIN_LEVELS
from twin.errors import InvalidParameterError

__all__ = ["ADMIN_LEVELS", "MAX_ID", "parse_bbox", "parse_cell"]

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
