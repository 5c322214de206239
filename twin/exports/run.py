"""One export: the query under the caller's row-level security, the writer, the audit row.

:func:`export_sync` reads on a synchronous connection (the CLI); :func:`export_async` on the
request's asynchronous one (the API), with the writer in a worker thread that pulls its chunks
back through the event loop. Either way only one chunk of rows is held at a time, and the
heap the export freed is handed back to the system when it ends (:func:`trim_heap`).
"""

from __future__ import annotations

import asyncio
import ctypes
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import AsyncConnection

from twin.access import audit
from twin.access.principal import Principal
from twin.errors import InvalidParameterError
from twin.exports import cityjson
from twin.exports.source import CHUNK_ROWS, arrow_schema, chunks, export_query
from twin.exports.writers import Tally, write
from twin.tiles.catalog import TileLayer

ACTION = "export.download"


def _detail(layer: TileLayer, fmt: str, params: dict[str, str], tally: Tally) -> dict[str, Any]:
    return {"collection": layer.id, "format": fmt, "rows": tally.rows, "bbox": tally.bbox,
            "filters": {k: v for k, v in params.items() if k != "f"}}  # fmt: skip


def _write(
    fmt: str,
    layer: TileLayer,
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    path: Path,
    crs: str | None,
) -> Tally:
    if fmt in cityjson.FORMATS:
        if layer.id != "buildings":
            raise InvalidParameterError("f", f"{fmt} is for buildings only (LoD1 solids)")
        if crs is None:
            raise InvalidParameterError("f", f"{fmt} needs the city's CRS (ingest a city first)")
        return cityjson.write_cityjson(batches, path, crs=crs, seq=fmt == "cityjsonseq")
    return write(fmt, batches, schema, path, geometry_type=layer.geometry)


def trim_heap() -> None:
    """Return the freed heap to the system: Arrow's pool, then glibc's ``malloc_trim``
    (elsewhere nothing).

    The API writes in a worker thread, and glibc gives such a thread an arena of its own that
    it keeps, at its high-water mark, after the thread is done: without this a server's RSS
    climbs by tens of MB with each of the first downloads (benchmarks/bench_export_rss.py)."""
    pa.default_memory_pool().release_unused()  # Arrow's allocator keeps freed pages too
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return
    trim(0)


def _area(who: Principal) -> int | None:
    return who.scope_roots[0] if len(who.scope_roots) == 1 else None


def export_sync(
    conn: psycopg.Connection,
    who: Principal,
    layer: TileLayer,
    fmt: str,
    path: Path,
    params: dict[str, str],
    *,
    k: int,
    progress: Callable[[int], None] | None = None,
    crs: str | None = None,
) -> Tally:
    """Export on ``conn``, whose transaction already runs as ``who`` (act_as); ``crs``: the
    projected CRS of the CityJSON formats (buildings only)."""
    query, values = export_query(layer, params, k=k)
    with conn.cursor(name="twin_export") as cur:
        cur.itersize = CHUNK_ROWS
        cur.execute(query, values)
        first = cur.fetchmany(CHUNK_ROWS)
        desc = cur.description or []
        schema = arrow_schema([d.name for d in desc], [d.type_code for d in desc])
        pending = [first]

        def fetch(n: int) -> Sequence[Sequence[Any]]:
            rows = pending.pop() if pending else cur.fetchmany(n)
            if progress and rows:
                progress(len(rows))
            return rows

        try:
            tally = _write(fmt, layer, chunks(fetch, schema), schema, path, crs)
        finally:
            trim_heap()
    audit.record_sync(conn, who, ACTION, f"collection/{layer.id}", area_id=_area(who),
                      detail=_detail(layer, fmt, params, tally))  # fmt: skip
    return tally


async def export_async(
    conn: AsyncConnection,
    who: Principal,
    layer: TileLayer,
    fmt: str,
    path: Path,
    params: dict[str, str],
    *,
    k: int,
    crs: str | None = None,
) -> Tally:
    """Export on the request's connection (already the caller's, under row-level security)."""
    query, values = export_query(layer, params, k=k)
    loop = asyncio.get_running_loop()
    async with conn.cursor(name="twin_export") as cur:
        await cur.execute(query, values)
        first = await cur.fetchmany(CHUNK_ROWS)
        desc = cur.description or []
        schema = arrow_schema([d.name for d in desc], [d.type_code for d in desc])
        pending = [first]

        def fetch(n: int) -> Sequence[Sequence[Any]]:
            if pending:
                return pending.pop()
            return asyncio.run_coroutine_threadsafe(cur.fetchmany(n), loop).result()

        try:
            tally = await asyncio.to_thread(
                _write, fmt, layer, chunks(fetch, schema), schema, path, crs
            )
        finally:
            await asyncio.to_thread(trim_heap)
    await audit.record(conn, who, ACTION, f"collection/{layer.id}", area_id=_area(who),
                       detail=_detail(layer, fmt, params, tally))  # fmt: skip
    return tally
