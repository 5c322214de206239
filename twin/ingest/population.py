"""`twin ingest population GRID.tif`: synthetic residents from a gridded population count.

Method (dasymetric disaggregation)
----------------------------------
A population grid (WorldPop, GHS-POP, a census grid) gives people per pixel. The twin needs
people per building, so each pixel's count is spread over the buildings inside it, in
proportion to a proxy for where people live. This is the dasymetric idea that the grids
themselves are built on: WorldPop spreads census counts over pixels with weights from
settlement, land cover and building layers (Stevens et al. 2015, *PLoS ONE* 10(2): e0107042;
Tatem 2017, *Sci. Data* 4: 170004); GHS-POP spreads them over the built-up surface detected in
satellite images (Freire et al. 2016, *GHS-POP methodology*, JRC; Schiavina et al. 2023,
GHS-POP R2023A). One step finer, over building footprints and floors, is "3D" or volumetric
dasymetric mapping (Lwin & Murayama 2009, *Trans. GIS* 13(4); Mennis 2003, *Prof. Geogr.*
55(1) for the general method). Per pixel, in order:

1. **residential buildings**: the pixel's count goes to the buildings of use ``residential``
   (and ``mixed``, at half their floor area) whose centroid lies in the pixel, in proportion
   to residential floor area = footprint (m²) x floors. Floors are the building's stored
   ``floors``; where unknown, :data:`DEFAULT_FLOORS` (the ingest's default residential height
   of 9 m at 3 m a storey).
2. **any building**: a pixel with people but no residential building (land use in OSM is
   often just ``building=yes``) spreads over all its buildings by floor area.
3. **onto land**: a pixel with people and no building at all gives its people to the
   nearest building to the pixel centre within ``max_land_m`` (default 500 m): the grid says
   people live there and the twin has no closer roof. Beyond that they are dropped, and the
   summary counts the pixels and people dropped (a warning, never silent).

Pixels are taken when their centre lies inside the twin's extent (the bounding box of its
buildings); the rest of the grid is not the twin's and is counted as outside.

Integerisation: every person is a row, so counts must be whole. The grid's total inside the
extent is rounded once; each pixel gets the floor or the ceiling of its value so that the
pixels add up to that total exactly (largest remainder, Hamilton's method), and each pixel's
whole count is split over its buildings the same way. So the residents of a pixel are exactly
its integerised count (within 1 of the grid value), and the city total is the grid total
rounded. Ties between equal remainders are broken by a random key drawn from ``seed``: the same
grid, buildings and seed always give the same people.

Ages come from an age-structure table (``--age-structure``: columns ``age_band``, ``share``
and optionally ``district``, an admin-area code; shares or counts, normalised per district),
else :data:`DEFAULT_AGE_SHARES`. The counts per band are integerised per district by largest
remainder too, then shuffled over that district's residents with ``seed``. Synthetic residents
are ``registered``, not living alone, on a floor drawn uniformly from their building's floors,
flagged ``synthetic`` with ``source = population:<file>[:<year>]``. A rerun replaces the
previous synthetic residents; real residents (``twin ingest people``) are never mixed with
synthetic ones: the load refuses unless ``replace_real`` drops them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import rasterio
import shapely
from pyproj import Transformer
from rasterio.errors import RasterioError

from twin.city import districts
from twin.city.cells import refresh_cell_stats
from twin.city.load import bump_layer_versions
from twin.city.meta import read_city, with_city
from twin.city.synth.people import AGE_SHARES
from twin.db.copy import copy_rows
from twin.db.engine import database_url
from twin.db.models.city import AGE_BANDS
from twin.ingest.report import IngestError, Progress, Report, quiet
from twin.ingest.write import reserve_ids
from twin.settings import Settings

#: Floors assumed where a building has none stored (the ingest's residential default: 9 m).
DEFAULT_FLOORS = 3
#: Share of a ``mixed`` building's floor area taken as residential.
MIXED_RESIDENTIAL_SHARE = 0.5
#: Default age structure (shares of AGE_BANDS), the demo city's: China's 2020 census, roughly.
#: Pass a table for any other city (UN WPP, Eurostat or the national census give one).
DEFAULT_AGE_SHARES = dict(zip(AGE_BANDS, AGE_SHARES, strict=True))
#: "Onto land": a pixel with people and no building gives them to the nearest building within
#: this distance (m) of its centre; farther ones are dropped and counted.
MAX_LAND_M = 500.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Which rule placed a pixel's people (the summary counts pixels and people per rule).
RESIDENTIAL, ANY_BUILDING, LAND, DROPPED = 0, 1, 2, 3
METHODS = ("residential", "any_building", "land", "dropped")


# ----------------------------------------------------------------------------- pure science
def largest_remainder(
    quotas: npt.ArrayLike,
    groups: npt.ArrayLike,
    totals: npt.ArrayLike,
    *,
    rng: np.random.Generator,
) -> IntArray:
    """Whole numbers, per group, that add up to the group's total and stay within 1 of the quota.

    Hamilton's largest-remainder method: every item gets the floor of its quota, and the
    group's shortfall goes one each to its items with the largest fractional parts (ties
    broken by a random key from ``rng``, so the result is deterministic for a seed).

    Parameters
    ----------
    quotas : (n,) float array
        Non-negative real shares (people); within a group they should add up to its total.
    groups : (n,) int array
        Group of each item, ``0 .. len(totals) - 1``.
    totals : (g,) int array
        Whole total of each group (people).
    rng : numpy Generator, keyword-only
        Source of the tie-breaking keys.

    Returns
    -------
    (n,) int64 array: ``floor(q) <= result <= floor(q) + 1`` and per-group sums equal to
    ``totals`` (as long as the total lies between the sum of floors and that plus the group's
    size, which holds whenever the total is the rounded sum of the quotas).
    """
    q = np.asarray(quotas, dtype=np.float64)
    g = np.asarray(groups, dtype=np.int64)
    t = np.asarray(totals, dtype=np.int64)
    if q.shape != g.shape:
        raise ValueError("quotas and groups differ in shape")
    if q.size and (q.min() < 0 or not np.isfinite(q).all()):
        raise ValueError("quotas must be finite and non-negative")
    # A quota a hair below a whole number (x / w * w) is that number, not its floor plus a
    # remainder of 0.9999...: round such values first so the floor is the intended one.
    q = np.where(np.abs(q - np.round(q)) < 1e-9, np.round(q), q)
    base = np.floor(q).astype(np.int64)
    frac = q - base
    short = t - np.bincount(g, weights=base, minlength=len(t)).astype(np.int64)
    size = np.bincount(g, minlength=len(t))
    if (short < 0).any() or (short > size).any():
        bad = int(np.flatnonzero((short < 0) | (short > size))[0])
        raise ValueError(f"group {bad}: total {t[bad]} cannot be met within 1 of the quotas")
    # Rank items within their group by remainder, largest first (random key breaks ties).
    order = np.lexsort((rng.random(q.size), -frac, g))
    first = np.zeros(len(t) + 1, dtype=np.int64)
    first[1:] = np.cumsum(size)
    rank = np.empty(q.size, dtype=np.int64)
    rank[order] = np.arange(q.size) - first[g[order]]
    return base + (rank < short[g]).astype(np.int64)


def floor_area(
    footprint_m2: npt.ArrayLike,
    floors: npt.ArrayLike,
    use: npt.ArrayLike,
    *,
    default_floors: int = DEFAULT_FLOORS,
    mixed_share: float = MIXED_RESIDENTIAL_SHARE,
) -> tuple[FloatArray, FloatArray]:
    """Residential and total floor area (m²) of buildings: footprint x floors.

    Parameters
    ----------
    footprint_m2 : (n,) array
        Footprint areas (m²); missing (NaN) counts as 0.
    floors : (n,) array
        Storeys; missing (NaN) or non-positive takes ``default_floors``.
    use : (n,) array of str
        Building use (``twin.db.models.city.BUILDING_USES``).
    default_floors, mixed_share : keyword-only
        Floors where unknown; share of a ``mixed`` building that is homes.

    Returns
    -------
    (residential_m2, total_m2), two (n,) float arrays.
    """
    fp = np.nan_to_num(np.asarray(footprint_m2, dtype=np.float64), nan=0.0)
    fl = np.asarray(floors, dtype=np.float64)
    fl = np.where(np.isfinite(fl) & (fl > 0), fl, float(default_floors))
    total = np.maximum(fp, 0.0) * fl
    u = np.asarray(use, dtype=object)
    share = np.where(u == "residential", 1.0, np.where(u == "mixed", mixed_share, 0.0))
    return total * share, total


def disaggregate(
    pixel_people: npt.ArrayLike,
    building_pixel: npt.ArrayLike,
    residential_m2: npt.ArrayLike,
    total_m2: npt.ArrayLike,
    land_building: npt.ArrayLike,
    *,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray, IntArray]:
    """Spread pixel counts over buildings (dasymetric) and integerise them exactly per pixel.

    Parameters
    ----------
    pixel_people : (p,) float array
        People per pixel (the grid's values for the pixels in the extent; >= 0).
    building_pixel : (b,) int array
        Pixel (index into ``pixel_people``) holding each building's centroid; -1 for none.
    residential_m2, total_m2 : (b,) float arrays
        Residential and total floor area (m²), from :func:`floor_area`.
    land_building : (p,) int array
        For pixels without buildings: the building that takes their people (nearest to the
        pixel centre within the search distance), -1 to drop them.
    rng : numpy Generator, keyword-only
        Tie-breaking of the integerisation.

    Returns
    -------
    people : (b,) int64 array
        Residents per building.
    pixel_whole : (p,) int64 array
        Each pixel's whole count (floor or ceiling of its value; they add up to the rounded
        total). The residents placed from pixel i add up to exactly ``pixel_whole[i]`` unless
        the pixel was dropped.
    method : (p,) int64 array
        The rule that placed each pixel's people: RESIDENTIAL, ANY_BUILDING, LAND or DROPPED.
    """
    pp = np.asarray(pixel_people, dtype=np.float64)
    bp = np.asarray(building_pixel, dtype=np.int64)
    res = np.asarray(residential_m2, dtype=np.float64)
    tot = np.asarray(total_m2, dtype=np.float64)
    land = np.asarray(land_building, dtype=np.int64)
    n_pix, n_b = pp.size, bp.size
    # 1. Whole people per pixel, adding up to the rounded grid total.
    whole = largest_remainder(
        pp, np.zeros(n_pix, dtype=np.int64), [round(float(pp.sum()))], rng=rng
    )
    inside = bp >= 0
    res_per_pixel = np.bincount(bp[inside], weights=res[inside], minlength=n_pix)
    tot_per_pixel = np.bincount(bp[inside], weights=tot[inside], minlength=n_pix)
    has_b = np.bincount(bp[inside], minlength=n_pix) > 0
    method = np.where(
        res_per_pixel > 0,
        RESIDENTIAL,
        np.where(has_b, ANY_BUILDING, np.where(land >= 0, LAND, DROPPED)),
    ).astype(np.int64)
    # 2. Weights of each building within its pixel: residential floor area where the pixel has
    # any, else all floor area (a building with no floor area recorded still counts as one
    # unit, so a pixel of footprint-less buildings does not lose its people).
    m = np.where(inside, method[np.maximum(bp, 0)], DROPPED)
    w = np.where(m == RESIDENTIAL, res, np.where(m == ANY_BUILDING, np.maximum(tot, 0.0), 0.0))
    any_pixel = m == ANY_BUILDING
    zero_area = any_pixel & (tot_per_pixel[np.maximum(bp, 0)] <= 0)
    w = np.where(zero_area, 1.0, w)
    # Items: buildings carrying weight, plus one item per land pixel (its nearest building).
    take = w > 0
    land_pix = np.flatnonzero(method == LAND)
    item_pixel = np.concatenate([bp[take], land_pix])
    item_building = np.concatenate([np.flatnonzero(take), land[land_pix]])
    item_w = np.concatenate([w[take], np.ones(land_pix.size)])
    w_sum = np.bincount(item_pixel, weights=item_w, minlength=n_pix)
    quota = whole[item_pixel] * item_w / w_sum[item_pixel]
    # Groups are the pixels that place people; dropped pixels have no items.
    counts = largest_remainder(quota, item_pixel, np.where(method == DROPPED, 0, whole), rng=rng)
    people = np.bincount(item_building, weights=counts, minlength=n_b).astype(np.int64)
    return people, whole, method


def age_counts(n: int, shares: dict[str, float], *, rng: np.random.Generator) -> list[str]:
    """``n`` age bands with the table's shares (largest remainder), in a random order.

    Parameters
    ----------
    n : int
        Residents (people).
    shares : dict
        Age band -> share (any non-negative weights; normalised here).
    """
    bands = list(shares)
    w = np.asarray([shares[b] for b in bands], dtype=np.float64)
    counts = largest_remainder(w / w.sum() * n, np.zeros(len(w), dtype=np.int64), [n], rng=rng)
    out = np.repeat(np.asarray(bands, dtype=object), counts)
    return list(out[rng.permutation(n)])


# ----------------------------------------------------------------------------- files
def read_age_structure(path: Path) -> dict[str, dict[str, float]]:
    """District code ('' for the city) -> age band -> share, from a CSV; errors name the row."""
    if not path.is_file():
        raise IngestError(path, "file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many kinds; all mean unreadable
        raise IngestError(path, f"cannot read the table ({type(exc).__name__}: {exc})") from exc
    df.columns = [c.strip().lower() for c in df.columns]
    for need in ("age_band", "share"):
        if need not in df:
            raise IngestError(path, "missing column", field=need)
    rows = np.arange(1, len(df) + 1)
    band = df.age_band.str.strip()
    bad = ~band.isin(AGE_BANDS)
    if bad.any():
        raise IngestError(
            path,
            f"must be one of {', '.join(AGE_BANDS)}",
            rows=rows[bad].tolist(),
            field="age_band",
        )
    share = pd.to_numeric(df.share, errors="coerce")
    bad = ~(share >= 0) | ~np.isfinite(share)
    if bad.any():
        raise IngestError(
            path, "must be a non-negative number", rows=rows[bad].tolist(), field="share"
        )
    district = df["district"].str.strip() if "district" in df else pd.Series("", index=df.index)
    out: dict[str, dict[str, float]] = {}
    for d, b, s in zip(district, band, share, strict=True):
        out.setdefault(d, {})
        out[d][b] = out[d].get(b, 0.0) + float(s)
    for d, shares in out.items():
        if sum(shares.values()) <= 0:
            raise IngestError(path, f"district {d or '(city)'!r}: the shares add up to 0")
    return out


def read_grid(path: Path, *, crs: str | None = None) -> tuple[FloatArray, Any, str]:
    """The grid's people per pixel (nodata -> 0), its affine transform and CRS (WKT)."""
    if not path.is_file():
        raise IngestError(path, "file not found")
    if path.stat().st_size == 0:
        raise IngestError(path, "file is empty")
    try:
        with rasterio.open(path) as src:
            band = src.read(1, masked=True)
            transform = src.transform
            src_crs = src.crs.to_wkt() if src.crs else None
    except RasterioError as exc:
        raise IngestError(path, f"cannot read the raster ({exc})") from exc
    if src_crs is None:
        if crs is None:
            raise IngestError(path, "the raster declares no CRS; name it with --crs")
        src_crs = crs
    values = np.ma.filled(band.astype(np.float64), 0.0)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise IngestError(
            path,
            f"{int(bad.sum())} pixels are negative or not a number (first at row {r}, column "
            f"{c}: {values[r, c]}); population counts must be >= 0 (or nodata)",
        )
    return values, transform, src_crs


# ----------------------------------------------------------------------------- the ingest
def ingest_population(
    path: Path,
    settings: Settings,
    *,
    year: int | None = None,
    age_structure: Path | None = None,
    seed: int = 0,
    crs: str | None = None,
    max_land_m: float = MAX_LAND_M,
    replace_real: bool = False,
    progress: Progress = quiet,
) -> Report:
    """Synthetic residents from a population GeoTIFF, in one transaction (see the module)."""
    t0 = time.perf_counter()
    path = Path(path)
    report = Report(str(path), "population")
    progress(f"reading {path.name}")
    values, transform, grid_crs = read_grid(path, crs=crs)
    ages = read_age_structure(Path(age_structure)) if age_structure else {"": DEFAULT_AGE_SHARES}
    source = f"population:{path.name}" + (f":{year}" if year is not None else "")
    rng = np.random.default_rng([seed, 26])
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        settings = with_city(settings, read_city(conn))
        b = load_buildings(conn)
        if b.empty:
            raise IngestError(
                path, "the twin has no buildings to put people in: run `twin ingest osm "
                "FILE.osm.pbf` (or `twin ingest buildings`) first",
            )  # fmt: skip
        real = conn.execute("SELECT count(*) FROM twin.person WHERE NOT synthetic").fetchone()
        n_real = int(real[0]) if real else 0
        if n_real and not replace_real:
            raise IngestError(
                path, f"the twin already holds {n_real:,} real residents (twin ingest people); "
                "synthetic residents would count them twice. Use --replace-real to drop them",
            )  # fmt: skip
        progress("spreading people over buildings")
        people, pix_info = _spread(values, transform, grid_crs, b, settings, rng, max_land_m)
        report.read = int((values > 0).sum())
        report.details.update(pix_info)
        progress(f"writing {int(people.sum()):,} synthetic residents")
        out = _people_rows(conn, b, people, ages, rng, source, path)
        old = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT c FROM twin.person, LATERAL (VALUES (home_cell), (work_cell))"
                " v(c) WHERE c IS NOT NULL"
            )
        ]
        conn.execute("DELETE FROM twin.person")
        out.insert(0, "id", reserve_ids(conn, "person", len(out)))
        districts.ensure(conn)  # a partition for each district before its residents go in
        out["district_id"] = districts.assign(conn, out.home_building_id, out.home_cell)
        copy_rows(conn, "twin.person", list(out.columns), out)
        conn.execute(
            "INSERT INTO twin.audit_log (action, resource, detail) VALUES ('ingest', 'person', %s)",
            (json.dumps({"file": path.name, "rows": len(out), "synthetic": True, "seed": seed,
                         "year": year, "replaced_real": n_real}),),
        )  # fmt: skip
        progress("refreshing the affected cells")
        report.details["cells_refreshed"] = refresh_cell_stats(
            conn, settings.h3_resolutions, cells=old + out.home_cell.dropna().tolist(),
            k=settings.suppression_k,
        )  # fmt: skip
        bump_layer_versions(conn, ("cell_stats",))
    report.loaded = len(out)
    report.details.update(
        source=source,
        seed=seed,
        replaced_real=n_real,
        age_structure=str(age_structure) if age_structure else "default",
    )
    if report.details["dropped_people"]:
        report.details["warning"] = (
            f"{report.details['dropped_people']:,} people in {report.details['pixels_dropped']}"
            f" pixels had no building within {max_land_m:g} m and were not placed"
        )
    report.seconds = time.perf_counter() - t0
    return report


def load_buildings(conn: psycopg.Connection) -> pd.DataFrame:
    """Every building: id, use, floors, footprint_m2, address_id, cell, centroid lon/lat."""
    rows = conn.execute(
        "SELECT id, use, floors, footprint_m2, address_id, cell,"
        " ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM twin.building ORDER BY id"
    ).fetchall()
    cols = list(zip(*rows, strict=True)) if rows else [()] * 8

    def nullable(values: tuple[Any, ...]) -> Any:
        # H3 ids exceed 2**53: never let them pass through floats (pandas would, for None).
        return pd.array([v if v is not None else pd.NA for v in values], dtype="Int64")

    return pd.DataFrame(
        {
            "id": np.asarray(cols[0], dtype=np.int64),
            "use": np.asarray(cols[1], dtype=object),
            "floors": np.asarray([np.nan if v is None else v for v in cols[2]], dtype=float),
            "footprint_m2": np.asarray([np.nan if v is None else v for v in cols[3]], dtype=float),
            "address_id": nullable(cols[4]),
            "cell": nullable(cols[5]),
            "lon": np.asarray(cols[6], dtype=float),
            "lat": np.asarray(cols[7], dtype=float),
        }
    )


def pixel_centres(transform: Any, shape: tuple[int, int]) -> tuple[FloatArray, FloatArray]:
    """Pixel-centre coordinates (the grid's CRS) of a raster, each of ``shape``."""
    rows, cols = np.meshgrid(np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5, indexing="ij")
    x = transform.a * cols + transform.b * rows + transform.c
    y = transform.d * cols + transform.e * rows + transform.f
    return x, y


def _spread(
    values: FloatArray,
    transform: Any,
    grid_crs: str,
    b: pd.DataFrame,
    settings: Settings,
    rng: np.random.Generator,
    max_land_m: float,
) -> tuple[IntArray, dict[str, Any]]:
    """Residents per building, and the summary of pixels per rule."""
    # Pixels in the twin's extent: centre inside the buildings' bounding box (lon/lat).
    x, y = pixel_centres(transform, values.shape)
    lon, lat = Transformer.from_crs(grid_crs, "EPSG:4326", always_xy=True).transform(x, y)
    lon, lat = np.asarray(lon), np.asarray(lat)
    lo_lon, hi_lon = b.lon.min(), b.lon.max()
    lo_lat, hi_lat = b.lat.min(), b.lat.max()
    in_ext = (lon >= lo_lon) & (lon <= hi_lon) & (lat >= lo_lat) & (lat <= hi_lat)
    keep = in_ext & (values > 0)
    flat = np.full(values.shape, -1, dtype=np.int64)
    flat[keep] = np.arange(int(keep.sum()))
    pp = values[keep]
    # Building -> pixel by centroid: footprints are small beside 100 m pixels, and a whole
    # building in one pixel keeps its people together.
    bx, by = Transformer.from_crs("EPSG:4326", grid_crs, always_xy=True).transform(
        b.lon.to_numpy(), b.lat.to_numpy()
    )
    inv = ~transform
    col, row = inv * (np.asarray(bx), np.asarray(by))
    col, row = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    ok = (row >= 0) & (row < values.shape[0]) & (col >= 0) & (col < values.shape[1])
    bpix = np.full(len(b), -1, dtype=np.int64)
    bpix[ok] = flat[row[ok], col[ok]]
    res_m2, tot_m2 = floor_area(
        b.footprint_m2.to_numpy(dtype=float), b.floors.to_numpy(dtype=float), b.use.to_numpy()
    )
    # Onto land: the nearest building (metric distance) to each pixel without one.
    has_b = np.bincount(bpix[bpix >= 0], minlength=pp.size) > 0
    land = np.full(pp.size, -1, dtype=np.int64)
    empty = np.flatnonzero(~has_b)
    if empty.size:
        to_m = Transformer.from_crs("EPSG:4326", settings.metric_crs, always_xy=True)
        mx, my = to_m.transform(b.lon.to_numpy(), b.lat.to_numpy())
        tree = shapely.STRtree(shapely.points(mx, my))
        px, py = to_m.transform(lon[keep][empty], lat[keep][empty])
        idx = tree.query_nearest(shapely.points(px, py), max_distance=max_land_m, all_matches=False)
        land[empty[idx[0]]] = idx[1]
    people, whole, method = disaggregate(pp, bpix, res_m2, tot_m2, land, rng=rng)
    info: dict[str, Any] = {
        "grid_total": float(values.sum()),
        "grid_total_in_extent": float(pp.sum()),
        "outside_extent_people": float(values[~in_ext].sum()),
        "pixels_in_extent": int(pp.size),
        "residents_target": int(whole.sum()),
    }
    for k, name in enumerate(METHODS):
        info[f"pixels_{name}"] = int((method == k).sum())
        info[f"people_{name}" if k != DROPPED else "dropped_people"] = int(whole[method == k].sum())
    return people, info


def _people_rows(
    conn: psycopg.Connection,
    b: pd.DataFrame,
    people: IntArray,
    ages: dict[str, dict[str, float]],
    rng: np.random.Generator,
    source: str,
    path: Path,
) -> pd.DataFrame:
    """One row per resident: home, floor, age band (by district), flags."""
    idx = np.repeat(np.arange(len(b)), people)
    district = np.full(len(b), "", dtype=object)
    named = sorted(set(ages) - {""})
    if named:
        found: dict[int, str] = dict(
            conn.execute(
                "SELECT b.id, a.code FROM twin.building b JOIN twin.admin_area a"
                " ON a.level = 'district' AND a.code = ANY(%s)"
                " AND ST_Intersects(a.geom, ST_PointOnSurface(b.geom))",
                (named,),
            ).fetchall()
        )
        unknown = set(named) - set(found.values())
        if unknown:
            raise IngestError(
                path, f"no district with code {', '.join(sorted(unknown))} holds any building",
                field="district",
            )  # fmt: skip
        district = b.id.map(found).fillna("").to_numpy(dtype=object)
    home_d = district[idx]
    band = np.empty(len(idx), dtype=object)
    for d in np.unique(home_d) if len(idx) else []:
        sel = np.flatnonzero(home_d == d)
        if d not in ages:
            raise IngestError(
                path, f"{len(sel):,} residents live outside the table's districts; add rows "
                "without a district (the city's structure) for them", field="district",
            )  # fmt: skip
        band[sel] = age_counts(len(sel), ages[d], rng=rng)
    floors = b.floors.to_numpy(dtype=float)
    floors = np.where(np.isfinite(floors) & (floors > 0), floors, DEFAULT_FLOORS)[idx]
    return pd.DataFrame(
        {
            "home_building_id": b.id.to_numpy()[idx],
            "home_address_id": b.address_id.array[idx],
            "home_floor": (1 + np.floor(rng.random(len(idx)) * floors)).astype(np.int64),
            "age_band": band,
            "resident_type": "registered",
            "lives_alone": False,
            "home_cell": b.cell.array[idx],
            "synthetic": True,
            "source": source,
        }
    )
