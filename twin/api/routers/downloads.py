"""The download half of ``/collections/{id}/items?f=parquet|fgb|gpkg|csv`` (twin.exports).

Every format is written to a temporary file first (GeoPackage and FlatGeobuf with its index
need a seekable file; the same path for all keeps the audit row honest: it is written, with the
row count, in the request's transaction before the file is sent), then streamed and deleted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fastapi.responses import FileResponse
from psycopg import AsyncConnection
from starlette.background import BackgroundTask

from twin.access.principal import Principal
from twin.errors import InvalidParameterError
from twin.exports import FORMATS, cityjson
from twin.exports.run import export_async
from twin.settings import Settings
from twin.tiles.catalog import TileLayer

#: Parameters of the items route that are no filters of a download.
PAGING = ("f", "limit", "offset")


async def download(
    conn: AsyncConnection,
    who: Principal,
    layer: TileLayer,
    fmt: str,
    query: dict[str, str],
    settings: Settings,
) -> FileResponse:
    spec = FORMATS[fmt] if fmt in FORMATS else cityjson.FORMATS[fmt]
    crs = None
    if fmt in cityjson.FORMATS:
        if layer.id != "buildings":
            raise InvalidParameterError("f", f"{fmt} is for buildings only (LoD1 solids)")
        cur = await conn.execute("SELECT crs FROM twin.city_meta WHERE id = 1")
        row = await cur.fetchone()
        crs = settings.city_crs or (row[0] if row else None)
    params = {k: v for k, v in query.items() if k not in PAGING}
    fd, name = tempfile.mkstemp(prefix=f"twin-{layer.id}-", suffix=spec.suffix)
    os.close(fd)
    path = Path(name)
    path.unlink()  # GDAL creates its own file
    try:
        tally = await export_async(
            conn, who, layer, fmt, path, params, k=settings.suppression_k, crs=crs
        )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path, media_type=spec.media_type, filename=f"{layer.id}{spec.suffix}",
        headers={"X-Row-Count": str(tally.rows)},
        background=BackgroundTask(path.unlink, missing_ok=True),
    )  # fmt: skip
