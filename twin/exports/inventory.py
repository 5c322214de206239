"""What the twin publishes, as one caller may obtain it: the inventory behind ``/catalog``
(DCAT, :mod:`twin.exports.catalog`) and ``/stac`` (:mod:`twin.exports.stac`).

A dataset is each feature collection, the cell statistics, each risk layer (and the one map),
each succeeded flood run with its GeoTIFFs, each registered raster and each published PMTiles
archive. Everything is read on the caller's connection, so row-level security shapes every
count and extent; datasets above the caller's clearance are left out altogether. Modified
dates come from the data (``layer_version``, ``risk_score.computed_at``, the runs, the
files), never from the time of the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from twin import features
from twin.access.classification import table_level
from twin.access.principal import Principal
from twin.db.queries import query
from twin.exports import cityjson, files
from twin.exports.writers import FORMATS
from twin.risk.layers import catalog_for
from twin.settings import Settings
from twin.tiles.catalog import LAYERS, TileLayer

MVT = "application/vnd.mapbox-vector-tile"
GEOJSON = "application/geo+json"
JSON = "application/json"
OGC_FEATURES = "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"
TILEJSON = "https://github.com/mapbox/tilejson-spec/tree/master/3.0.0"
MAX_RUNS = 100

#: Chinese titles of the catalog's layers (the risk layers carry their own).
TITLES_ZH = {
    "buildings": "建筑物", "parcels": "地块", "roads": "道路", "events": "事件",
    "hazard_sites": "危险源", "admin_areas": "行政区划", "cells": "H3 网格统计",
}  # fmt: skip
FORMAT_TITLES = {"parquet": "GeoParquet 1.1", "fgb": "FlatGeobuf", "gpkg": "GeoPackage",
                 "csv": "CSV (WKT geometry)", "cityjson": "CityJSON 2.0 (LoD1 solids)",
                 "cityjsonseq": "CityJSONSeq (LoD1 solids, one building a line)"}  # fmt: skip

Bbox = tuple[float, float, float, float]


@dataclass(frozen=True)
class Distribution:
    """One way to obtain a dataset: a file to download or an API to access it through."""

    url: str
    title: str
    media_type: str
    download: bool = False  # a file (downloadURL), else an access point (accessURL)
    byte_size: int | None = None
    conforms_to: str | None = None
    service: str | None = None  # "features" or "tiles": the data service it goes through
    role: str = "data"  # STAC asset role
    key: str = ""  # STAC asset key (files only)


@dataclass
class Dataset:
    id: str
    kind: str  # collection, cells, risk, flood_run, raster, archive
    title: str
    title_zh: str
    description: str
    label: str  # general, important, core (twin.access.classification)
    rows: int | None = None
    bbox: Bbox | None = None
    start: datetime | None = None
    end: datetime | None = None
    modified: datetime | None = None
    landing: str | None = None
    keywords: tuple[str, ...] = ()
    distributions: list[Distribution] = field(default_factory=list)


@dataclass
class Inventory:
    city: str
    source: str | None
    publisher: str
    license: str  # SPDX identifier
    modified: datetime | None
    datasets: list[Dataset]


def _bbox(row: dict[str, Any]) -> Bbox | None:
    if row.get("xmin") is None:
        return None
    return (float(row["xmin"]), float(row["ymin"]), float(row["xmax"]), float(row["ymax"]))


async def _rows(
    conn: AsyncConnection, name: str, params: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("catalog.sql", name), params or {})
        return await cur.fetchall()


def _newest(*times: datetime | None) -> datetime | None:
    got = [t for t in times if t is not None]
    return max(got) if got else None


async def _collection_stats(conn: AsyncConnection, layer: TileLayer) -> dict[str, Any]:
    """Rows, extent and time span of a collection as the caller sees it."""
    t = sql.Identifier("twin", layer.table)
    when = (
        sql.SQL(", min({c}) AS t0, max({c}) AS t1").format(c=sql.Identifier(layer.datetime_column))
        if layer.datetime_column
        else sql.SQL(", NULL::timestamptz AS t0, NULL::timestamptz AS t1")
    )
    q = sql.SQL(
        "SELECT count(*)::bigint AS n, ST_XMin(ST_Extent(geom)) AS xmin,"
        " ST_YMin(ST_Extent(geom)) AS ymin, ST_XMax(ST_Extent(geom)) AS xmax,"
        " ST_YMax(ST_Extent(geom)) AS ymax{when} FROM {t}"
    ).format(when=when, t=t)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(q)
        row = await cur.fetchone()
    return row or {"n": 0}


def _tiles(base: str, tile_id: str, title: str) -> Distribution:
    return Distribution(f"{base}/tiles/{tile_id}.json", f"{title}: vector tiles (TileJSON)", MVT,
                        conforms_to=TILEJSON, service="tiles", role="tiles")  # fmt: skip


async def _collections(
    conn: AsyncConnection, who: Principal, base: str, versions: dict[str, datetime]
) -> list[Dataset]:
    out = []
    for layer in features.collections():
        if not who.cleared_for(layer.label):
            continue
        st = await _collection_stats(conn, layer)
        items = f"{base}/collections/{layer.id}/items"
        dists = [
            Distribution(items, f"{layer.title}: OGC API Features (GeoJSON pages)", GEOJSON,
                         conforms_to=OGC_FEATURES, service="features", role="metadata"),
            *(Distribution(f"{items}?f={f.name}", f"{layer.title}: {FORMAT_TITLES[f.name]}",
                           f.media_type.split(";")[0], download=True, key=f.name)
              for f in FORMATS.values()),
            *(Distribution(f"{items}?f={f.name}", f"{layer.title}: {FORMAT_TITLES[f.name]}",
                           f.media_type, download=True, key=f.name)
              for f in (cityjson.FORMATS.values() if layer.id == "buildings" else ())),
            _tiles(base, layer.id, layer.title),
        ]  # fmt: skip
        ds = Dataset(
            id=layer.id, kind="collection", title=layer.title,
            title_zh=TITLES_ZH.get(layer.id, layer.title), description=layer.description,
            label=layer.label, rows=int(st["n"]), bbox=_bbox(st), start=st.get("t0"),
            end=st.get("t1"), modified=_newest(*(versions.get(k) for k in layer.version_keys)),
            landing=f"{base}/collections/{layer.id}", keywords=(layer.id, layer.geometry),
            distributions=dists,
        )  # fmt: skip
        out.append(ds)
    return out


async def _cells(
    conn: AsyncConnection, who: Principal, base: str, versions: dict[str, datetime]
) -> list[Dataset]:
    layer = LAYERS["cells"]
    if not who.cleared_for(layer.label):
        return []
    out = []
    for row in await _rows(conn, "cell_stats"):
        res = int(row["res"])
        api = f"{base}/api/cells?res={res}&bbox=" + quote(",".join(
            str(v) for v in _bbox(row) or (-180, -90, 180, 90)), safe=",")  # fmt: skip
        ds = Dataset(
            id=f"cells-r{res}", kind="cells", title=f"H3 cell statistics, resolution {res}",
            title_zh=f"H3 网格统计 {res} 级",
            description=f"Statistics per H3 cell of resolution {res}: population, elderly and "
            "jobs (counts below k hidden from callers who may not see them, complementary "
            "suppression included), buildings, floor area, mean height, open and recent "
            "events, hazard sites.",
            label=layer.label, rows=int(row["n"]), bbox=_bbox(row),
            modified=_newest(row["updated_at"], versions.get("cell_stats")),
            keywords=("h3", "cells", f"resolution {res}"),
            distributions=[
                Distribution(api, f"Cells of resolution {res} (JSON)", JSON, role="metadata"),
                _tiles(base, "cells", "H3 cells"),
            ],
        )  # fmt: skip
        out.append(ds)
    return out


async def _risk(
    conn: AsyncConnection, who: Principal, base: str, settings: Settings, city: Bbox | None
) -> list[Dataset]:
    layers = [lyr for lyr in catalog_for(settings).all_layers()
              if who.cleared_for(lyr.classification)]  # fmt: skip
    core = [lyr.id for lyr in layers if lyr.classification == "core"]
    stats = {(r["layer_id"], int(r["res"])): r for r in await _rows(conn, "risk_layers",
                                                                     {"scoped": core})}  # fmt: skip
    out = []
    for lyr in layers:
        st = stats.get((lyr.id, lyr.res), {})
        ds = Dataset(
            id=f"risk-{lyr.id}", kind="risk", title=f"Risk: {lyr.title}",
            title_zh=f"风险 {lyr.title_zh}", description=lyr.description or lyr.title,
            label=lyr.classification, rows=int(st["n"]) if st else 0, bbox=_bbox(st) or city,
            modified=st.get("computed_at"), keywords=("risk", lyr.family),
            distributions=[
                Distribution(f"{base}/api/risk?layer={lyr.id}",
                             f"Risk scores of {lyr.title} per cell (JSON)", JSON,
                             role="metadata"),
                _tiles(base, lyr.tile_id, f"Risk: {lyr.title}"),
            ],
        )  # fmt: skip
        out.append(ds)
    return out


def _flood_run(row: dict[str, Any], base: str, settings: Settings) -> Dataset:
    run = int(row["id"])
    rasters = files.run_rasters(settings, run)
    bbox = next((f.bbox for f in rasters.values() if f.bbox), None)
    dists = [
        Distribution(f"{base}/files/runs/{run}/{name}", files.RUN_RASTERS[name], files.GEOTIFF,
                     download=True, byte_size=info.size, key=name.removesuffix(".tif"))
        for name, info in rasters.items()
    ]  # fmt: skip
    dists += [
        Distribution(f"{base}/api/simulations/{run}/cells", f"Flood run {run}: depth per cell "
                     "(JSON)", JSON, role="metadata"),
        _tiles(base, f"flood_{run}", f"Flood run {run}"),
    ]  # fmt: skip
    rp = (row["params"] or {}).get("return_period_years")
    storm = f" ({rp}-year design storm)" if rp else ""
    return Dataset(
        id=f"flood-run-{run}", kind="flood_run", title=f"Flood simulation run {run}{storm}",
        title_zh=f"内涝模拟结果 第 {run} 次运行",
        description="Waterlogging simulated on the twin: maximum depth and time of maximum "
        "per grid pixel (GeoTIFF), per H3 cell and on the roads.",
        label=table_level("sim_run"), bbox=bbox, start=row["started_at"], end=row["finished_at"],
        modified=_newest(row["finished_at"], *(f.modified for f in rasters.values())),
        landing=f"{base}/api/simulations/{run}", keywords=("flood", "waterlogging", "simulation"),
        distributions=dists,
    )  # fmt: skip


async def _flood_runs(
    conn: AsyncConnection, who: Principal, base: str, settings: Settings
) -> list[Dataset]:
    if not who.cleared_for(table_level("sim_run")):
        return []
    rows = await _rows(conn, "flood_runs", {"limit": MAX_RUNS})
    return [_flood_run(r, base, settings) for r in rows]


async def _rasters(conn: AsyncConnection, who: Principal, base: str) -> list[Dataset]:
    if not who.cleared_for(table_level("raster_asset")):
        return []
    out = []
    for row in await _rows(conn, "rasters"):
        info = files.stat(Path(row["path"]))
        if info is None:
            continue
        unit = f" ({row['unit']})" if row["unit"] else ""
        ds = Dataset(
            id=f"raster-{row['id']}", kind="raster", title=f"Raster {row['kind']}: "
            f"{row['name']}{unit}", title_zh=f"栅格数据 {row['kind']} {row['name']}",
            description=f"The {row['kind']} grid the twin's flood model reads.",
            label=table_level("raster_asset"), bbox=_bbox(row),
            modified=_newest(row["created_at"], info.modified),
            keywords=("raster", str(row["kind"])),
            distributions=[Distribution(f"{base}/files/rasters/{row['id']}",
                                        f"{row['kind']} {row['name']} (GeoTIFF)",
                                        files.GEOTIFF, download=True, byte_size=info.size,
                                        key="data")],
        )  # fmt: skip
        out.append(ds)
    return out


def _archives(who: Principal, base: str, settings: Settings) -> list[Dataset]:
    out = []
    for a in files.archives(settings):
        if not who.cleared_for(a.label):
            continue
        ds = Dataset(
            id=f"pmtiles-{a.stem}", kind="archive", title=f"Map tiles archive {a.name}",
            title_zh=f"地图瓦片包 {a.name}",
            description=(a.description or "Vector tiles of the twin") + f"; layers "
            f"{', '.join(a.layers)}, zooms {a.minzoom}-{a.maxzoom} (PMTiles v3, readable "
            "with HTTP range requests from static storage).",
            label=a.label, bbox=a.file.bbox, modified=a.file.modified,
            keywords=("pmtiles", "vector tiles", *a.layers),
            distributions=[Distribution(f"{base}/files/published/{a.name}",
                                        f"{a.name} (PMTiles)", files.PMTILES, download=True,
                                        byte_size=a.file.size, role="tiles", key="pmtiles")],
        )  # fmt: skip
        out.append(ds)
    return out


async def inventory(
    conn: AsyncConnection,
    who: Principal,
    settings: Settings,
    base: str,
    *,
    kinds: frozenset[str] | None = None,
) -> Inventory:
    """Every dataset ``who`` may obtain, on ``conn`` (the caller's transaction); ``kinds``:
    only datasets of these kinds (collection, cells, risk, flood_run, raster, archive)."""

    def wanted(kind: str) -> bool:
        return kinds is None or kind in kinds

    city = (await _rows(conn, "city")) or [{"name": None, "source": None, "updated_at": None}]
    versions = {r["layer"]: r["updated_at"] for r in await _rows(conn, "versions")}
    datasets: list[Dataset] = []
    if wanted("collection"):
        datasets += await _collections(conn, who, base, versions)
    if wanted("cells"):
        datasets += await _cells(conn, who, base, versions)
    if wanted("risk"):
        datasets += await _risk(conn, who, base, settings, _bbox(city[0]))
    if wanted("flood_run"):
        datasets += await _flood_runs(conn, who, base, settings)
    if wanted("raster"):
        datasets += await _rasters(conn, who, base)
    if wanted("archive"):
        datasets += _archives(who, base, settings)
    name = city[0]["name"] or "City twin"
    return Inventory(
        city=name, source=city[0]["source"], publisher=settings.open_data_publisher or name,
        license=settings.open_data_license,
        modified=_newest(*(d.modified for d in datasets)), datasets=datasets,
    )  # fmt: skip
