"""A PMTiles v3 archive of tile layers: the public map on static storage, no server needed.

Every tile is made by the same query the server runs (:func:`twin.tiles.catalog.tile_query`),
on a connection that is the anonymous caller (the API role, every area, small counts
suppressed), so the archive holds exactly what the public reads from ``/tiles``. An archive is
public once written: only ``general`` layers go in unless the caller names a higher
clearance, and core layers never do.

Layers of one address share a tile (MVT layers are a repeated protobuf field, so the layers'
bytes concatenate), gzip-compressed as the server sends them; empty tiles are left out.
Tiles are written in tile-id (Hilbert) order, which PMTiles calls clustered.
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer

from twin.access.classification import LEVELS
from twin.access.principal import PUBLIC
from twin.db.engine import database_url
from twin.settings import Settings
from twin.tiles.catalog import BUFFER, EXTENT, LAYERS, TileLayer, cell_resolution, tile_query
from twin.tiles.catalog import tile_transform as transform_params

#: A static archive is for everyone: at most this clearance, whatever the caller asks.
MAX_EXPORT_CLEARANCE = "important"
MAX_TILES = 2_000_000


class ExportError(ValueError):
    """The export cannot run (names the layer, zoom or setting)."""


@dataclass
class ExportReport:
    path: str
    layers: list[str]
    zooms: tuple[int, int]
    tiles: int
    empty: int
    bytes: int
    bounds: tuple[float, float, float, float]

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def tile_range(bounds: tuple[float, float, float, float], z: int) -> tuple[range, range]:
    """Tile columns and rows (XYZ, y down) covering lon/lat ``bounds`` at zoom ``z``."""
    w, s, e, n = bounds
    n_tiles = 2**z

    def col(lon: float) -> int:
        return min(n_tiles - 1, max(0, int((lon + 180.0) / 360.0 * n_tiles)))

    def row(lat: float) -> int:
        lat = max(-85.05112878, min(85.05112878, lat))
        y = (1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n_tiles
        return min(n_tiles - 1, max(0, int(y)))

    return range(col(w), col(e) + 1), range(row(n), row(s) + 1)


def _tiles(
    bounds: tuple[float, float, float, float], zooms: tuple[int, int]
) -> Iterator[tuple[int, int, int]]:
    for z in range(zooms[0], zooms[1] + 1):
        xs, ys = tile_range(bounds, z)
        for x in xs:
            for y in ys:
                yield z, x, y


def pick_layers(names: Sequence[str], *, clearance: str = "general") -> list[TileLayer]:
    """Catalog layers by name, refusing unknown ones and any above ``clearance``."""
    if clearance not in LEVELS or LEVELS.index(clearance) > LEVELS.index(MAX_EXPORT_CLEARANCE):
        raise ExportError(
            f"clearance: {clearance!r} is not one of general, {MAX_EXPORT_CLEARANCE} (core data "
            "never goes into a static archive)"
        )
    out = []
    for name in names:
        layer = LAYERS.get(name)
        if layer is None:
            raise ExportError(f"layers: no tile layer {name!r}; layers: {', '.join(LAYERS)}")
        if LEVELS.index(layer.label) > LEVELS.index(clearance):
            raise ExportError(
                f"layers: {name!r} is {layer.label} data; a static archive is public, so it "
                f"holds at most {clearance} layers (pass --clearance important to include "
                "important ones)"
            )
        out.append(layer)
    if not out:
        raise ExportError("layers: name at least one layer")
    return out


def export_pmtiles(
    settings: Settings,
    out: Path,
    *,
    layers: Sequence[str],
    zooms: tuple[int, int],
    clearance: str = "general",
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write the layers' tiles over the city's extent at ``zooms`` (inclusive) to ``out``."""
    chosen = pick_layers(layers, clearance=clearance)
    z0, z1 = zooms
    if not 0 <= z0 <= z1 <= 20:
        raise ExportError(f"zooms: {z0}-{z1} must satisfy 0 <= min <= max <= 20")
    url = database_url(settings)
    options = (
        f"-c role={settings.api_db_role} -c twin.scope={PUBLIC.scope_setting}"
        f" -c twin.actor={PUBLIC.name}"
    )
    with psycopg.connect(url, options=options, autocommit=True) as conn:
        row = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(g) e"
            " FROM (SELECT geom g FROM twin.building UNION ALL SELECT geom FROM twin.road_link"
            " UNION ALL SELECT geom FROM twin.admin_area WHERE level = 'city') u) b"
        ).fetchone()
        if row is None or row[0] is None:
            raise ExportError("the twin holds no buildings, roads or city boundary to tile")
        bounds = (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
        addresses = list(_tiles(bounds, (z0, z1)))
        if len(addresses) > MAX_TILES:
            raise ExportError(
                f"zooms: {len(addresses):,} tiles over the city at {z0}-{z1}; at most "
                f"{MAX_TILES:,}: lower the maximum zoom"
            )
        addresses.sort(key=lambda a: zxy_to_tileid(*a))
        tmp = out.with_name(out.name + ".part")
        written = empty = size = 0
        with tmp.open("wb") as fh:
            writer = Writer(fh)
            for i, (z, x, y) in enumerate(addresses):
                raw = b"".join(_layer_tile(conn, lyr, z, x, y, settings) for lyr in chosen)
                if raw:
                    data = gzip.compress(raw, compresslevel=6, mtime=0)
                    writer.write_tile(zxy_to_tileid(z, x, y), data)
                    written += 1
                    size += len(data)
                else:
                    empty += 1
                if progress is not None:
                    progress(i + 1, len(addresses))
            if not written:
                raise ExportError("the layers hold no feature at these zooms over the city")
            writer.finalize(_header(bounds, z0, z1), _metadata(chosen, settings))
        tmp.replace(out)
    return ExportReport(str(out), [lyr.id for lyr in chosen], (z0, z1), written, empty,
                        out.stat().st_size, bounds)  # fmt: skip


def _layer_tile(
    conn: psycopg.Connection, layer: TileLayer, z: int, x: int, y: int, settings: Settings
) -> bytes:
    if not layer.minzoom <= z <= layer.maxzoom:
        return b""
    kept = [r for r in settings.h3_resolutions if layer.max_res is None or r <= layer.max_res]
    params = {
        "z": z, "x": x, "y": y, "k": settings.suppression_k, "margin": BUFFER / EXTENT,
        "res": cell_resolution(z, kept or settings.h3_resolutions),
        "layer_key": layer.layer_key, "run": layer.run_id, **transform_params(z, x, y),
    }  # fmt: skip
    row = conn.execute(tile_query(layer, z), params).fetchone()
    return bytes(row[0]) if row and row[0] is not None else b""


def _header(bounds: tuple[float, float, float, float], z0: int, z1: int) -> dict[str, Any]:
    w, s, e, n = bounds
    return {
        "tile_type": TileType.MVT,
        "tile_compression": Compression.GZIP,
        "min_lon_e7": int(w * 1e7), "min_lat_e7": int(s * 1e7),
        "max_lon_e7": int(e * 1e7), "max_lat_e7": int(n * 1e7),
        "center_zoom": max(z0, min(z1, 14)),
        "center_lon_e7": int((w + e) / 2 * 1e7), "center_lat_e7": int((s + n) / 2 * 1e7),
    }  # fmt: skip


def _metadata(layers: list[TileLayer], settings: Settings) -> dict[str, Any]:
    return {
        "name": "city twin",
        "description": "Public tile layers of the city twin (small people counts suppressed, "
        f"k = {settings.suppression_k})",
        "attribution": "© OpenStreetMap contributors where the twin was built from OSM",
        "vector_layers": [
            {
                "id": lyr.id,
                "description": lyr.title,
                "fields": lyr.fields,
                "minzoom": lyr.minzoom,
                "maxzoom": lyr.maxzoom,
            }
            for lyr in layers
        ],
        "generator": "twin tiles export",
    }
