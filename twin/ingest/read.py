"""Reading vector data from the files people have, into EPSG:4326 with row numbers.

GeoPackage, GeoJSON, Shapefile, FlatGeobuf (through GDAL/pyogrio), GeoParquet (pyarrow) and CSV
with a WKT column or lon/lat columns. A file must declare its CRS, or the caller must name one.
Geometries are checked: missing or of the wrong kind are errors; invalid ones are repaired when
the repair keeps their kind, otherwise rejected with their row numbers.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from pyproj.exceptions import CRSError

from twin.ingest.report import IngestError, Report

VECTOR_SUFFIXES = (".gpkg", ".geojson", ".json", ".shp", ".fgb", ".parquet", ".geoparquet", ".csv")
WKT_NAMES = ("wkt", "geometry", "geom", "the_geom")
LON_NAMES = ("lon", "lng", "longitude", "x")
LAT_NAMES = ("lat", "latitude", "y")
# Kind of geometry a layer holds -> shapely type ids accepted (single and multi).
FAMILIES = {
    "polygon": (3, 6),
    "line": (1, 5),
    "point": (0,),
}
_FAMILY_NAMES = {"polygon": "Polygon/MultiPolygon", "line": "LineString", "point": "Point"}


def read_vector(
    path: Path,
    *,
    family: str,
    crs: str | None = None,
    layer: str | None = None,
    wkt_field: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
    report: Report,
) -> gpd.GeoDataFrame:
    """Read ``path`` into a GeoDataFrame in EPSG:4326 with a 1-based ``_row`` column.

    Raises
    ------
    IngestError
        for a missing, empty or unreadable file, a file without CRS (and no ``crs``), a
        geometry of another kind than ``family``, missing geometries, coordinates outside
        the valid range, or invalid geometries that cannot be repaired.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError(path, "file not found")
    if path.stat().st_size == 0:
        raise IngestError(path, "file is empty")
    suffix = path.suffix.lower()
    if suffix not in VECTOR_SUFFIXES:
        raise IngestError(
            path, f"unsupported file type {suffix!r}; use one of {', '.join(VECTOR_SUFFIXES)}"
        )
    if suffix == ".csv":
        gdf = _read_csv(path, wkt_field=wkt_field, lon_field=lon_field, lat_field=lat_field)
    else:
        try:
            if suffix in (".parquet", ".geoparquet"):
                gdf = gpd.read_parquet(path)
            else:
                gdf = gpd.read_file(path, layer=layer, engine="pyogrio")
        except Exception as exc:  # pyogrio, pyarrow and GDAL raise many kinds; all mean unreadable
            raise IngestError(path, f"cannot read the file ({type(exc).__name__}: {exc})") from exc
    if len(gdf) == 0:
        raise IngestError(path, "file has no features")
    report.read = len(gdf)
    gdf = gdf.reset_index(drop=True)
    gdf["_row"] = np.arange(1, len(gdf) + 1)
    if gdf.crs is None:
        if crs is None:
            raise IngestError(
                path, "the file declares no CRS; name it with --crs (e.g. --crs EPSG:4326)"
            )
        try:
            gdf = gdf.set_crs(CRS.from_user_input(crs))
        except CRSError as exc:
            raise IngestError(path, f"--crs {crs!r} is not a CRS ({exc})") from exc
    return _check_geometry(path, gdf, family, report)


def _read_csv(
    path: Path, *, wkt_field: str | None, lon_field: str | None, lat_field: str | None
) -> gpd.GeoDataFrame:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise IngestError(path, f"cannot read the CSV ({exc})") from exc
    cols = {c.lower(): c for c in df.columns}
    wkt = wkt_field or next((cols[n] for n in WKT_NAMES if n in cols), None)
    lon = lon_field or next((cols[n] for n in LON_NAMES if n in cols), None)
    lat = lat_field or next((cols[n] for n in LAT_NAMES if n in cols), None)
    if wkt and wkt in df.columns:
        geoms = shapely.from_wkt(df[wkt].to_numpy(dtype=object), on_invalid="ignore")
        bad = np.flatnonzero(shapely.is_missing(geoms) & (df[wkt].str.strip() != "").to_numpy())
        if len(bad):
            raise IngestError(path, "unparseable WKT", rows=(bad + 1).tolist(), field=wkt)
        rest = df.drop(columns=[wkt])
    elif lon and lat and lon in df.columns and lat in df.columns:
        x = pd.to_numeric(df[lon], errors="coerce")
        y = pd.to_numeric(df[lat], errors="coerce")
        for name, values in ((lon, x), (lat, y)):
            bad = np.flatnonzero(values.isna().to_numpy())
            if len(bad):
                raise IngestError(path, "not a number", rows=(bad + 1).tolist(), field=name)
        geoms = shapely.points(x.to_numpy(), y.to_numpy())
        rest = df.drop(columns=[lon, lat])
    else:
        named = [f for f in (wkt_field, lon_field, lat_field) if f and f not in df.columns]
        if named:
            raise IngestError(
                path, f"no such column; the file has {', '.join(df.columns)}", field=named[0]
            )
        raise IngestError(
            path,
            "a CSV needs a WKT column (--wkt-field) or lon/lat columns (--lon-field, --lat-field); "
            f"found columns {', '.join(df.columns)}",
        )
    return gpd.GeoDataFrame(rest, geometry=geoms, crs=None)


def _check_geometry(
    path: Path, gdf: gpd.GeoDataFrame, family: str, report: Report
) -> gpd.GeoDataFrame:
    geoms = gdf.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        raise IngestError(path, "feature without geometry", rows=gdf._row[missing].tolist())
    types = shapely.get_type_id(geoms)
    wrong = ~np.isin(types, FAMILIES[family])
    if wrong.any():
        found = sorted({shapely.get_type_id(g) for g in geoms[wrong]})
        names = ", ".join(shapely.GeometryType(t).name for t in found)
        raise IngestError(
            path,
            f"mixed geometry types: expected {_FAMILY_NAMES[family]}, found {names}",
            rows=gdf._row[wrong].tolist(),
        )
    try:
        gdf = gdf.to_crs("EPSG:4326")
    except Exception as exc:  # pyproj raises for impossible transforms
        raise IngestError(path, f"cannot reproject to EPSG:4326 ({exc})") from exc
    geoms = gdf.geometry.to_numpy()
    minx, miny, maxx, maxy = shapely.bounds(geoms).T
    out = ~(
        np.isfinite(minx)
        & np.isfinite(maxy)
        & (minx >= -180)
        & (maxx <= 180)
        & (miny >= -90)
        & (maxy <= 90)
    )
    if out.any():
        raise IngestError(
            path,
            "coordinates outside the valid range after reprojection to EPSG:4326 "
            "(is the declared CRS right?)",
            rows=gdf._row[out].tolist(),
        )
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = shapely.make_valid(geoms[invalid])
        keep = np.empty(len(fixed), dtype=object)
        ok = np.zeros(len(fixed), dtype=bool)
        for i, g in enumerate(fixed):
            parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in FAMILIES[family]]
            if family == "polygon":
                parts = [p for p in parts if p.area > 0]
            if parts:
                merged = shapely.union_all(parts) if len(parts) > 1 else parts[0]
                if shapely.get_type_id(merged) in FAMILIES[family] and merged.is_valid:
                    keep[i], ok[i] = merged, True
        rows = gdf._row.to_numpy()[invalid]
        report.reject("invalid geometry that cannot be repaired", rows[~ok].tolist())
        report.repaired = int(ok.sum())
        idx = np.flatnonzero(invalid)
        geoms = geoms.copy()
        geoms[idx[ok]] = keep[ok]
        gdf = gdf.set_geometry(gpd.GeoSeries(geoms, crs="EPSG:4326", index=gdf.index))
        gdf = gdf.drop(index=gdf.index[idx[~ok]])
    return gdf
