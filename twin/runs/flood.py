"""A storm on the twin: ``twin simulate flood`` and ``POST /api/simulations/flood``.

Inputs come from the model: the registered DEM and drainage-capacity rasters, buildings raised
by their height, Manning's n from land use (roads paved), open edges so water can leave the
city. Results go back in one transaction with the run marked succeeded: per-cell statistics at
every kept H3 resolution, road links reached by water with their passability, buildings with
water at their walls and the people living in them, and waterlogging events at the worst spots.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
import rasterio
import shapely
from pyproj import Transformer
from rasterio.warp import Resampling, reproject

from twin import durations
from twin.city.load import bump_layer_versions
from twin.db.engine import database_url
from twin.runs import floodcells, store
from twin.settings import Settings
from twin.sim.demholes import NodataError, treat_nodata
from twin.sim.flood import Boundaries, FloodResult, simulate
from twin.sim.gridfiles import burn, write_geotiffs
from twin.sim.rain import Series, chicago_storm
from twin.sim.raincsv import read_rain_csv

MM_H = 1 / 3_600_000

#: Depth bands on roads (m). GB 51222-2017 counts water deeper than 15 cm on a carriageway as
#: waterlogging; at 30 cm ordinary cars stall (door sills, exhaust), so the road is closed.
ROAD_SLOWED_M = 0.15
ROAD_CLOSED_M = 0.30
#: Water at a building's walls at or above this depth (m) makes it "affected".
BUILDING_AFFECTED_M = 0.15
#: Cells whose worst depth reaches this (m) get a simulated waterlogging event, worst first.
EVENT_DEPTH_M = 0.30
MAX_EVENTS = 25

#: Manning's n (s/m^(1/3)) per GB 50137 major land-use class: coarse values from standard tables
#: (Chow 1959) as used in urban flood models: paved transport land smoothest, green roughest.
MANNING_BY_LAND_USE = {
    "R": 0.050, "A": 0.040, "B": 0.035, "M": 0.035, "W": 0.035, "S": 0.016,
    "U": 0.035, "G": 0.045, "E": 0.035, "H": 0.035,
}  # fmt: skip
MANNING_DEFAULT = 0.035
MANNING_ROAD = 0.016
DEFAULT_BUILDING_HEIGHT_M = 10.0


class FloodRunError(ValueError):
    """A flood run that cannot start: missing DEM, bad parameters."""


@dataclass(frozen=True)
class FloodParams:
    storm: str = "chicago"
    return_period_years: float = 50.0
    duration_s: float = 7200.0
    after_s: float = 1800.0
    peak_ratio: float = 0.4
    rain_series: Series | None = None
    dtype: str = "float64"

    def __post_init__(self) -> None:
        if self.rain_series is None and self.storm != "chicago":
            raise FloodRunError(f"storm: unknown design storm {self.storm!r} (chicago)")
        if self.return_period_years <= 0:
            raise FloodRunError("return_period_years must be positive")
        if self.duration_s <= 0 or self.after_s < 0:
            raise FloodRunError("duration must be positive and the time after it not negative")
        # A rain series sets the run's length itself: its last time (s) and the time after.
        if self.total_s > 3 * 86400:
            raise FloodRunError("runs are limited to three days of simulated time")
        if self.total_s <= 0:
            raise FloodRunError("the rain series and the time after it end at or before time 0")
        if self.dtype not in ("float64", "float32"):
            raise FloodRunError("dtype must be float64 or float32")
        if not 0 < self.peak_ratio < 1:
            raise FloodRunError("peak_ratio must lie between 0 and 1")

    def rain(self) -> Series:
        if self.rain_series is not None:
            return self.rain_series
        return chicago_storm(
            return_period_years=self.return_period_years,
            duration_min=self.duration_s / 60,
            peak_ratio=self.peak_ratio,
        )

    @property
    def total_s(self) -> float:
        if self.rain_series is not None:
            return float(self.rain_series.times_s[-1]) + self.after_s
        return self.duration_s + self.after_s

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "rain_series"}
        if self.rain_series is not None:
            out["storm"] = "series"
            out["rain_series"] = [
                [float(t), float(v) / MM_H]
                for t, v in zip(self.rain_series.times_s, self.rain_series.values, strict=True)
            ]
        return out


def parse_duration(text: str) -> float:
    """'2h', '90min', '45m', '3600s' or '3600' -> seconds."""
    try:
        return durations.parse_duration(text, bare_seconds=True).total_seconds()
    except ValueError:
        raise FloodRunError(f"duration {text!r}: use e.g. 2h, 90min or 3600s") from None


def read_rain_series(path: Path) -> Series:
    """A rain table (time in s, min, h or date-times; mm/h, mm/min or mm per step) in m/s."""
    try:
        return read_rain_csv(path)
    except ValueError as exc:
        raise FloodRunError(str(exc)) from exc


@dataclass
class TwinGrid:
    """The model's inputs on the DEM's grid."""

    bed: npt.NDArray[np.float64]
    ground: npt.NDArray[np.float64]
    transform: tuple[float, ...]
    crs: str
    dx: float
    manning: npt.NDArray[np.float64]
    drainage_m_s: npt.NDArray[np.float64] | float
    building_id: npt.NDArray[np.int64]  # 0: no building
    building_points: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.float64]]
    land: npt.NDArray[np.bool_]  # parcels, roads, buildings: where results count
    active: npt.NDArray[np.bool_] | None = None  # False: DEM nodata, closed (walls)
    nodata: dict[str, Any] | None = None  # how many DEM cells were nodata, and how treated


def _raster(conn: psycopg.Connection, kind: str) -> tuple[Any, ...] | None:
    return conn.execute(
        "SELECT path, crs, transform, width, height FROM twin.raster_asset "
        "WHERE kind = %s ORDER BY id DESC LIMIT 1",
        (kind,),
    ).fetchone()


def _geoms(conn: psycopg.Connection, query: str, to_grid: Transformer) -> list[tuple[Any, ...]]:
    """``(geometry in the grid's CRS, *other columns)`` for each row of ``query`` (WKB first)."""
    rows = conn.execute(query).fetchall()
    if not rows:
        return []
    geoms = shapely.transform(
        shapely.from_wkb([bytes(r[0]) for r in rows]),
        lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1])),
    )
    return [(g, *r[1:]) for g, r in zip(geoms, rows, strict=True)]


def load_grid(conn: psycopg.Connection) -> TwinGrid:
    """DEM, buildings, roughness and drainage of the twin on the DEM's grid."""
    dem = _raster(conn, "dem")
    if dem is None:
        raise FloodRunError("the twin has no DEM: run `twin demo` or `twin ingest dem FILE`")
    path, crs, transform, width, height = dem
    if not Path(path).is_file():
        raise FloodRunError(f"the DEM file {path} is missing: rebuild with `twin demo`")
    with rasterio.open(path) as src:
        ground = src.read(1, masked=True).astype(np.float64)
    # Nodata cells (a survey's ring, cut-out buildings) are walls: the ``closed`` rule of
    # twin.sim.demholes, as in scenarios by default.
    try:
        treated = treat_nodata(np.asarray(ground.filled(np.nan)), np.ma.getmaskarray(ground))
    except NodataError as exc:
        raise FloodRunError(f"the DEM {path} has {exc}") from exc
    ground = treated.bed
    shape = (int(height), int(width))
    dx = float(transform[0])
    to_grid = Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    parcels = _geoms(conn, "SELECT ST_AsBinary(geom), land_use FROM twin.parcel", to_grid)
    manning = np.full(shape, MANNING_DEFAULT)
    land = np.zeros(shape, dtype=bool)
    if parcels:
        burned = burn(
            [(g, MANNING_BY_LAND_USE.get((lu or "")[:1], MANNING_DEFAULT)) for g, lu in parcels],
            shape, transform,
        )  # fmt: skip
        manning = np.where(burned > 0, burned, manning)
        land |= burned > 0
    roads = _geoms(
        conn, "SELECT ST_AsBinary(geom), lanes FROM twin.road_link WHERE NOT bridge", to_grid
    )
    if roads:
        # A carriageway is about 3.5 m per lane (both directions are separate links).
        # One vectorised buffer of every link (a list of single buffers took minutes at the
        # large size).
        widths = np.maximum([3.5 * (lanes or 1) for _, lanes in roads], dx / 2)
        shapes = shapely.buffer(np.asarray([g for g, _ in roads], dtype=object), widths)
        polys = [(g, 1.0) for g in shapes]
        paved = burn(polys, shape, transform) > 0
        manning[paved] = MANNING_ROAD
        land |= paved
    buildings = _geoms(
        conn,
        "SELECT ST_AsBinary(geom), id, coalesce(height_m, floors * 3.0) FROM twin.building",
        to_grid,
    )
    bed = ground.copy()
    building_id = np.zeros(shape, dtype=np.int64)
    # Buildings smaller than a pixel burn no pixel: their point on the surface stands in.
    points: Any = shapely.point_on_surface([g for g, _, _ in buildings]) if buildings else []
    building_points = (
        np.array([i for _, i, _ in buildings], dtype=np.int64),
        shapely.get_x(points) if buildings else np.zeros(0),
        shapely.get_y(points) if buildings else np.zeros(0),
    )
    if buildings:
        # The footprints are burnt once, as ids; each pixel's height is then its building's
        # (the same pixels and the same "later wins" as burning the heights, at half the cost).
        building_id = burn([(g, float(i)) for g, i, _ in buildings], shape, transform).astype(
            np.int64
        )
        ids = building_points[0]
        heights = np.array(
            [float(h) if h and h > 0 else DEFAULT_BUILDING_HEIGHT_M for _, _, h in buildings]
        )
        order = np.argsort(ids, kind="stable")
        hit = building_id > 0
        bed[hit] += heights[order[np.searchsorted(ids[order], building_id[hit])]]
        land |= hit
    if not land.any():
        land[:] = True  # no parcels, roads or buildings: every pixel counts
    drainage: npt.NDArray[np.float64] | float = 0.0
    drain = _raster(conn, "drainage_capacity")
    if drain is not None:
        if not Path(drain[0]).is_file():
            raise FloodRunError(f"the drainage capacity file {drain[0]} is missing")
        # Ingested on its own grid: resampled onto the DEM's (areas it does not cover drain 0).
        on_dem = np.zeros(shape, dtype=np.float64)
        with rasterio.open(drain[0]) as src:
            reproject(
                rasterio.band(src, 1), on_dem, dst_transform=rasterio.Affine(*transform[:6]),
                dst_crs=crs, dst_nodata=0.0, resampling=Resampling.bilinear,
            )  # fmt: skip
        drainage = np.nan_to_num(on_dem) * MM_H
    return TwinGrid(
        bed=bed, ground=ground, transform=tuple(float(v) for v in transform), crs=crs, dx=dx,
        manning=manning, drainage_m_s=drainage, building_id=building_id,
        building_points=building_points, land=land & treated.active, active=treated.active,
        nodata=treated.summary("closed"),
    )  # fmt: skip


def run_flood(
    settings: Settings,
    params: FloodParams,
    *,
    run_id: int | None = None,
    progress: Callable[[float], None] | None = None,
    event_areas: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Run a storm on the twin and store it; returns the run's summary (with ``run_id``).

    With ``run_id`` (a queued run made by the API) that run is used; otherwise one is created.
    ``event_areas``: raise the run's simulated events only in these admin areas (the scope of
    the user who started it); the results themselves are the whole city's. A failure marks
    the run failed with the error and re-raises.
    """
    url = database_url(settings)
    return store.record_run(
        url, "flood", params.as_json(),
        lambda rid: _run(settings, url, rid, params, progress, event_areas), run_id=run_id,
    )  # fmt: skip


def _run(
    settings: Settings,
    url: str,
    run_id: int,
    params: FloodParams,
    progress: Callable[[float], None] | None,
    event_areas: frozenset[int] | None = None,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        grid = load_grid(conn)
    timings["load_s"] = round(time.perf_counter() - t0, 3)
    total = params.total_s
    rain = params.rain()
    started_at = datetime.now(UTC)
    with store.progress_recorder(url, run_id) as record:

        def report(t: float, total: float) -> None:
            record(0.95 * t / total)  # the last 5% is storing the results
            if progress is not None:
                progress(t / total)

        result = _simulate(grid, rain, total, params.dtype, report, settings.flood_threads)
    timings["simulate_s"] = round(result.wall_s, 3)
    t1 = time.perf_counter()
    out_dir = settings.data_dir / "runs" / str(run_id)
    write_geotiffs(
        out_dir,
        {"max_depth.tif": result.max_depth, "time_of_max.tif": result.time_of_max_s},
        grid.crs,
        grid.transform,
    )
    with psycopg.connect(url) as conn, conn.transaction():
        counts = floodcells.store_results(
            conn, settings, run_id, grid, result, started_at=started_at,
            link_states=(ROAD_SLOWED_M, ROAD_CLOSED_M), building_m=BUILDING_AFFECTED_M,
            event_m=EVENT_DEPTH_M, max_events=MAX_EVENTS, event_areas=event_areas,
        )  # fmt: skip
        timings["store_s"] = round(time.perf_counter() - t1, 3)
        summary = _summary(run_id, params, rain, grid, result, counts, out_dir)
        store.finish_run(conn, run_id, summary, timings)
        bump_layer_versions(conn, ("flood", "event", "cell_stats"))
    return summary


def _simulate(
    grid: TwinGrid,
    rain: Series,
    total: float,
    dtype: str,
    report: Callable[[float, float], None],
    threads: int = 1,
) -> FloodResult:
    return simulate(
        grid.bed,
        dx=grid.dx,
        duration_s=total,
        rain=rain,
        manning=grid.manning,
        drainage_m_s=grid.drainage_m_s,
        active=grid.active,
        boundaries=Boundaries.all("open"),
        output_interval_s=max(total / 100, 1.0),
        threshold_m=ROAD_SLOWED_M,
        dtype=np.float32 if dtype == "float32" else np.float64,
        progress=report,
        threads=threads,
    )


def _summary(
    run_id: int,
    params: FloodParams,
    rain: Series,
    grid: TwinGrid,
    result: FloodResult,
    counts: dict[str, Any],
    out_dir: Path,
) -> dict[str, Any]:
    land_depth = np.where(grid.land, np.nan_to_num(result.max_depth), 0.0)
    px = grid.dx * grid.dx
    # A storm that wets nothing on a non-trivial grid is suspect (a DEM in feet, rain in m/s,
    # drainage above the rain): say so in the summary rather than hand back a quiet success.
    warnings = []
    if float(land_depth.max()) <= 0:
        warnings.append("no land cell got wet: check the DEM's units, the rain and the drainage")
    return {
        "run_id": run_id,
        "warnings": warnings,
        "params": params.as_json(),
        "rain_mm": round(rain.integral(0, params.total_s) * 1000, 6),
        "simulated_s": params.total_s,
        "grid": {
            "rows": grid.bed.shape[0],
            "cols": grid.bed.shape[1],
            "cell_m": grid.dx,
            "crs": grid.crs,
        },
        "nodata": grid.nodata,
        "steps": result.steps,
        "wall_s": round(result.wall_s, 3),
        "cell_steps_per_s": round(result.cell_steps_per_s),
        "volumes_m3": {k: round(v, 3) for k, v in result.volumes_m3.items()},
        "mass_error_rel": result.mass_error_rel,
        "max_depth_m": round(float(land_depth.max()), 4),
        "flooded_area_m2": float((land_depth >= ROAD_SLOWED_M).sum()) * px,
        "thresholds_m": {
            "slowed": ROAD_SLOWED_M,
            "closed": ROAD_CLOSED_M,
            "building": BUILDING_AFFECTED_M,
            "event": EVENT_DEPTH_M,
        },
        **counts,
        "rasters": {
            "max_depth": str(out_dir / "max_depth.tif"),
            "time_of_max": str(out_dir / "time_of_max.tif"),
        },
    }
