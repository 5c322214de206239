"""`twin ingest osm FILE.osm.pbf`: buildings, roads, land use and hazard POIs from OpenStreetMap.

Read in one streaming pass with libosmium (pyosmium), so memory follows the kept features, not
the file. Mapping rules (documented in the README):

* buildings: every area with ``building`` other than ``no``; height from ``height``, else
  ``building:levels`` x 3.0 m, else a per-use default (the three cases are counted); the
  address from ``addr:street`` + ``addr:housenumber``, else generated along the nearest road.
* roads: ways whose ``highway`` is in :data:`twin.ingest.layers.HIGHWAY_CLASSES` (not
  ``area=yes`` squares), split at
  every node shared with another road way; ``oneway=yes|true|1`` forward only, ``-1`` backward
  only, roundabouts and motorways one-way unless ``oneway=no``; lanes per direction from
  ``lanes`` (halved on two-way roads) else the class table; free speed from ``maxspeed``
  (km/h, or mph converted) else the class table.
* parcels: ``landuse`` (and ``leisure=park``) areas mapped to GB 50137 classes
  (:data:`LANDUSE_CLASSES`); other values are skipped and counted.
* hazard sites: ``amenity=fuel`` (fuel_station), ``parking=underground`` or
  ``parking=multi-storey`` with ``location=underground`` (underground_garage),
  ``railway=station`` + ``station=subway`` (metro_station), ``landuse=construction`` or
  ``building=construction`` (construction_site), ``man_made=storage_tank`` or
  ``hazard``/``industrial=chemical`` (chemical_storage); nodes and areas (by centroid).
"""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import osmium
import pandas as pd
import psycopg
import shapely

from twin.city.cells import refresh_cell_stats
from twin.city.meta import record_city
from twin.db.engine import database_url
from twin.ingest import layers, write
from twin.ingest.report import IngestError, Progress, Report, quiet
from twin.settings import Settings

LANDUSE_CLASSES = {
    "residential": "R",
    "commercial": "B",
    "retail": "B",
    "industrial": "M",
    "port": "M",
    "warehouse": "W",
    "railway": "S",
    "garages": "S",
    "education": "A",
    "religious": "A",
    "institutional": "A",
    "civic_admin": "A",
    "military": "A",
    "cemetery": "G",
    "grass": "G",
    "recreation_ground": "G",
    "village_green": "G",
    "park": "G",
    "meadow": "E",
    "forest": "E",
    "farmland": "E",
    "farmyard": "E",
    "orchard": "E",
    "vineyard": "E",
    "allotments": "E",
    "greenhouse_horticulture": "E",
    "basin": "U",
    "reservoir": "E",
    "construction": "R",
    "brownfield": "M",
    "landfill": "U",
}
HAZARD_CLASS = {
    "fuel_station": 2,
    "chemical_storage": 3,
    "construction_site": 1,
    "metro_station": 2,
    "underground_garage": 1,
}
_SPEED = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(mph|km/h|kmh|kph)?\s*$", re.IGNORECASE)


def hazard_category(tags: Any) -> str | None:
    get = tags.get
    if get("amenity") == "fuel":
        return "fuel_station"
    if get("parking") == "underground" or (
        get("amenity") == "parking" and get("location") == "underground"
    ):
        return "underground_garage"
    if get("railway") == "station" and get("station") == "subway":
        return "metro_station"
    if get("landuse") == "construction" or get("building") == "construction":
        return "construction_site"
    if (
        get("man_made") == "storage_tank"
        or get("industrial") == "chemical"
        or get("hazard") is not None
    ):
        return "chemical_storage"
    return None


def parse_speed(value: str | None) -> float | None:
    if not value:
        return None
    m = _SPEED.match(value)
    if not m:
        return None
    v = float(m.group(1))
    return v * 1.609344 if (m.group(2) or "").lower() == "mph" else v


class _Collector(osmium.SimpleHandler):
    def __init__(self) -> None:
        super().__init__()
        self.wkb = osmium.geom.WKBFactory()
        self.buildings: list[tuple[str, str | None, str | None, str | None, str | None, str]] = []
        self.parcels: list[tuple[str, str, str]] = []
        self.pois: list[tuple[str, str, str | None, float, float]] = []
        self.ways: list[tuple[int, dict[str, str], list[int], list[tuple[float, float]]]] = []
        self.skipped_landuse: dict[str, int] = {}
        self.bad_geometry = 0

    def node(self, n: Any) -> None:
        cat = hazard_category(n.tags)
        if cat and n.location.valid():
            self.pois.append((f"n{n.id}", cat, n.tags.get("name"), n.location.lon, n.location.lat))

    def way(self, w: Any) -> None:
        hw = w.tags.get("highway")
        # area=yes marks a paved square drawn as a polygon, not a road to drive along.
        if hw not in layers.HIGHWAY_CLASSES or w.tags.get("area") == "yes":
            return
        try:
            refs = [nd.ref for nd in w.nodes]
            coords = [(nd.lon, nd.lat) for nd in w.nodes]
        except osmium.InvalidLocationError:
            self.bad_geometry += 1
            return
        if len(refs) >= 2:
            keep = ("highway", "name", "oneway", "lanes", "maxspeed", "junction")
            self.ways.append((w.id, {k: w.tags.get(k) for k in keep if k in w.tags}, refs, coords))

    def area(self, a: Any) -> None:
        tags = a.tags
        oid = f"{'w' if a.from_way() else 'r'}{a.orig_id()}"
        b = tags.get("building")
        lu = tags.get("landuse") or ("park" if tags.get("leisure") == "park" else None)
        cat = hazard_category(tags)
        if not (b and b != "no") and lu is None and cat is None:
            return
        try:
            geom = self.wkb.create_multipolygon(a)
        except RuntimeError:
            self.bad_geometry += 1
            return
        if b and b != "no":
            street, number = tags.get("addr:street"), tags.get("addr:housenumber")
            addr = f"{street}{number}号" if street and number else None
            self.buildings.append(
                (oid, b, tags.get("height"), tags.get("building:levels"), addr, geom)
            )
        if lu is not None:
            cls = LANDUSE_CLASSES.get(lu)
            if cls is None:
                self.skipped_landuse[lu] = self.skipped_landuse.get(lu, 0) + 1
            else:
                self.parcels.append((oid, cls, geom))
        if cat is not None:
            c = shapely.centroid(shapely.from_wkb(geom))
            self.pois.append((oid, cat, tags.get("name"), c.x, c.y))


def read_osm(path: Path) -> _Collector:
    if not path.is_file():
        raise IngestError(path, "file not found")
    if path.stat().st_size == 0:
        raise IngestError(path, "file is empty")
    handler = _Collector()
    try:
        handler.apply_file(str(path), locations=True)
    except (RuntimeError, OSError) as exc:
        raise IngestError(path, f"cannot read the OSM file ({exc})") from exc
    return handler


def extent_center(h: _Collector) -> tuple[float, float]:
    """Centre (lon, lat) of the bounding box of everything read from the extract."""
    wkbs = [bytes.fromhex(b[-1]) for b in h.buildings] + [bytes.fromhex(p[-1]) for p in h.parcels]
    boxes = [shapely.bounds(shapely.from_wkb(wkbs))] if wkbs else []
    for _, _, _, coords in h.ways:
        xy = np.asarray(coords)
        boxes.append(np.concatenate([xy.min(axis=0), xy.max(axis=0)])[None, :])
    if h.pois:
        xy = np.array([(p[3], p[4]) for p in h.pois])
        boxes.append(np.hstack([xy, xy]))
    b = np.vstack(boxes)
    return float(b[:, 0].min() + b[:, 2].max()) / 2, float(b[:, 1].min() + b[:, 3].max()) / 2


def split_ways(
    ways: list[tuple[int, dict[str, str], list[int], list[tuple[float, float]]]],
) -> pd.DataFrame:
    """Road ways cut at every node shared with another road way (and at their ends)."""
    use: dict[int, int] = {}
    for _, _, refs, _ in ways:
        for r in refs:
            use[r] = use.get(r, 0) + 1
    rows: list[dict[str, Any]] = []
    for wid, tags, refs, coords in ways:
        cls = layers.HIGHWAY_CLASSES[tags["highway"]]
        lanes_d, speed_d, cap = layers.ROAD_DEFAULTS[cls]
        ow = (tags.get("oneway") or "").lower()
        oneway = 1 if ow in ("yes", "true", "1") else -1 if ow == "-1" else 0
        if (
            ow not in ("no", "false", "0")
            and oneway == 0
            and (
                tags.get("junction") in ("roundabout", "circular")
                or tags["highway"].startswith("motorway")
            )
        ):
            oneway = 1
        total = layers.parse_length(pd.Series([tags.get("lanes")])).iloc[0]
        lanes = (
            lanes_d
            if not total or math.isnan(total)
            else max(1, math.ceil(total / (1 if oneway else 2)))
        )
        speed = parse_speed(tags.get("maxspeed")) or speed_d
        start = 0
        for i in range(1, len(refs)):
            if i == len(refs) - 1 or use[refs[i]] > 1:
                piece = coords[start : i + 1]
                if len(piece) >= 2 and piece[0] != piece[-1]:
                    rows.append(
                        {
                            "source_id": f"w{wid}",
                            "road_class": cls,
                            "lanes": lanes,
                            "free_speed_kmh": speed,
                            "capacity_per_lane": cap,
                            "oneway": oneway,
                            "name": tags.get("name"),
                            "geometry": shapely.LineString(piece),
                        }
                    )
                start = i
    df = pd.DataFrame(rows)
    df["_row"] = np.arange(1, len(df) + 1)
    return df


def ingest_osm(
    path: Path, settings: Settings, *, mode: str = "replace", progress: Progress = quiet
) -> Report:
    """Buildings, roads, parcels and hazard sites of an OSM extract, in one transaction."""
    t0 = time.perf_counter()
    path = Path(path)
    report = Report(str(path), "osm")
    progress(f"reading {path.name}")
    h = read_osm(path)
    progress(f"writing {len(h.buildings):,} buildings, {len(h.ways):,} road ways")
    report.read = len(h.buildings) + len(h.ways) + len(h.parcels) + len(h.pois)
    if report.read == 0:
        raise IngestError(path, "no buildings, roads, land use or hazard sites in the file")
    res = settings.finest_resolution
    affected: list[int] = []
    counts: dict[str, int] = {}
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        # The extract places the city: its UTM zone is the metric CRS of every later step (a
        # replace is a new city; an append keeps the recorded one).
        crs = record_city(
            conn, settings, extent_center(h), source=f"osm:{path.name}", replace=mode == "replace"
        )
        if h.parcels:
            pf = pd.DataFrame(h.parcels, columns=["code", "land_use", "wkb"])
            geoms = shapely.make_valid(shapely.from_wkb(pf.wkb.map(bytes.fromhex).to_list()))
            pf = pd.DataFrame(
                {"code": "osm:" + pf.code, "land_use": pf.land_use, "geometry": geoms}
            )
            pf = pf[shapely.get_type_id(pf.geometry.to_numpy()) != 7].copy()  # collections dropped
            pf["_row"] = np.arange(1, len(pf) + 1)
            affected += write.write_parcels(conn, pf, mode=mode, res=res, path=path)
            counts["parcels"] = len(pf)
        if h.ways:
            rf = split_ways(h.ways)
            affected += write.write_roads(conn, rf, mode=mode, res=res, crs=crs, path=path)
            counts["road_ways"], counts["road_links_segments"] = len(h.ways), len(rf)
        if h.buildings:
            bf = pd.DataFrame(
                h.buildings,
                columns=["id", "building", "height", "building:levels", "address", "wkb"],
            )
            geoms = shapely.from_wkb(bf.wkb.map(bytes.fromhex).to_list())
            # Tag values that are not numbers ('12;15', 'tall') count as missing, not as errors.
            for col in ("height", "building:levels"):
                parsed = layers.parse_length(bf[col])
                report.details[f"unparsed_{col}"] = int((parsed.isna() & bf[col].notna()).sum())
                bf[col] = parsed.where(parsed > 0)
            gdf = gpd.GeoDataFrame(bf.drop(columns="wkb"), geometry=geoms, crs="EPSG:4326")
            gdf["_row"] = np.arange(1, len(gdf) + 1)
            frame, heights = layers.buildings_frame(
                gdf, path, layers.Fields(id="id", use="building", address="address")
            )
            frame["geometry"] = shapely.make_valid(frame.geometry.to_numpy())
            polygonal = np.array(
                [
                    any(p.geom_type == "Polygon" and p.area > 0 for p in shapely.get_parts(g))
                    for g in frame.geometry
                ]
            )
            report.reject("building without a usable polygon", frame._row[~polygonal].tolist())
            frame = frame[polygonal].reset_index(drop=True)
            affected += write.write_buildings(
                conn, frame, mode=mode, res=res, path=path, dedupe=True
            )
            counts["buildings"] = len(frame)
            report.details["height_from"] = heights
        pois = pd.DataFrame(h.pois, columns=["source_id", "category", "name", "lon", "lat"])
        pois = pois.drop_duplicates("source_id")
        pois["hazard_class"] = pois.category.map(HAZARD_CLASS)
        pois["geometry"] = shapely.points(pois.lon.to_numpy(), pois.lat.to_numpy())
        affected += write.write_hazard_sites(conn, pois, mode=mode, res=res)
        counts["hazard_sites"] = len(pois)
        progress("refreshing the affected cells")
        report.details["cells_refreshed"] = refresh_cell_stats(
            conn, settings.h3_resolutions, cells=affected, k=settings.suppression_k
        )
    report.details["layers"] = counts
    report.details["skipped_landuse"] = h.skipped_landuse
    report.details["unassembled_geometries"] = h.bad_geometry
    report.loaded = sum(counts.values()) - counts.get("road_links_segments", 0)
    report.seconds = time.perf_counter() - t0
    return report
