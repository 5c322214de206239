"""Load a generated city into the database with COPY, in the caller's one transaction.

The previous city (and everything derived from it: runs, scores, alerts, tasks) is truncated in
the same transaction, so a failed load leaves the database exactly as it was, and readers see
either the old city or the new one. Users and the audit log are kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import rasterio
import shapely
from psycopg import sql
from rasterio.transform import Affine

from twin.city import districts, rasters
from twin.city.cells import polygon_cells
from twin.city.synth.city import SyntheticCity
from twin.city.synth.terrain import Raster
from twin.db import bulk
from twin.db.copy import copy_rows
from twin.db.models import SCHEMA, metadata

# Everything that describes the city or is derived from it (not users or the audit log).
CITY_TABLES = (
    "admin_area",
    "admin_area_cell",
    "address",
    "building",
    "parcel",
    "parcel_cell",
    "person",
    "enterprise",
    "poi",
    "hazard_site",
    "event",
    "road_node",
    "road_link",
    "sensor",
    "observation",
    # roll-ups of this city's readings (the per-cell ones have no foreign key to a city table)
    "observation_5min",
    "observation_1h",
    "observation_cell_5min",
    "observation_cell_1h",
    "observation_rollup_queue",
    "raster_asset",
    "cell_stats",
    "area_counts",
    "sim_run",
    "flood_cell_result",
    "flood_link_result",
    "flood_building_result",
    "flood_ensemble_cell_result",
    "flood_ensemble_link_result",
    "traffic_link_result",
    "traffic_cell_result",
    # the rolling nowcast's carried state and results belong to this city's grid
    "nowcast",
    "nowcast_step",
    "nowcast_cell",
    "nowcast_link",
    "nowcast_skill",
    "risk_score",
    "alert",
    "task",
    "task_transition",
)
# Map layers whose content a city load changes (tile caches key on their versions).
CITY_LAYERS = (
    "admin_area",
    "address",
    "building",
    "parcel",
    "enterprise",
    "poi",
    "hazard_site",
    "event",
    "road_node",
    "road_link",
    "sensor",
    "cell_stats",
)


def _identity_id(table: str) -> bool:
    columns = metadata.tables[f"{SCHEMA}.{table}"].c
    return "id" in columns and columns["id"].identity is not None


#: The city tables whose ``id`` is an identity column, as their models declare it: the load
#: writes ids, so each sequence is then moved past the highest (an empty table's to 1, as the
#: TRUNCATE ... RESTART IDENTITY left it).
IDENTITY_TABLES = tuple(t for t in CITY_TABLES if _identity_id(t))

Step = Callable[[str, int], None]


def ewkb(geoms: Any) -> np.ndarray:
    """Geometries (EPSG:4326) -> hex EWKB with SRID, the text form PostGIS accepts in COPY."""
    arr = shapely.set_srid(np.asarray(geoms, dtype=object), 4326)
    return np.asarray(shapely.to_wkb(arr, hex=True, include_srid=True), dtype=object)


def as_multipolygons(geoms: Any) -> np.ndarray:
    """Polygons -> single-part MultiPolygons (the column type); collections keep their polygons."""
    arr = np.asarray(geoms, dtype=object)
    types = shapely.get_type_id(arr)
    if (types == 3).all():  # the usual case, vectorised: one MultiPolygon per polygon
        return np.asarray(shapely.multipolygons(arr, indices=np.arange(len(arr))), dtype=object)
    out = []
    for g in arr:
        if g.geom_type == "Polygon":
            out.append(shapely.MultiPolygon([g]))
        elif g.geom_type == "MultiPolygon":
            out.append(g)
        else:  # a collection from clipping: keep its polygons
            parts = [p for p in shapely.get_parts(g) if p.geom_type == "Polygon"]
            out.append(shapely.MultiPolygon(parts))
    return np.asarray(out, dtype=object)


def points(df: pd.DataFrame) -> np.ndarray:
    return ewkb(shapely.points(df.lon.to_numpy(), df.lat.to_numpy()))


def truncate_city(conn: psycopg.Connection) -> None:
    conn.execute(
        sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
            sql.SQL(", ").join(sql.Identifier("twin", t) for t in CITY_TABLES)
        )
    )


def write_raster(path: Path, raster: Raster) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows, cols = raster.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=cols,
        height=rows,
        count=1,
        dtype="float32",
        crs=raster.crs,
        transform=Affine(*raster.transform),
        nodata=raster.nodata,
        compress="deflate",
        tiled=True,
        blockxsize=256,
        blockysize=256,
    ) as dst:
        dst.write(raster.data, 1)


def _frames(city: SyntheticCity) -> dict[str, pd.DataFrame]:
    """One frame per table, columns named as in the database, in foreign-key order (persons,
    streamed separately, go after addresses)."""
    a, p, b, ad = city.admin, city.parcels, city.buildings, city.addresses
    e, h, n, lk, s, ev = (city.enterprises, city.hazard_sites, city.nodes, city.links,
                          city.sensors, city.events)  # fmt: skip
    return {
        "admin_area": pd.DataFrame({
            "id": a.id, "level": a.level, "code": a.code, "name": a.name, "name_en": a.name_en,
            "parent_id": a.parent_id.astype("Int64"), "geom": ewkb(as_multipolygons(a.geometry)),
        }),
        "parcel": pd.DataFrame({
            "id": p.id, "code": p.code, "land_use": p.land_use, "area_m2": p.area_m2.round(1),
            "plot_ratio": p.plot_ratio, "area_id": p.area_id,
            "geom": ewkb(as_multipolygons(p.geometry)),
            "attrs": [json.dumps({"zone": z}) for z in p.zone],
        }),
        "building": pd.DataFrame({
            "id": b.id, "use": b.use, "height_m": b.height_m, "height_source": "survey",
            "floors": b.floors, "footprint_m2": b.footprint_m2, "parcel_id": b.parcel_id,
            "area_id": b.area_id, "cell": b.cell, "geom": ewkb(as_multipolygons(b.geometry)),
        }),
        "address": pd.DataFrame({
            "id": ad.id, "text": ad.text, "normalized": ad.normalized,
            "components": [json.dumps({"road": r, "number": int(k)}, ensure_ascii=False)
                           for r, k in zip(ad.road, ad.number, strict=True)],
            "building_id": ad.building_id, "area_id": ad.area_id, "cell": ad.cell,
            "geom": points(ad),
        }),
        "enterprise": pd.DataFrame({
            "id": e.id, "name": e.name, "industry": e.industry, "employees": e.employees,
            "hazard_class": e.hazard_class, "building_id": e.building_id, "cell": e.cell,
            "geom": points(e),
        }),
        "hazard_site": pd.DataFrame({
            "id": h.id, "category": h.category, "name": h.name, "hazard_class": h.hazard_class,
            "enterprise_id": h.enterprise_id, "cell": h.cell, "geom": points(h),
        }),
        "road_node": pd.DataFrame({"id": n.id, "cell": n.cell, "geom": points(n)}),
        "road_link": pd.DataFrame({
            "id": lk.id, "from_node": lk.from_node, "to_node": lk.to_node,
            "road_class": lk.road_class, "name": lk.name, "lanes": lk.lanes,
            "free_speed_kmh": lk.free_speed_kmh, "capacity_vph": lk.capacity_vph,
            "length_m": lk.length_m.round(2), "bridge": lk.bridge, "cell": lk.cell,
            "geom": ewkb(lk.geometry),
        }),
        "sensor": pd.DataFrame({
            "id": s.id, "code": s.code, "kind": s.kind, "unit": s.unit,
            "road_link_id": s.road_link_id, "cell": s.cell, "geom": points(s),
        }),
        "event": pd.DataFrame({
            "id": ev.id, "type": ev.type, "severity": ev.severity, "status": ev.status,
            "source": ev.source, "occurred_at": ev.occurred_at, "closed_at": ev.closed_at,
            "area_id": ev.area_id, "cell": ev.cell, "geom": points(ev), "attrs": ev["attrs"],
        }),
    }  # fmt: skip


#: The big tables of a city, loaded without their indexes and keys (twin.db.bulk).
BULK_TABLES = ("building", "address", "person", "enterprise", "parcel")

PERSON_COLUMNS = ["id", "home_building_id", "home_address_id", "home_floor",
                  "workplace_building_id", "age_band", "resident_type", "lives_alone",
                  "home_cell", "work_cell", "district_id"]  # fmt: skip


def load_city(
    conn: psycopg.Connection,
    city: SyntheticCity,
    *,
    raster_dir: Path,
    step: Step | None = None,
) -> dict[str, int]:
    """Replace the city in the database by ``city``; returns rows loaded per table.

    Runs inside the caller's transaction. Rasters are written to ``raster_dir`` first (files
    outside the database; a failed load leaves only unreferenced files behind).
    """
    tick = step or (lambda _name, _n: None)
    counts: dict[str, int] = {}
    truncate_city(conn)
    frames = _frames(city)
    # The address <-> building cycle: each building carries its (first) address id in the one
    # COPY, with both keys checked at commit. Updating the buildings after the addresses went
    # in rewrote every building row and all its indexes (a minute at the large size).
    conn.execute(
        "SET CONSTRAINTS twin.fk_address_building_id_building,"
        " twin.fk_building_address_id_address DEFERRED"
    )
    first = frames["address"].drop_duplicates("building_id").set_index("building_id")["id"]
    frames["building"]["address_id"] = frames["building"]["id"].map(first).astype("Int64")
    # The tables were just emptied: their indexes are built, and their keys checked, once
    # after the rows are in (12 M residents: one sort per index, not 12 M insertions each).
    with bulk.loading(conn, *(f"twin.{t}" for t in BULK_TABLES)):
        for table, frame in frames.items():
            copy_rows(conn, f"twin.{table}", list(frame.columns), frame)
            counts[table] = len(frame)
            tick(table, len(frame))
            if table == "admin_area":
                # Residents are partitioned by home district: one partition per district first.
                districts.ensure(conn)
            if table == "address":
                counts["person"] = 0
                for chunk in city.people():
                    copy_rows(conn, "twin.person", PERSON_COLUMNS, chunk[PERSON_COLUMNS])
                    counts["person"] += len(chunk)
                    tick("person", len(chunk))

    _load_rasters(conn, city, raster_dir)
    counts["raster_asset"] = 2
    tick("raster_asset", 2)

    for table, key, ids, geoms in (
        ("parcel_cell", "parcel_id", city.parcels.id, city.parcels.geometry),
        ("admin_area_cell", "area_id", *_patches(city.admin)),
    ):
        df = polygon_cells(ids.to_numpy(), geoms.to_numpy(), city.res)
        df = df.rename(columns={"id": key})[[key, "res", "cell", "share"]]
        copy_rows(conn, f"twin.{table}", list(df.columns), df)
        counts[table] = len(df)

    for t in IDENTITY_TABLES:
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence({}, 'id'), coalesce(max(id), 0) + 1, false)"
                " FROM {}"
            ).format(sql.Literal(f"twin.{t}"), sql.Identifier("twin", t))
        )
    return counts


def _patches(admin: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    grid_patches = admin[admin.level == "grid"]
    return grid_patches.id, grid_patches.geometry


def _load_rasters(conn: psycopg.Connection, city: SyntheticCity, raster_dir: Path) -> None:
    name = f"demo-{city.frame.spec.name}-{city.frame.seed}"
    for kind, raster, fname in (
        ("dem", city.dem, "dem.tif"),
        ("drainage_capacity", city.drainage, "drainage.tif"),
    ):
        path = (raster_dir / fname).resolve()
        write_raster(path, raster)
        rows, cols = raster.shape
        rasters.register(
            conn, kind=kind, name=name, path=path, crs=raster.crs, transform=raster.transform,
            width=cols, height=rows, nodata=raster.nodata, unit=raster.unit,
        )  # fmt: skip


def bump_layer_versions(conn: psycopg.Connection, layers: tuple[str, ...] = CITY_LAYERS) -> None:
    """Advance each layer's data version in the caller's transaction (tile caches key on it)."""
    conn.execute(
        "INSERT INTO twin.layer_version (layer) SELECT unnest(%s::text[]) "
        "ON CONFLICT (layer) DO UPDATE"
        " SET version = twin.layer_version.version + 1, updated_at = now()",
        (list(layers),),
    )
