"""Making a tile: the layer's current data version, the cache, and the query on a miss."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from psycopg import AsyncConnection, sql

from twin.tiles.cache import TileCache
from twin.tiles.catalog import (
    BUFFER,
    EXTENT,
    TileLayer,
    cell_resolution,
    tile_query,
    tile_transform,
)

MAX_ZOOM = 24


@dataclass
class Tile:
    data: bytes  # gzip-compressed MVT (possibly of an empty tile)
    etag: str
    empty: bool


async def layer_version(conn: AsyncConnection, layer: TileLayer) -> int:
    """Sum of the versions this layer depends on (each only grows, so the sum does too)."""
    cur = await conn.execute(
        "SELECT coalesce(sum(version), 0)::bigint FROM twin.layer_version WHERE layer = ANY(%s)",
        (list(layer.version_keys),),
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def etag_for(layer: TileLayer, version: int, z: int, x: int, y: int, extra: str = "") -> str:
    return f'"{layer.id}-v{version}-{z}-{x}-{y}{extra}"'


async def get_tile(
    connect: Callable[[], AbstractAsyncContextManager[AsyncConnection]],
    cache: TileCache,
    layer: TileLayer,
    z: int,
    x: int,
    y: int,
    *,
    version: int,
    k: int,
    resolutions: list[int],
    extra: str | None = None,
    condition: tuple[sql.Composable, dict[str, Any], str] | None = None,
) -> Tile:
    """The tile, from the cache when its version is current, else from PostGIS.

    ``connect`` opens the caller's scoped connection; it is called only on a cache miss, so a
    hit costs no database work beyond the version read. ``extra`` distinguishes variants of
    one tile (suppression k, the caller's scope); by default the k of the cells layer.
    ``condition``: a compiled CQL2 filter (twin/cql2.py: condition, parameters, key); its key
    goes into the cache key and the ETag, so a filtered tile is never served for an unfiltered
    request, nor for another filter."""
    if extra is None:
        extra = f"-k{k}" if layer.id == "cells" else ""
    if condition is not None and f"-f{condition[2]}" not in extra:
        extra += f"-f{condition[2]}"
    etag = etag_for(layer, version, z, x, y, extra)
    key = etag.strip('"')
    data = await cache.get(key)
    if data is None:
        kept = [r for r in resolutions if layer.max_res is None or r <= layer.max_res]
        params = {
            "z": z, "x": x, "y": y, "k": k, "margin": BUFFER / EXTENT,
            "res": cell_resolution(z, kept or resolutions), "layer_key": layer.layer_key,
            "run": layer.run_id, **tile_transform(z, x, y), **(condition[1] if condition else {}),
        }  # fmt: skip
        query = tile_query(layer, z, condition[0] if condition else None)
        async with connect() as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
        raw = bytes(row[0]) if row and row[0] is not None else b""
        # Level 1 (nginx's default too): a dense z14 tile compresses in ~1.2 ms instead of ~1.9
        # at level 5, for ~14 % more bytes; on a miss the server's own CPU is the scarce part.
        data = gzip.compress(raw, compresslevel=1)
        await cache.put(key, data)
    return Tile(data=data, etag=etag, empty=len(data) <= 20 and gzip.decompress(data) == b"")
