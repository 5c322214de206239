"""Registering raster files (DEM, roughness, drainage capacity) in ``raster_asset``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import psycopg
import shapely

from twin.city.synth.frame import to_wgs84


def footprint(transform: Sequence[float], width: int, height: int, crs: str) -> shapely.Geometry:
    """The raster's extent in EPSG:4326, edges densified so reprojection keeps them honest."""
    a, _, c, _, e, f = (float(v) for v in tuple(transform)[:6])
    box = shapely.box(c, f + e * height, c + a * width, f)
    return to_wgs84([shapely.segmentize(box, max(abs(a), 1.0) * 50)], crs)[0]


def register(
    conn: psycopg.Connection,
    *,
    kind: str,
    name: str,
    path: Path,
    crs: str,
    transform: Sequence[float],
    width: int,
    height: int,
    nodata: float | None,
    unit: str,
) -> None:
    """Record a raster file, replacing an earlier one of the same kind and name."""
    conn.execute("DELETE FROM twin.raster_asset WHERE kind = %s AND name = %s", (kind, name))
    conn.execute(
        "INSERT INTO twin.raster_asset (kind, name, path, crs, transform, width, height,"
        " nodata, unit, footprint)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, ST_GeomFromWKB(%s, 4326))",
        (kind, name, str(path), crs, [float(v) for v in tuple(transform)[:6]], width, height,
         nodata, unit, shapely.to_wkb(footprint(transform, width, height, crs))),
    )  # fmt: skip
