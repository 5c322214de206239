"""``/files``: the published files the catalogues point at (twin/exports/files.py): a flood
run's GeoTIFFs, the registered rasters, the PMTiles archives under ``<data_dir>/published/``.

Paths are never taken from the request: a run id, a raster id or an archive's plain file name
is looked up and the path built from fixed names. Whole-file downloads are audited
(``file.download``); the range reads a map client makes on an archive are tile reads, like
``/tiles``, and are not. Range requests are answered (206) on every file.
"""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse
from psycopg.rows import dict_row

from twin.access import audit
from twin.access.classification import table_level
from twin.access.principal import Principal
from twin.api.deps import Conn, PrincipalDep, SettingsDep, ensure_cleared
from twin.api.errors import NotFoundError
from twin.db.queries import query
from twin.exports import files

router = APIRouter(prefix="/files", tags=["catalog"])
ACTION = "file.download"


def _binary(media_type: str) -> dict[int | str, dict[str, object]]:
    schema = {"type": "string", "format": "binary"}
    return {200: {"content": {media_type: {"schema": schema}}, "description": "the file"},
            206: {"description": "the requested byte range"}}  # fmt: skip


async def _send(
    request: Request, conn: Conn, who: Principal, path: FilePath, resource: str, media: str
) -> FileResponse:
    info = files.stat(path)
    if info is None:
        raise NotFoundError(f"{resource} is not on disk")
    if "range" not in request.headers:
        await audit.record(conn, who, ACTION, resource, detail={"bytes": info.size})
    return FileResponse(path, media_type=media, filename=path.name)


RunId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get(
    "/runs/{run_id}/{name}", summary="A GeoTIFF of a flood run", response_class=FileResponse,
    responses=_binary(files.GEOTIFF),
)  # fmt: skip
async def get_run_raster(
    run_id: RunId, name: str, request: Request, conn: Conn, who: PrincipalDep,
    settings: SettingsDep,
) -> FileResponse:  # fmt: skip
    """``max_depth.tif`` or ``time_of_max.tif`` of a succeeded flood run (the run's grid, in
    the city's projected CRS)."""
    ensure_cleared(who, table_level("sim_run"), "simulation results")
    if name not in files.RUN_RASTERS:
        raise NotFoundError(f"no file {name!r}; a flood run has {', '.join(files.RUN_RASTERS)}")
    cur = await conn.execute(query("catalog.sql", "flood_run"), {"id": run_id})
    if await cur.fetchone() is None:
        raise NotFoundError(f"no succeeded flood run {run_id} (see /api/simulations?kind=flood)")
    path = files.run_dir(settings, run_id) / name
    return await _send(request, conn, who, path, f"runs/{run_id}/{name}", files.GEOTIFF)


@router.get(
    "/rasters/{raster_id}", summary="A registered raster (GeoTIFF)",
    response_class=FileResponse, responses=_binary(files.GEOTIFF),
)  # fmt: skip
async def get_raster(
    raster_id: RunId, request: Request, conn: Conn, who: PrincipalDep
) -> FileResponse:
    """A DEM, roughness or drainage-capacity raster the flood model reads."""
    ensure_cleared(who, table_level("raster_asset"), "rasters")
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("catalog.sql", "raster"), {"id": raster_id})
        row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no raster {raster_id} (see /catalog)")
    return await _send(request, conn, who, FilePath(row["path"]), f"rasters/{raster_id}",
                       files.GEOTIFF)  # fmt: skip


@router.get(
    "/published/{name}", summary="A published PMTiles archive", response_class=FileResponse,
    responses=_binary(files.PMTILES),
)  # fmt: skip
async def get_archive(
    name: str, request: Request, conn: Conn, who: PrincipalDep, settings: SettingsDep
) -> FileResponse:
    """A PMTiles v3 archive put under ``<data_dir>/published/`` (``twin tiles export --out``);
    MapLibre reads it with range requests through the ``pmtiles`` protocol."""
    found = files.archive(settings, name)
    if found is None:
        raise NotFoundError(f"no published archive {name!r} (see /catalog)")
    ensure_cleared(who, found.label, f"archive {name!r}")
    return await _send(request, conn, who, found.file.path, f"published/{name}", files.PMTILES)
