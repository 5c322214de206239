"""H3 hexagon grid: points, polygons and rasters to cells; ids; parents; boundaries.

Conventions (see DESIGN.md section 4):

* Cell ids are ``int64`` arrays here and signed ``BIGINT`` in PostgreSQL. Valid H3 cell ids are
  below 2**63 (the top bit is reserved and zero), so the signed form is lossless.
* On the wire (JSON, tiles, h3-js, deck.gl) cells are lowercase hex strings: JavaScript numbers
  cannot hold 64-bit integers.
* Parents are computed by bit arithmetic (the same arithmetic as the SQL function
  ``twin.h3_parent``), never by a round trip through coordinates.

Everything here is pure: arrays and frames in, arrays and frames out; no database.
Cell boundaries are treated as straight edges between their vertices in lon/lat. At the
resolutions the twin uses (7 to 10, edges of 1.4 km to 76 m) the difference from H3's geodesic
edges is far below a metre. Cells crossing the antimeridian are not supported.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import geopandas as gpd
import h3
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
import shapely.geometry
from h3.api import basic_int
from pyproj import CRS, Transformer

CellArray = npt.NDArray[np.int64]

# Bit layout of an H3 cell index: resolution in bits 52-55; fifteen 3-bit digits below bit 45,
# digit r at bits 3*(15-r); digits finer than the cell's resolution are all ones (7).
_RES_SHIFT = 52
_RES_MASK = np.int64(15) << np.int64(_RES_SHIFT)
MAX_RES = 15

# Equal-area CRS for area weights (NSIDC EASE-Grid 2.0 Global, Lambert cylindrical equal-area):
# overlap shares are ratios of areas, so an equal-area projection makes them exact ratios of
# true areas up to the straight-edge approximation.
EQUAL_AREA_CRS = "EPSG:6933"

_latlng_to_cell = np.frompyfunc(basic_int.latlng_to_cell, 3, 1)
# From this many points on, twin.h3c (compiled once per installation, then loaded from numba's
# cache in about half a second) beats h3-py's per-point calls.
_NATIVE_FROM = 100_000


# --------------------------------------------------------------------------------- ids
def to_int(cells: Iterable[str] | str) -> CellArray:
    """Hex strings -> ``int64`` cell ids.

    Raises
    ------
    ValueError
        naming the first entry that is not a valid H3 cell.
    """
    items = [cells] if isinstance(cells, str) else list(cells)
    out = np.empty(len(items), dtype=np.int64)
    for i, s in enumerate(items):
        try:
            valid = isinstance(s, str) and h3.is_valid_cell(s)
        except (ValueError, OverflowError):  # not hex, or hex outside 0..2**64-1 ('-1', 17 f's)
            valid = False
        if not valid:
            raise ValueError(f"entry {i}: {s!r} is not a valid H3 cell id")
        out[i] = int(s, 16)
    return out


def to_hex(cells: npt.ArrayLike) -> list[str]:
    """``int64`` (or unsigned) cell ids -> lowercase hex strings, as H3 and h3-js write them."""
    arr = np.asarray(cells).astype(np.uint64, copy=False).ravel()
    return [format(int(c), "x") for c in arr]


def is_valid(cells: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Whether each id is a valid H3 cell."""
    arr = np.asarray(cells).astype(np.uint64, copy=False).ravel()
    return np.fromiter((basic_int.is_valid_cell(int(c)) for c in arr), dtype=bool, count=arr.size)


def resolution(cells: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Resolution (0..15) of each cell, from its bits."""
    arr = np.asarray(cells, dtype=np.int64)
    return (arr >> _RES_SHIFT) & 15


def parent(cells: npt.ArrayLike, res: int) -> CellArray:
    """Parent of each cell at resolution ``res`` by bit arithmetic.

    Set the resolution field to ``res`` and every digit finer than ``res`` to 7. Matches
    ``h3.cell_to_parent`` and the SQL function ``twin.h3_parent``.

    Raises
    ------
    ValueError
        if ``res`` is outside 0..15 or finer than some cell's own resolution.
    """
    if not 0 <= res <= MAX_RES:
        raise ValueError(f"res must be in 0..15, got {res}")
    arr = np.asarray(cells, dtype=np.int64)
    own = resolution(arr)
    if arr.size and int(own.min()) < res:
        i = int(np.argmin(own))
        raise ValueError(
            f"cell {to_hex(arr.ravel()[i : i + 1])[0]} has resolution {int(own.ravel()[i])}, "
            f"coarser than the requested parent resolution {res}"
        )
    fill = np.int64((1 << (3 * (MAX_RES - res))) - 1)
    return ((arr & ~_RES_MASK) | (np.int64(res) << np.int64(_RES_SHIFT))) | fill


def descendant_range(cell: int, res: int) -> tuple[int, int]:
    """Inclusive id range holding every descendant of ``cell`` at the finer resolution ``res``.

    Descendants share the cell's base cell and digits and differ only in digits r+1..res, so
    with the resolution field set to ``res`` they fill one contiguous range: a B-tree index on
    stored cells answers "everything inside this coarser cell" with ``BETWEEN lo AND hi``.
    """
    own = int(resolution(np.array([cell]))[0])
    if not own <= res <= MAX_RES:
        raise ValueError(f"res must be in {own}..15 for a resolution-{own} cell, got {res}")
    at_res = (int(cell) & ~int(_RES_MASK)) | (res << _RES_SHIFT)
    span = 0
    for d in range(own + 1, res + 1):
        span |= 7 << (3 * (MAX_RES - d))
    return at_res & ~span, at_res | span


# --------------------------------------------------------------------------------- points
def points_to_cells(
    lon: npt.ArrayLike, lat: npt.ArrayLike, res: int, *, workers: int | None = None
) -> CellArray:
    """Points (degrees, EPSG:4326) -> cells at ``res``.

    Large arrays go through H3's own C function on every core (``twin.h3c``); small ones
    through h3-py. Both run the same C code, so the cells are those of ``h3.latlng_to_cell``
    whatever the size or the number of workers.

    Parameters
    ----------
    lon, lat
        Longitudes and latitudes (degrees), arrays of one shape.
    res
        H3 resolution, 0..15.
    workers
        Threads for large arrays (keyword-only); ``None``: every core this process may use.

    Returns
    -------
    ndarray of int64, the shape of ``lon``.

    Raises
    ------
    ValueError
        for mismatched shapes, a resolution outside 0..15, a ``workers`` below 1, or a
        non-finite or out-of-range coordinate (naming its position).
    """
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    if lon_a.shape != lat_a.shape:
        raise ValueError(f"lon and lat differ in shape: {lon_a.shape} vs {lat_a.shape}")
    if not 0 <= res <= MAX_RES:
        raise ValueError(f"res must be in 0..15, got {res}")
    bad = ~(
        np.isfinite(lon_a) & np.isfinite(lat_a) & (np.abs(lat_a) <= 90) & (np.abs(lon_a) <= 180)
    )
    if bad.any():
        i = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"point {i}: ({lon_a.ravel()[i]}, {lat_a.ravel()[i]}) is not a valid lon/lat in degrees"
        )
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if lon_a.size == 0:
        return np.empty(lon_a.shape, dtype=np.int64)
    if lon_a.size < _NATIVE_FROM:
        out = _latlng_to_cell(lat_a, lon_a, res)
        return np.asarray(out, dtype=np.uint64).astype(np.int64)
    from twin import h3c  # imports numba: only when a large array needs it

    cells = h3c.latlng_to_cell(lat_a.ravel(), lon_a.ravel(), res, workers=workers)
    return cells.view(np.int64).reshape(lon_a.shape)


def cell_centers(cells: npt.ArrayLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Centres (lon, lat in degrees) of cells."""
    arr = np.asarray(cells).astype(np.uint64, copy=False).ravel()
    lat = np.empty(arr.size)
    lon = np.empty(arr.size)
    for i, c in enumerate(arr):
        lat[i], lon[i] = basic_int.cell_to_latlng(int(c))
    return lon, lat


# --------------------------------------------------------------------------------- boundaries
def boundary(cell: int) -> shapely.Polygon:
    """A cell's boundary as a lon/lat polygon (straight edges between H3 vertices)."""
    return _boundary(int(cell))


@lru_cache(maxsize=1 << 16)
def _boundary(cell: int) -> shapely.Polygon:
    # Cached: neighbouring polygons share most of their cells (shapely geometries are immutable).
    ring = [(lng, lat) for lat, lng in basic_int.cell_to_boundary(int(np.uint64(np.int64(cell))))]
    return shapely.Polygon(ring)


def boundaries(cells: npt.ArrayLike) -> npt.NDArray[np.object_]:
    """Boundaries of many cells as lon/lat polygons, the same as :func:`boundary` per cell.

    H3's C ``cellToBoundary`` over the array (:func:`twin.h3c.cell_boundaries`), then one
    ``shapely.polygons`` call per vertex count (6 for hexagons, 5 for pentagons, more where an
    edge crosses an icosahedron face): one polygon at a time was most of the cost of writing
    150 k cells' shapes at city scale.
    """
    from twin.h3c import cell_boundaries

    arr = np.asarray(cells, dtype=np.int64).ravel()
    nverts, verts = cell_boundaries(arr.astype(np.uint64))
    out = np.empty(arr.size, dtype=object)
    for n in np.unique(nverts).tolist():
        idx = np.flatnonzero(nverts == n)
        out[idx] = shapely.polygons(np.ascontiguousarray(verts[idx, :n, ::-1]))  # (lng, lat)
    return out


def cells_to_geodataframe(cells: npt.ArrayLike) -> gpd.GeoDataFrame:
    """Cell boundaries as a GeoDataFrame (EPSG:4326) with columns ``cell`` (int64),
    ``h3`` (hex string) and ``res``."""
    arr = np.asarray(cells, dtype=np.int64).ravel()
    return gpd.GeoDataFrame(
        {"cell": arr, "h3": to_hex(arr), "res": resolution(arr)},
        geometry=[boundary(int(c)) for c in arr],
        crs="EPSG:4326",
    )


# --------------------------------------------------------------------------------- polygons
def polygons_to_cells(
    polygons: Sequence[shapely.Geometry] | gpd.GeoSeries | npt.NDArray[Any],
    res: int,
    *,
    crs: str = EQUAL_AREA_CRS,
) -> pd.DataFrame:
    """Area-weighted overlap of polygons (EPSG:4326) with the cells at ``res``.

    Every cell that overlaps a polygon gets ``share`` = (area of polygon ∩ cell) / (area of
    polygon), both measured in the equal-area ``crs``; a polygon's shares sum to 1. This is the
    weight to split a polygon's quantity (people in a parcel, land-use area) onto cells, which a
    centroid assignment would put wholly in one cell.

    Parameters
    ----------
    polygons
        Polygons or MultiPolygons in lon/lat degrees (a GeoSeries keeps its index).
    res
        H3 resolution.
    crs
        Equal-area CRS in which areas are measured (keyword-only).

    Returns
    -------
    DataFrame with columns ``polygon`` (the input's index label), ``cell`` (int64),
    ``share`` (0..1) and ``area_m2`` (overlap area in ``crs`` units squared).

    Raises
    ------
    ValueError
        for a geometry that is not a polygon, or is invalid (naming its index).
    """
    if isinstance(polygons, gpd.GeoSeries):
        if polygons.crs is not None and CRS.from_user_input(polygons.crs) != CRS.from_epsg(4326):
            polygons = polygons.to_crs("EPSG:4326")
        labels: list[Any] = list(polygons.index)
        geoms = np.asarray(polygons.values, dtype=object)
    else:
        geoms = np.asarray(list(polygons), dtype=object)
        labels = list(range(len(geoms)))
    to_area = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    present = np.array([g is not None and not shapely.is_empty(g) for g in geoms], dtype=bool)
    for label, geom in zip(labels, geoms, strict=True):
        if geom is None or shapely.is_empty(geom):
            continue
        if shapely.get_type_id(geom) not in (3, 6):
            raise ValueError(
                f"polygon {label!r}: expected Polygon or MultiPolygon, got {geom.geom_type}"
            )
    valid = shapely.is_valid(geoms[present]) if present.any() else np.array([], bool)
    if not valid.all():
        i = int(np.flatnonzero(present)[np.flatnonzero(~valid)[0]])
        raise ValueError(
            f"polygon {labels[i]!r}: invalid geometry ({shapely.is_valid_reason(geoms[i])})"
        )
    where = np.flatnonzero(present)
    poly, cell, area = _overlaps(geoms[where], res, to_area)
    if not len(poly):
        return pd.DataFrame(
            {"polygon": [], "cell": np.array([], np.int64), "share": [], "area_m2": []}
        )
    totals = np.bincount(poly, weights=area, minlength=len(where))
    return pd.DataFrame(
        {
            "polygon": [labels[i] for i in where[poly]],
            "cell": cell,
            "share": area / totals[poly],
            "area_m2": area,
        }
    )


def _project(geoms: npt.NDArray[Any], to_area: Transformer) -> npt.NDArray[Any]:
    return shapely.transform(
        geoms, lambda xy: np.column_stack(to_area.transform(xy[:, 0], xy[:, 1]))
    )


def _overlaps(
    geoms: npt.NDArray[Any], res: int, to_area: Transformer
) -> tuple[npt.NDArray[np.intp], CellArray, npt.NDArray[np.float64]]:
    """Every (polygon position, cell, overlap area) with area > 0, sorted by polygon then cell.

    Vectorised in blocks: the polygons whose representative point lies in one coarse cell
    (resolution ``res - 4``, a few km across) are intersected at once with every cell around
    the block's bounding box, found through an STRtree, in the equal-area CRS. One polygon at
    a time (a candidate search, a projection and an intersection each) cost 90 % of loading
    the large demo city's parcels. The candidates cover the block completely: the cells that
    H3 says overlap the box, grown by one ring (H3 works on geodesic edges, the areas on
    straight ones, so a sliver of a polygon may lie in a cell H3 did not list)."""
    projected = _project(geoms, to_area)
    pts = shapely.point_on_surface(geoms)
    block = points_to_cells(shapely.get_x(pts), shapely.get_y(pts), max(res - 4, 0))
    order = np.argsort(block, kind="stable")
    cuts = np.flatnonzero(np.diff(block[order])) + 1
    out: list[tuple[npt.NDArray[np.intp], CellArray, npt.NDArray[np.float64]]] = []
    for idx in np.split(order, cuts):
        x0, y0, x1, y1 = shapely.total_bounds(geoms[idx])
        box = shapely.box(x0, y0, x1, y1)
        shape = h3.geo_to_h3shape(shapely.geometry.mapping(box))
        found = {
            int(c, 16) for c in h3.h3shape_to_cells_experimental(shape, res, contain="overlap")
        }
        found.add(int(points_to_cells((x0 + x1) / 2, (y0 + y1) / 2, res)))
        found |= {int(n) for c in found for n in basic_int.grid_disk(int(c), 1)}
        cells = np.fromiter(sorted(found), dtype=np.int64)
        hexes = _project(np.asarray([boundary(int(c)) for c in cells], dtype=object), to_area)
        pi, ci = shapely.STRtree(hexes).query(projected[idx], predicate="intersects")
        areas = shapely.area(shapely.intersection(projected[idx][pi], hexes[ci]))
        keep = areas > 0
        out.append((idx[pi[keep]], cells[ci[keep]], areas[keep]))
    poly = np.concatenate([o[0] for o in out])
    cell = np.concatenate([o[1] for o in out])
    area = np.concatenate([o[2] for o in out])
    ordered = np.lexsort((cell, poly))
    return poly[ordered], cell[ordered], area[ordered]


# --------------------------------------------------------------------------------- rasters
class _LRU:
    """A small thread-safe LRU of computed raster-to-cell maps (they are large: one id a pixel)."""

    def __init__(self, maxsize: int = 8) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, CellArray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> CellArray | None:
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return None

    def put(self, key: str, value: CellArray) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_raster_cache = _LRU()


def raster_to_cells(
    transform: Sequence[float],
    shape: tuple[int, int],
    crs: str,
    res: int,
    *,
    cache_dir: Path | None = None,
) -> CellArray:
    """The cell of each pixel centre of a raster grid.

    Computed once per grid (transform, shape, CRS, resolution) and cached in memory, and on
    disk under ``cache_dir`` when given, because flood results are mapped to cells after every
    run on the same DEM.

    Parameters
    ----------
    transform
        Affine ``(a, b, c, d, e, f)`` as rasterio writes it: x = a*col + b*row + c,
        y = d*col + e*row + f, for the pixel's upper-left corner.
    shape
        ``(rows, cols)``.
    crs
        The raster's CRS (any form pyproj accepts).
    res
        H3 resolution.

    Returns
    -------
    ndarray of int64 of ``shape`` (read-only: it is shared through the cache).
    """
    a, b, c, d, e, f = (float(v) for v in tuple(transform)[:6])
    rows, cols = (int(shape[0]), int(shape[1]))
    if rows <= 0 or cols <= 0:
        raise ValueError(f"raster shape must be positive, got {shape}")
    crs_wkt = CRS.from_user_input(crs).to_wkt()
    key = hashlib.sha1(repr((a, b, c, d, e, f, rows, cols, crs_wkt, res)).encode()).hexdigest()
    hit = _raster_cache.get(key)
    if hit is not None:
        return hit
    disk = cache_dir / f"raster_cells_{key}.npy" if cache_dir is not None else None
    if disk is not None and disk.is_file():
        cells = np.load(disk)
    else:
        col_c = np.arange(cols, dtype=np.float64) + 0.5
        row_c = np.arange(rows, dtype=np.float64) + 0.5
        cc, rr = np.meshgrid(col_c, row_c)
        x = a * cc + b * rr + c
        y = d * cc + e * rr + f
        lon, lat = Transformer.from_crs(crs_wkt, "EPSG:4326", always_xy=True).transform(x, y)
        cells = points_to_cells(np.asarray(lon), np.asarray(lat), res).reshape(rows, cols)
        if disk is not None:
            disk.parent.mkdir(parents=True, exist_ok=True)
            tmp = disk.with_suffix(".tmp.npy")
            np.save(tmp, cells)
            tmp.replace(disk)
    cells.setflags(write=False)
    _raster_cache.put(key, cells)
    return cells


def clear_raster_cache() -> None:
    """Forget in-memory raster-to-cell maps (the disk cache stays)."""
    _raster_cache.clear()
