"""From a read file to rows of the model: field mapping, types, defaults, duplicates.

Each ``*_frame`` function takes the GeoDataFrame :func:`twin.ingest.read.read_vector` returned
and the field options, and gives a frame whose columns are the table's columns (plus ``_row``).
Everything wrong is an :class:`IngestError` naming the file, rows and field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

from twin.db.models.city import BUILDING_USES, LAND_USE_CLASSES
from twin.db.models.network import ROAD_CLASSES
from twin.db.models.observe import EVENT_SOURCES, EVENT_STATUSES
from twin.ingest.report import IngestError

# Storey height used when only the number of levels is known (m), and the height assumed per use
# when neither height nor levels is given (m): typical values for Chinese and European cities.
STOREY_HEIGHT_M = 3.0
DEFAULT_HEIGHT_M = {
    "residential": 9.0,
    "commercial": 12.0,
    "office": 24.0,
    "industrial": 8.0,
    "warehouse": 8.0,
    "public": 12.0,
    "education": 12.0,
    "health": 15.0,
    "transport": 8.0,
    "mixed": 15.0,
    "other": 6.0,
}
# Building use aliases (OSM building=* values and common words) -> our uses.
USE_ALIASES = {
    "residential": "residential",
    "apartments": "residential",
    "house": "residential",
    "detached": "residential",
    "semidetached_house": "residential",
    "terrace": "residential",
    "dormitory": "residential",
    "bungalow": "residential",
    "cabin": "residential",
    "commercial": "commercial",
    "retail": "commercial",
    "supermarket": "commercial",
    "kiosk": "commercial",
    "hotel": "commercial",
    "shop": "commercial",
    "office": "office",
    "industrial": "industrial",
    "manufacture": "industrial",
    "factory": "industrial",
    "warehouse": "warehouse",
    "storage": "warehouse",
    "public": "public",
    "civic": "public",
    "government": "public",
    "church": "public",
    "cathedral": "public",
    "chapel": "public",
    "mosque": "public",
    "temple": "public",
    "school": "education",
    "university": "education",
    "college": "education",
    "kindergarten": "education",
    "hospital": "health",
    "clinic": "health",
    "train_station": "transport",
    "transportation": "transport",
    "parking": "transport",
    "garage": "transport",
    "garages": "transport",
    "mixed": "mixed",
}
# Road defaults per class: lanes per direction, free speed (km/h), capacity per lane (veh/h).
ROAD_DEFAULTS: dict[str, tuple[int, float, float]] = {
    "motorway": (3, 100.0, 2000.0),
    "expressway": (3, 80.0, 1800.0),
    "trunk": (2, 70.0, 1500.0),
    "primary": (2, 50.0, 900.0),
    "secondary": (2, 40.0, 800.0),
    "tertiary": (1, 40.0, 700.0),
    "residential": (1, 30.0, 600.0),
    "service": (1, 20.0, 400.0),
    "connector": (1, 30.0, 1000.0),
}
# OSM highway=* -> road class (links inherit their road's class).
HIGHWAY_CLASSES = {
    "motorway": "motorway",
    "motorway_link": "motorway",
    "trunk": "trunk",
    "trunk_link": "trunk",
    "primary": "primary",
    "primary_link": "primary",
    "secondary": "secondary",
    "secondary_link": "secondary",
    "tertiary": "tertiary",
    "tertiary_link": "tertiary",
    "unclassified": "residential",
    "residential": "residential",
    "living_street": "residential",
    "service": "service",
}

_NUMBER = re.compile(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(m|meters|metres)?\s*$", re.IGNORECASE)


@dataclass
class Fields:
    """Which source columns feed which model fields (None: look for the usual names)."""

    id: str | None = None
    height: str | None = None
    levels: str | None = None
    use: str | None = None
    address: str | None = None
    land_use: str | None = None
    road_class: str | None = None
    lanes: str | None = None
    speed: str | None = None
    oneway: str | None = None
    name: str | None = None
    type: str | None = None
    time: str | None = None
    severity: str | None = None
    status: str | None = None
    source: str | None = None


def _column(
    gdf: pd.DataFrame,
    path: Path,
    given: str | None,
    usual: tuple[str, ...],
    *,
    required: bool = False,
) -> str | None:
    if given is not None:
        if given not in gdf.columns:
            cols = ", ".join(c for c in gdf.columns if not c.startswith("_") and c != "geometry")
            raise IngestError(path, f"no such column; the file has {cols}", field=given)
        return given
    lower = {c.lower(): c for c in gdf.columns}
    found = next((lower[u] for u in usual if u in lower), None)
    if found is None and required:
        cols = ", ".join(c for c in gdf.columns if not c.startswith("_") and c != "geometry")
        raise IngestError(
            path,
            f"missing required field (one of {', '.join(usual)}; the file has {cols})",
            field=usual[0],
        )
    return found


def parse_length(values: pd.Series) -> pd.Series:
    """'12', '12.5 m', '12,5' -> float metres; None for empty; NaN for unparseable."""
    if pd.api.types.is_numeric_dtype(values):  # a typed column (GeoPackage, Parquet): no parsing
        return values.astype("float64")

    def one(v: object) -> float | None:
        if v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == "":
            return None
        if isinstance(v, int | float):
            return float(v)
        m = _NUMBER.match(str(v))
        return float(m.group(1).replace(",", ".")) if m else float("nan")

    return pd.Series([one(v) for v in values], index=values.index, dtype="float64")


def _numeric(gdf: pd.DataFrame, path: Path, col: str | None) -> pd.Series | None:
    if col is None:
        return None
    raw = gdf[col]
    vals = parse_length(raw)
    bad = vals.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        raise IngestError(
            path, f"not a number: {raw[bad].iloc[0]!r}", rows=gdf._row[bad].tolist(), field=col
        )
    return vals


def _check_ids(gdf: pd.DataFrame, path: Path, col: str | None) -> pd.Series | None:
    if col is None:
        return None
    ids = gdf[col].astype(str)
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise IngestError(
            path,
            f"duplicate ids (e.g. {ids[dup].iloc[0]!r})",
            rows=gdf._row[dup].tolist(),
            field=col,
        )
    return ids


def buildings_frame(
    gdf: gpd.GeoDataFrame, path: Path, f: Fields
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Buildings with height from the height field, else levels x storey height, else a per-use
    default; returns the frame and how many heights came from each source."""
    idc = _check_ids(gdf, path, _column(gdf, path, f.id, ("id", "source_id", "osm_id")))
    height = _numeric(gdf, path, _column(gdf, path, f.height, ("height", "height_m")))
    levels = _numeric(
        gdf, path, _column(gdf, path, f.levels, ("building:levels", "levels", "floors"))
    )
    usec = _column(gdf, path, f.use, ("use", "building", "type"))
    raw_use = (
        gdf[usec].astype(str).str.strip().str.lower()
        if usec
        else pd.Series("other", index=gdf.index)
    )
    use = raw_use.map(lambda u: u if u in BUILDING_USES else USE_ALIASES.get(u, "other"))
    n = len(gdf)
    h = height if height is not None else pd.Series(np.nan, index=gdf.index)
    lv = levels if levels is not None else pd.Series(np.nan, index=gdf.index)
    for name, s in (("height", h), ("levels", lv)):
        neg = s.notna() & (s <= 0)
        if neg.any():
            raise IngestError(path, f"{name} must be positive", rows=gdf._row[neg].tolist())
    source = np.where(h.notna(), "height", np.where(lv.notna(), "levels", "default"))
    height_m = np.where(
        h.notna(), h, np.where(lv.notna(), lv * STOREY_HEIGHT_M, use.map(DEFAULT_HEIGHT_M))
    )
    floors = np.where(lv.notna(), np.round(lv), np.maximum(1, np.round(height_m / STOREY_HEIGHT_M)))
    addrc = _column(gdf, path, f.address, ("address", "addr", "地址"))
    frame = pd.DataFrame(
        {
            "source_id": idc if idc is not None else None,
            "use": use.to_numpy(),
            "height_m": np.round(height_m.astype(float), 2),
            "height_source": source,
            "floors": floors.astype(int),
            "geometry": gdf.geometry.to_numpy(),
            "address_text": gdf[addrc].astype(str).to_numpy() if addrc else None,
            "_row": gdf._row.to_numpy(),
        }
    )
    counts = {k: int((source == k).sum()) for k in ("height", "levels", "default")}
    assert len(frame) == n
    return frame, counts


def parcels_frame(gdf: gpd.GeoDataFrame, path: Path, f: Fields) -> pd.DataFrame:
    idc = _check_ids(gdf, path, _column(gdf, path, f.id, ("id", "code", "source_id")))
    luc = _column(gdf, path, f.land_use, ("land_use", "landuse", "用地性质"), required=True)
    assert luc is not None
    lu = gdf[luc].astype(str).str.strip().str.upper()
    bad = ~lu.str[:1].isin(LAND_USE_CLASSES) | (lu.str.len() > 4)
    if bad.any():
        raise IngestError(
            path,
            f"not a GB 50137 land-use class (one of {', '.join(LAND_USE_CLASSES)}, "
            f"optionally with a sub-class like R2): {lu[bad].iloc[0]!r}",
            rows=gdf._row[bad].tolist(),
            field=luc,
        )
    return pd.DataFrame(
        {
            "code": idc,
            "land_use": lu.to_numpy(),
            "geometry": gdf.geometry.to_numpy(),
            "_row": gdf._row.to_numpy(),
        }
    )


def roads_frame(gdf: gpd.GeoDataFrame, path: Path, f: Fields) -> pd.DataFrame:
    """Road lines: class (ours, or an OSM highway value), lanes, speed, oneway, name."""
    idc = _check_ids(gdf, path, _column(gdf, path, f.id, ("id", "source_id", "osm_id")))
    clc = _column(gdf, path, f.road_class, ("road_class", "class", "highway"), required=True)
    assert clc is not None
    raw = gdf[clc].astype(str).str.strip().str.lower()
    cls = raw.map(lambda c: c if c in ROAD_CLASSES else HIGHWAY_CLASSES.get(c))
    bad = cls.isna()
    if bad.any():
        raise IngestError(
            path,
            f"unknown road class {raw[bad].iloc[0]!r} (one of {', '.join(ROAD_CLASSES)} "
            "or an OSM highway value)",
            rows=gdf._row[bad].tolist(),
            field=clc,
        )
    lanes = _numeric(gdf, path, _column(gdf, path, f.lanes, ("lanes",)))
    speed = _numeric(
        gdf, path, _column(gdf, path, f.speed, ("free_speed_kmh", "maxspeed", "speed"))
    )
    onec = _column(gdf, path, f.oneway, ("oneway",))
    oneway = (
        gdf[onec]
        .astype(str)
        .str.strip()
        .str.lower()
        .map({"yes": 1, "true": 1, "1": 1, "-1": -1})
        .fillna(0)
        if onec
        else pd.Series(0, index=gdf.index)
    )
    namec = _column(gdf, path, f.name, ("name",))
    d = cls.map(lambda c: ROAD_DEFAULTS[c])
    lanes_v = lanes.fillna(d.map(lambda t: t[0])) if lanes is not None else d.map(lambda t: t[0])
    speed_v = speed.fillna(d.map(lambda t: t[1])) if speed is not None else d.map(lambda t: t[1])
    return pd.DataFrame(
        {
            "source_id": idc,
            "road_class": cls.to_numpy(),
            "lanes": np.maximum(1, lanes_v.round().astype(int)).to_numpy(),
            "free_speed_kmh": speed_v.astype(float).to_numpy(),
            "capacity_per_lane": d.map(lambda t: t[2]).to_numpy(),
            "oneway": oneway.astype(int).to_numpy(),
            "name": gdf[namec].astype(str).to_numpy() if namec else None,
            "geometry": gdf.geometry.to_numpy(),
            "_row": gdf._row.to_numpy(),
        }
    )


def _choice(
    gdf: pd.DataFrame, path: Path, col: str | None, allowed: tuple[str, ...], default: str
) -> pd.Series:
    """A column of values from ``allowed`` (case and spaces ignored), or ``default`` if absent."""
    if col is None:
        return pd.Series(default, index=gdf.index)
    values = gdf[col].astype(str).str.strip().str.lower()
    bad = ~values.isin(allowed)
    if bad.any():
        raise IngestError(
            path, f"must be one of {', '.join(allowed)}", rows=gdf._row[bad].tolist(), field=col
        )
    return values


def events_frame(gdf: gpd.GeoDataFrame, path: Path, f: Fields) -> pd.DataFrame:
    idc = _check_ids(gdf, path, _column(gdf, path, f.id, ("id", "source_id")))
    typec = _column(gdf, path, f.type, ("type", "event_type"), required=True)
    timec = _column(gdf, path, f.time, ("occurred_at", "time", "datetime", "date"), required=True)
    assert typec is not None and timec is not None
    when = pd.to_datetime(gdf[timec], errors="coerce", utc=True, format="mixed")
    bad = when.isna()
    if bad.any():
        raise IngestError(
            path,
            f"not a date-time: {gdf[timec][bad].iloc[0]!r}",
            rows=gdf._row[bad].tolist(),
            field=timec,
        )
    sevc = _column(gdf, path, f.severity, ("severity",))
    sev = pd.Series(1, index=gdf.index)
    if sevc:
        sev_raw = pd.to_numeric(gdf[sevc], errors="coerce")
        badsev = sev_raw.isna() | ~sev_raw.between(1, 4)
        if badsev.any():
            raise IngestError(
                path, "severity must be an integer 1..4", rows=gdf._row[badsev].tolist(), field=sevc
            )
        sev = sev_raw.astype(int)
    status = _choice(gdf, path, _column(gdf, path, f.status, ("status",)), EVENT_STATUSES, "open")
    source = _choice(gdf, path, _column(gdf, path, f.source, ("source",)), EVENT_SOURCES, "import")
    return pd.DataFrame(
        {
            "source_id": idc,
            "type": gdf[typec].astype(str).str.strip().to_numpy(),
            "occurred_at": when.to_numpy(),
            "severity": sev.to_numpy(),
            "status": status.to_numpy(),
            "source": source.to_numpy(),
            "geometry": gdf.geometry.to_numpy(),
            "_row": gdf._row.to_numpy(),
        }
    )
