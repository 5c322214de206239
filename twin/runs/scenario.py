"""Flood scenarios on raw files: ``twin flood run SCENARIO.yaml --out DIR``.

A scenario names a DEM and what falls on it, flows into it, stands on it and drains from it
(the format is documented in the README). Paths are relative to the scenario file. Every
problem is reported as :class:`ScenarioError` naming the field, and the file where there is one,
before anything runs.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyogrio
import rasterio
import rasterio.features
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pyproj import CRS
from pyproj.exceptions import CRSError

from twin.ingest.read import read_vector
from twin.ingest.report import IngestError, Report
from twin.sim.demholes import NodataError, NodataRule, treat_nodata
from twin.sim.flood import Boundaries, FloodResult, Inflow, cells_within, pixel_index, simulate
from twin.sim.gridfiles import burn, write_geotiffs
from twin.sim.rain import Interp, Series, StormFormula, chicago_storm
from twin.sim.raincsv import read_rain_csv
from twin.sim.roughness import manning_by_area

MM_H = 1 / 3_600_000  # m/s per mm/h


class ScenarioError(ValueError):
    """A scenario that cannot run: names the field (and file) at fault."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChicagoSpec(_Model):
    return_period_years: float = Field(gt=0)
    duration_min: float = Field(gt=0)
    peak_ratio: float = Field(0.4, gt=0, lt=1)
    step_min: float = Field(1.0, gt=0)
    a_mm_min: float = Field(StormFormula.a_mm_min, gt=0)
    c: float = StormFormula.c
    b_min: float = Field(StormFormula.b_min, ge=0)
    n: float = Field(StormFormula.n, gt=0)

    def series(self) -> Series:
        formula = StormFormula(self.a_mm_min, self.c, self.b_min, self.n)
        return chicago_storm(
            return_period_years=self.return_period_years,
            duration_min=self.duration_min,
            peak_ratio=self.peak_ratio,
            step_min=self.step_min,
            formula=formula,
        )


class RainSpec(_Model):
    """Exactly one of: a constant intensity, a series (CSV file or inline pairs), a storm."""

    constant_mm_h: float | None = Field(None, ge=0)
    series: str | list[tuple[float, float]] | None = None
    chicago: ChicagoSpec | None = None

    @model_validator(mode="after")
    def _one(self) -> RainSpec:
        given = [k for k in ("constant_mm_h", "series", "chicago") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of constant_mm_h, series, chicago")
        return self


class InflowSpec(_Model):
    id: str
    x: float
    y: float
    radius_m: float = Field(0.0, ge=0)
    discharge_m3s: float | None = Field(None, ge=0)
    hydrograph: str | None = None

    @model_validator(mode="after")
    def _one(self) -> InflowSpec:
        if (self.discharge_m3s is None) == (self.hydrograph is None):
            raise ValueError("give exactly one of discharge_m3s, hydrograph")
        return self


class BuildingsSpec(_Model):
    path: str
    mode: Literal["raise", "block"] = "raise"
    height_m: float = Field(10.0, gt=0)
    height_field: str | None = None
    crs: str | None = None


class PolygonN(_Model):
    path: str
    n: float = Field(gt=0)
    crs: str | None = None


class ManningSpec(_Model):
    default: float = Field(0.03, gt=0)
    raster: str | None = None
    polygons: list[PolygonN] = []
    # centre: a polygon sets the n of the cells whose centres it holds; area: a cell's n is the
    # area mean of n² over what covers it (twin.sim.roughness).
    coverage: Literal["centre", "area"] = "centre"


class BoundariesSpec(_Model):
    north: Literal["open", "closed"] = "closed"
    south: Literal["open", "closed"] = "closed"
    east: Literal["open", "closed"] = "closed"
    west: Literal["open", "closed"] = "closed"


class ProbeSpec(_Model):
    id: str
    x: float
    y: float


class SolverSpec(_Model):
    alpha: float = Field(0.7, gt=0, le=1)
    theta: float = Field(0.8, ge=0, le=1)
    froude_limit: float | None = Field(None, gt=0)
    drop_weir: bool = False  # weir discharge over free overfalls (walls, kerbs, steps)
    alpha_cap: bool = True  # keep alpha at the 2D stability bound 0.98 sqrt(theta / 2)
    # Manning's term from the discharge vector's magnitude, or each face's own discharge only
    # (the older rule: a diagonal flow feels 1/sqrt(2) of its friction; twin.sim.flood).
    friction: Literal["vector", "face"] = "vector"
    dtype: Literal["float64", "float32"] = "float64"
    # Threads sharing each step by bands of rows (twin.sim.flood_bands): the same result bit for
    # bit; worth it on a whole city's grid, at most numba's NUMBA_NUM_THREADS.
    threads: int = Field(1, ge=1)


class ScenarioSpec(_Model):
    dem: str
    crs: str | None = None
    nodata: NodataRule = "closed"  # DEM nodata cells: walls, interpolated, or refused
    nodata_max_hole_cells: int = Field(16, ge=1)
    duration_s: float = Field(gt=0)
    output_interval_s: float | None = Field(None, gt=0)
    rain: RainSpec | None = None
    inflows: list[InflowSpec] = []
    buildings: BuildingsSpec | None = None
    manning: ManningSpec = ManningSpec()
    drainage: float | str = 0.0  # mm/h, uniform, or a raster of mm/h
    infiltration_mm_h: float = Field(0.0, ge=0)
    boundaries: BoundariesSpec = BoundariesSpec()
    probes: list[ProbeSpec] = []
    solver: SolverSpec = SolverSpec()


@dataclass
class Grid:
    """The DEM: bed (m), north-up, square cells."""

    bed: npt.NDArray[np.float64]
    transform: tuple[float, float, float, float, float, float]
    crs: CRS
    dx: float

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.bed.shape[0]), int(self.bed.shape[1]))


@dataclass
class Scenario:
    """A scenario resolved into arrays, ready for :func:`twin.sim.flood.simulate`."""

    spec: ScenarioSpec
    path: Path
    grid: Grid
    bed: npt.NDArray[np.float64]  # with buildings raised
    active: npt.NDArray[np.bool_]
    manning: npt.NDArray[np.float64]
    drainage_m_s: float | npt.NDArray[np.float64]
    rain: Series | None
    inflows: list[Inflow]
    probes: list[tuple[str, float, float, int, int]]
    notes: list[str] = field(default_factory=list)
    nodata: dict[str, Any] = field(default_factory=dict)


def _fail_field(where: str, message: str) -> ScenarioError:
    return ScenarioError(f"{where}: {message}")


def load(path: Path) -> Scenario:
    """Read and check a scenario file and everything it names."""
    path = Path(path)
    if not path.is_file():
        raise ScenarioError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: not a YAML file ({exc})") from exc
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: expected a mapping of scenario fields")
    try:
        spec = ScenarioSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
        )
        raise ScenarioError(f"{path}: {problems}") from exc
    base = path.parent
    notes: list[str] = []
    dem_path = _resolve(base, spec.dem, "dem")
    grid = read_dem(dem_path, spec.crs)
    try:
        treated = treat_nodata(
            grid.bed, np.isnan(grid.bed), rule=spec.nodata,
            max_hole_cells=spec.nodata_max_hole_cells,
        )  # fmt: skip
    except NodataError as exc:
        raise _fail_field("dem", f"{dem_path} has {exc}") from exc
    grid.bed = treated.bed
    bed = grid.bed.copy()
    active = treated.active.copy()
    if spec.buildings is not None:
        _apply_buildings(spec.buildings, base, grid, bed, active, notes)
    manning = np.full(grid.shape, spec.manning.default)
    if spec.manning.raster:
        manning = _read_aligned(_resolve(base, spec.manning.raster, "manning.raster"), grid, "n")
    layers = []
    for i, poly in enumerate(spec.manning.polygons):
        gdf = _vector(_resolve(base, poly.path, f"manning.polygons[{i}].path"), poly.crs, grid)
        _note_reprojection(gdf, grid, f"manning.polygons[{i}]", notes)
        if spec.manning.coverage == "area":
            layers.append((list(gdf.geometry), poly.n))
            continue
        burned = _burn(gdf.geometry, grid, 1.0)
        manning[burned > 0] = poly.n
    if layers:
        manning = manning_by_area(manning, layers, grid.transform)
    drainage: float | npt.NDArray[np.float64]
    if isinstance(spec.drainage, str):
        drainage = _read_aligned(_resolve(base, spec.drainage, "drainage"), grid, "mm/h") * MM_H
        if np.any(drainage < 0):
            raise _fail_field("drainage", "the raster has negative capacities")
    else:
        if spec.drainage < 0:
            raise _fail_field("drainage", "must not be negative (mm/h)")
        drainage = spec.drainage * MM_H
    # Inflows spill onto open ground only: not into raised buildings (bed above the DEM's).
    open_cells = active & ~(bed > grid.bed)
    inflows = [_inflow(i, spec_i, base, grid, open_cells) for i, spec_i in enumerate(spec.inflows)]
    probes = []
    for i, p in enumerate(spec.probes):
        rows, cols, inside = pixel_index(grid.transform, grid.shape, [p.x], [p.y])
        if not inside[0]:
            raise _fail_field(f"probes[{i}] ({p.id})", f"({p.x}, {p.y}) is outside the DEM")
        probes.append((p.id, p.x, p.y, int(rows[0]), int(cols[0])))
    return Scenario(
        spec=spec, path=path, grid=grid, bed=bed, active=active, manning=manning,
        drainage_m_s=drainage, rain=_rain(spec.rain, base), inflows=inflows, probes=probes,
        notes=notes, nodata=treated.summary(spec.nodata),
    )  # fmt: skip


def _resolve(base: Path, name: str, where: str) -> Path:
    p = Path(name)
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        raise _fail_field(where, f"file not found: {p}")
    return p


def read_dem(path: Path, crs: str | None) -> Grid:
    """A DEM from a GeoTIFF or an ESRI ASCII grid: projected, square cells; nodata as NaN."""
    try:
        with rasterio.open(path) as src:
            data = src.read(1, masked=True).astype(np.float64)
            transform = tuple(src.transform)[:6]
            file_crs = src.crs
    except rasterio.errors.RasterioError as exc:
        raise _fail_field("dem", f"cannot read {path} ({exc})") from exc
    if crs is not None:
        try:
            named = CRS.from_user_input(crs)
        except CRSError as exc:
            raise _fail_field("crs", f"{crs!r} is not a CRS ({exc})") from exc
        if file_crs is not None and CRS.from_user_input(file_crs.to_wkt()) != named:
            raise _fail_field(
                "crs", f"{path} declares {file_crs.to_string()}, the scenario says {crs}"
            )
        grid_crs = named
    elif file_crs is not None:
        grid_crs = CRS.from_user_input(file_crs.to_wkt())
    else:
        raise _fail_field("dem", f"{path} declares no CRS; name it with the scenario's 'crs'")
    if not grid_crs.is_projected:
        raise _fail_field("dem", f"{path} is in {grid_crs.name}; the model needs metres")
    a, b, _, d, e, _ = transform
    if b != 0 or d != 0 or a <= 0 or e >= 0:
        raise _fail_field("dem", f"{path} is rotated or not north-up")
    if not math.isclose(a, -e, rel_tol=1e-6):
        raise _fail_field("dem", f"{path} has non-square cells ({a} x {-e} m)")
    # Nodata comes back as NaN; the scenario's ``nodata`` rule treats it (twin.sim.demholes).
    return Grid(np.asarray(data.filled(np.nan)), transform, grid_crs, float(a))


def _read_aligned(path: Path, grid: Grid, unit: str) -> npt.NDArray[np.float64]:
    with rasterio.open(path) as src:
        if (src.height, src.width) != grid.shape or not np.allclose(
            tuple(src.transform)[:6], grid.transform
        ):
            raise _fail_field(str(path), f"must be aligned with the DEM ({unit})")
        arr = src.read(1, masked=True).astype(np.float64)
    if np.ma.getmaskarray(arr).any():
        raise _fail_field(str(path), "has nodata cells")
    return np.asarray(arr.filled(0.0))


def _vector(path: Path, crs: str | None, grid: Grid) -> Any:
    try:
        gdf = read_vector(path, family="polygon", crs=crs, report=Report(str(path), "scenario"))
    except IngestError as exc:
        raise ScenarioError(str(exc)) from exc
    try:
        source = pyogrio.read_info(path).get("crs") or crs
    except Exception:  # GeoParquet and CSV: pyogrio may not read them; then we cannot say
        source = crs
    out = gdf.to_crs(grid.crs)
    out.attrs["source_crs"] = source
    return out


def _note_reprojection(gdf: Any, grid: Grid, where: str, notes: list[str]) -> None:
    original = gdf.attrs.get("source_crs")
    if original and CRS.from_user_input(original) != grid.crs:
        notes.append(f"{where}: reprojected from {original} to the DEM's CRS")


def _burn(geoms: Any, grid: Grid, value: float | list[float]) -> npt.NDArray[np.float64]:
    values = value if isinstance(value, list) else [value] * len(geoms)
    return burn(zip(geoms, values, strict=True), grid.shape, grid.transform)


def _apply_buildings(
    spec: BuildingsSpec,
    base: Path,
    grid: Grid,
    bed: npt.NDArray[np.float64],
    active: npt.NDArray[np.bool_],
    notes: list[str],
) -> None:
    gdf = _vector(_resolve(base, spec.path, "buildings.path"), spec.crs, grid)
    _note_reprojection(gdf, grid, "buildings", notes)
    if spec.mode == "block":
        active[_burn(gdf.geometry, grid, 1.0) > 0] = False
        return
    heights = [spec.height_m] * len(gdf)
    if spec.height_field:
        if spec.height_field not in gdf.columns:
            raise _fail_field("buildings.height_field", f"no field {spec.height_field!r}")
        col = gdf[spec.height_field].astype(float)
        heights = [h if math.isfinite(h) and h > 0 else spec.height_m for h in col]
    bed += _burn(gdf.geometry, grid, heights)


def _series_csv(
    path: Path, where: str, columns: tuple[str, str], interp: Interp, scale: float = 1.0
) -> Series:
    try:
        return Series.from_csv(path, columns, interp=interp, scale=scale)
    except ValueError as exc:
        raise _fail_field(where, str(exc)) from exc


def _rain(spec: RainSpec | None, base: Path) -> Series | None:
    if spec is None:
        return None
    if spec.chicago is not None:
        try:
            return spec.chicago.series()
        except ValueError as exc:
            raise _fail_field("rain.chicago", str(exc)) from exc
    if spec.constant_mm_h is not None:
        return Series.constant(spec.constant_mm_h * MM_H)
    where = "rain.series"
    if isinstance(spec.series, str):
        try:
            return read_rain_csv(_resolve(base, spec.series, where))
        except ValueError as exc:
            raise _fail_field(where, str(exc)) from exc
    try:
        return Series.from_pairs(spec.series or [], interp="step", scale=MM_H)
    except ValueError as exc:
        raise _fail_field(where, str(exc)) from exc


def _inflow(
    i: int,
    spec: InflowSpec,
    base: Path,
    grid: Grid,
    open_cells: npt.NDArray[np.bool_],
) -> Inflow:
    """An inflow spread evenly over the open cells within its radius (none inside a raised or
    blocked building), or onto the open cell nearest to it when the radius holds none."""
    where = f"inflows[{i}] ({spec.id})"
    try:
        rows, cols = cells_within(
            grid.shape, grid.transform, spec.x, spec.y, spec.radius_m, open_cells=open_cells
        )
    except ValueError as exc:
        raise _fail_field(where, str(exc)) from exc
    if spec.hydrograph is not None:
        series = _series_csv(
            _resolve(base, spec.hydrograph, f"{where}.hydrograph"),
            where,
            ("time_s", "discharge_m3s"),
            "linear",
        )
    else:
        series = Series.constant(float(spec.discharge_m3s or 0.0))
    return Inflow(rows, cols, series, spec.id)


def run(scenario: Scenario, progress: Callable[[float, float], None] | None = None) -> FloodResult:
    """Run the scenario; ``progress(t, duration)`` is called at each output time."""
    s = scenario.spec
    b = s.boundaries
    return simulate(
        scenario.bed,
        dx=scenario.grid.dx,
        duration_s=s.duration_s,
        rain=scenario.rain,
        inflows=scenario.inflows,
        manning=scenario.manning,
        drainage_m_s=scenario.drainage_m_s,
        infiltration_m_s=s.infiltration_mm_h * MM_H,
        active=scenario.active,
        boundaries=Boundaries(b.north, b.south, b.east, b.west),
        probes=[(r, c) for _, _, _, r, c in scenario.probes],
        output_interval_s=s.output_interval_s,
        alpha=s.solver.alpha,
        theta=s.solver.theta,
        froude_limit=s.solver.froude_limit,
        drop_weir=s.solver.drop_weir,
        alpha_cap=s.solver.alpha_cap,
        friction=s.solver.friction,
        threads=s.solver.threads,
        dtype=np.float32 if s.solver.dtype == "float32" else np.float64,
        progress=progress,
    )


def summary(scenario: Scenario, result: FloodResult) -> dict[str, Any]:
    """The run in numbers: what ``--json`` prints and ``summary.json`` holds."""
    grid = scenario.grid
    probes = []
    for k, (pid, x, y, r, c) in enumerate(scenario.probes):
        depth = float(result.max_depth[r, c])
        probes.append({
            "id": pid, "x": x, "y": y, "row": r, "col": c,
            "max_depth_m": round(depth, 6),
            "max_level_m": round(float(scenario.bed[r, c]) + depth, 6),
            "time_of_max_s": round(float(result.time_of_max_s[r, c]), 3),
            "final_depth_m": round(float(result.probe_depth[-1, k]), 6),
        })  # fmt: skip
    flooded = np.nan_to_num(result.max_depth) >= result.threshold_m
    return {
        "scenario": str(scenario.path),
        "grid": {
            "rows": grid.shape[0],
            "cols": grid.shape[1],
            "cell_m": grid.dx,
            "crs": grid.crs.to_string(),
        },
        "duration_s": scenario.spec.duration_s,
        "dtype": result.dtype,
        "steps": result.steps,
        "wall_s": round(result.wall_s, 3),
        "cell_steps_per_s": round(result.cell_steps_per_s),
        "volumes_m3": {k: round(v, 6) for k, v in result.volumes_m3.items()},
        "mass_error_rel": result.mass_error_rel,
        "max_depth_m": round(float(np.nanmax(result.max_depth)), 6),
        "flooded_area_m2": float(flooded.sum()) * grid.dx * grid.dx,
        "flood_threshold_m": result.threshold_m,
        "probes": probes,
        "nodata": scenario.nodata,
        "notes": scenario.notes,
    }


def write_outputs(scenario: Scenario, result: FloodResult, out: Path) -> dict[str, Any]:
    """GeoTIFFs of the maxima, the probes' series as CSV, and ``summary.json``."""
    grid = scenario.grid
    write_geotiffs(
        out,
        {
            "max_depth.tif": result.max_depth,
            "time_of_max.tif": result.time_of_max_s,
            "max_velocity.tif": result.max_velocity,
            "max_hazard.tif": result.max_hazard,
        },
        grid.crs.to_wkt(),
        grid.transform,
    )
    with (out / "probes.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["time_s", "probe", "depth_m", "level_m"])
        for i, t in enumerate(result.output_times_s):
            for k, (pid, _, _, r, c) in enumerate(scenario.probes):
                d = float(result.probe_depth[i, k])
                w.writerow([f"{t:g}", pid, f"{d:.6f}", f"{float(scenario.bed[r, c]) + d:.6f}"])
    data = summary(scenario, result)
    (out / "summary.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return data
