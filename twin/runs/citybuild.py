"""`twin city build`: one command from public files (OSM, a DEM, a population grid) to a twin.

The stages run in the order their inputs need (:data:`STAGES`): the OSM extract places the
city (its UTM zone, :mod:`twin.city.meta`) and gives buildings, roads and land use; the DEM is
clipped to that extent plus a margin and reprojected; people come from person records or a
population grid, jobs from floor area; then the cells, a design storm, the morning peak with
the storm's closures, and the risk one map with its alerts.

Each finished stage is recorded with a fingerprint of the inputs in
``<data_dir>/city-build.json``. A rerun after a failure skips the stages that finished with
the same inputs; new inputs, or ``force``, start over from a clean city (the city's tables
are emptied; users, tokens and the audit log stay).

Refusals name what is missing and the command or flag that supplies it; a run that yields no
trips or no wet cells is a warning in the summary, never a silent success.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import rasterio
from pyproj import Transformer
from rasterio.errors import RasterioError, WindowError
from rasterio.windows import Window, from_bounds

from twin.city.cells import refresh_cell_stats
from twin.city.load import bump_layer_versions, truncate_city
from twin.city.meta import read_city
from twin.db.engine import database_url
from twin.db.migrate import upgrade
from twin.ingest.report import Progress, quiet
from twin.settings import Settings

STAGES = ("database", "osm", "dem", "people", "jobs", "cells", "flood", "traffic", "risk")
#: The DEM is clipped to the OSM extent grown by this much (m): water reaches the city from
#: the slopes around it.
DEM_MARGIN_M = 500.0
#: Refuse a DEM that leaves more than this share of the road links without ground.
MAX_UNCOVERED_ROADS = 0.10

Notify = Callable[[str, str, dict[str, Any]], None]


class CityBuildError(ValueError):
    """A stage cannot run: the message names what is missing and what supplies it."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(f"{stage}: {message}")
        self.stage = stage


@dataclass(frozen=True)
class CityInputs:
    """What a build is made from; paths are resolved so that the fingerprint is stable."""

    osm: Path
    dem: Path
    population: Path | None = None
    people: Path | None = None
    job_rates: Path | None = None
    name: str | None = None
    seed: int = 0
    storm_years: float = 50.0
    storm_duration_s: float = 7200.0

    def fingerprint(self) -> str:
        parts: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, Path):
                st = value.stat()
                parts[key] = [str(value.resolve()), st.st_size, st.st_mtime_ns]
            else:
                parts[key] = value
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def check_inputs(inputs: CityInputs) -> None:
    """Every named file exists, before anything is touched."""
    for flag, path in (("--osm", inputs.osm), ("--dem", inputs.dem),
                       ("--population", inputs.population), ("--people", inputs.people),
                       ("--job-rates", inputs.job_rates)):  # fmt: skip
        if path is not None and not Path(path).is_file():
            raise CityBuildError("inputs", f"{flag} {path}: file not found")
    if inputs.population is not None and inputs.people is not None:
        raise CityBuildError(
            "inputs", "pass --people (person records) or --population (a grid), not both: "
            "synthetic residents would count the real ones twice",
        )  # fmt: skip


def _state_path(settings: Settings) -> Path:
    return settings.data_dir / "city-build.json"


def _load_state(settings: Settings, key: str, force: bool) -> dict[str, Any]:
    path = _state_path(settings)
    if force or not path.is_file():
        return {"inputs": key, "done": {}}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"inputs": key, "done": {}}
    if state.get("inputs") != key:  # other files: a new city
        return {"inputs": key, "done": {}}
    return dict(state)


def _save_state(settings: Settings, state: dict[str, Any]) -> None:
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2, default=str))
    tmp.replace(path)


def build_city(
    settings: Settings,
    inputs: CityInputs,
    *,
    force: bool = False,
    notify: Notify | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the stages (skipping those already done with these inputs); returns the summary.

    Raises CityBuildError naming the stage and what is missing; IngestError, FloodRunError
    and TrafficRunError from the stages pass through (each stage is one transaction, so a
    failed stage leaves the previous ones in place for a resumed run).
    """
    check_inputs(inputs)
    tell = notify or (lambda _s, _status, _d: None)
    say: Progress = progress or quiet
    key = inputs.fingerprint()
    state = _load_state(settings, key, force)
    url = database_url(settings)
    warnings: list[str] = []
    for stage in STAGES:
        if stage in state["done"]:
            tell(stage, "skipped", state["done"][stage])
            continue
        tell(stage, "running", {})
        t0 = time.perf_counter()
        detail = _STAGE_FUNCS[stage](settings, url, inputs, state, say)
        detail["seconds"] = round(time.perf_counter() - t0, 2)
        state["done"][stage] = detail
        _save_state(settings, state)
        tell(stage, "done", detail)
    for stage in STAGES:
        warnings += state["done"][stage].get("warnings", [])
    return {"inputs": key, "stages": state["done"], "warnings": warnings}


# ----------------------------------------------------------------------------- stages
def _database(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
              say: Progress) -> dict[str, Any]:  # fmt: skip
    revision = upgrade(url)
    with psycopg.connect(url) as conn, conn.transaction():
        truncate_city(conn)  # a build starts from a clean city; users and audit stay
        conn.execute("DELETE FROM twin.city_meta")
        bump_layer_versions(conn)
    return {"revision": revision}


def _osm(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
         say: Progress) -> dict[str, Any]:  # fmt: skip
    from twin.ingest.osm import ingest_osm

    report = ingest_osm(inputs.osm, settings, mode="replace", progress=say)
    layers = report.details.get("layers", {})
    if not layers.get("buildings"):
        raise CityBuildError("osm", f"{inputs.osm}: the extract holds no buildings")
    if not layers.get("road_ways"):
        raise CityBuildError("osm", f"{inputs.osm}: the extract holds no roads")
    with psycopg.connect(url) as conn:
        city = read_city(conn)
    if inputs.name:
        with psycopg.connect(url) as conn:
            conn.execute("UPDATE twin.city_meta SET name = %s", (inputs.name,))
    return {"layers": layers, "crs": city.crs if city else settings.metric_crs}


def _dem(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
         say: Progress) -> dict[str, Any]:  # fmt: skip
    from twin.ingest.raster import ingest_raster

    with psycopg.connect(url) as conn:
        ((x0, y0, x1, y1),) = conn.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent(g) e"
            " FROM (SELECT geom g FROM twin.building UNION ALL SELECT geom FROM twin.road_link)"
            " u) b"
        ).fetchall()
        mids = np.array(
            conn.execute(
                "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_LineInterpolatePoint(geom, 0.5) p"
                " FROM twin.road_link) r"
            ).fetchall(),
            dtype=float,
        ).reshape(-1, 2)
    clipped = settings.data_dir / "city" / f"dem-{inputs.dem.stem}-clipped.tif"
    clipped.parent.mkdir(parents=True, exist_ok=True)
    say(f"clipping {inputs.dem.name} to the city extent + {DEM_MARGIN_M:g} m")
    try:
        uncovered = clip_dem(inputs.dem, clipped, (x0, y0, x1, y1), mids, margin_m=DEM_MARGIN_M)
    except RasterioError as exc:
        raise CityBuildError("dem", f"{inputs.dem}: not a readable raster ({exc})") from exc
    if uncovered > MAX_UNCOVERED_ROADS:
        raise CityBuildError(
            "dem", f"{inputs.dem} leaves {uncovered:.0%} of the road links without ground "
            f"(at most {MAX_UNCOVERED_ROADS:.0%} allowed): use a DEM that covers the OSM extent",
        )  # fmt: skip
    report = ingest_raster(clipped, settings, kind="dem", name="dem", progress=say)
    out: dict[str, Any] = {"clipped": str(clipped), "roads_uncovered": round(uncovered, 4),
                           "loaded_cells": report.loaded}  # fmt: skip
    if uncovered > 0:
        out["warnings"] = [f"dem: {uncovered:.1%} of the road links lie outside the DEM"]
    return out


def clip_dem(
    src_path: Path,
    dst_path: Path,
    bounds_lonlat: tuple[float, float, float, float],
    road_mids_lonlat: np.ndarray,
    *,
    margin_m: float,
) -> float:
    """Write the part of a DEM over ``bounds`` (+ ``margin_m``) to ``dst_path``.

    Returns the share of road midpoints (lon, lat) without valid ground in the clip.
    """
    with rasterio.open(src_path) as src:
        if src.crs is None:
            raise CityBuildError("dem", f"{src_path}: the raster declares no CRS")
        to_src = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
        x0, y0, x1, y1 = bounds_lonlat
        xs, ys = to_src.transform([x0, x1, x0, x1], [y0, y0, y1, y1])
        pad = margin_m if src.crs.is_projected else margin_m / 111_000.0
        win = from_bounds(min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad,
                          transform=src.transform)  # fmt: skip
        try:
            win = (
                win.round_offsets()
                .round_lengths()
                .intersection(Window(0, 0, src.width, src.height))
            )
        except WindowError:  # the DEM lies wholly beside the city
            return 1.0
        data = src.read(1, window=win, masked=True)
        profile = src.profile | {
            "height": int(win.height), "width": int(win.width),
            "transform": src.window_transform(win), "driver": "GTiff",
        }  # fmt: skip
        with rasterio.open(dst_path, "w", **profile) as dst:
            dst.write(data.filled(src.nodata if src.nodata is not None else np.nan), 1)
        if not len(road_mids_lonlat):
            return 0.0
        mx, my = to_src.transform(road_mids_lonlat[:, 0], road_mids_lonlat[:, 1])
        rows, cols = rasterio.transform.rowcol(src.window_transform(win), mx, my)
        rows, cols = np.asarray(rows), np.asarray(cols)
        inside = (rows >= 0) & (rows < data.shape[0]) & (cols >= 0) & (cols < data.shape[1])
        valid = np.zeros(len(rows), dtype=bool)
        mask = np.ma.getmaskarray(data)
        valid[inside] = ~mask[rows[inside], cols[inside]]
        return float(1.0 - valid.mean())


def _people(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
            say: Progress) -> dict[str, Any]:  # fmt: skip
    if inputs.people is not None:
        from twin.ingest.people import ingest_people

        r = ingest_people(inputs.people, settings, mode="replace", progress=say)
        return {"residents": r.loaded, "source": str(inputs.people)}
    if inputs.population is not None:
        from twin.ingest.population import ingest_population

        r = ingest_population(inputs.population, settings, seed=inputs.seed, progress=say)
        d = r.as_dict()
        out: dict[str, Any] = {"residents": r.loaded, "source": str(inputs.population),
                               "grid_total_in_extent": d.get("grid_total_in_extent")}  # fmt: skip
        if d.get("warning"):
            out["warnings"] = [f"people: {d['warning']}"]
        return out
    return {
        "residents": 0,
        "warnings": ["people: no --population GRID.tif or --people FILE: the twin has no "
                     "residents, so no demand and no people-based risk layers"],
    }  # fmt: skip


def _jobs(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
          say: Progress) -> dict[str, Any]:  # fmt: skip
    with psycopg.connect(url) as conn:
        ((residents, commuters),) = conn.execute(
            "SELECT count(*), count(work_cell) FROM twin.person"
        ).fetchall()
    if residents == 0:
        return {"workers": 0}
    if commuters > 0:  # person records came with their workplaces
        return {"workers": int(commuters), "source": "person records"}
    from twin.ingest.jobs import ingest_jobs

    r = ingest_jobs(settings, rates=inputs.job_rates, seed=inputs.seed, progress=say)
    return {k: r.details[k] for k in ("jobs", "workers_placed", "jobs_vacant", "zones")}


def _cells(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
           say: Progress) -> dict[str, Any]:  # fmt: skip
    with psycopg.connect(url) as conn, conn.transaction():
        rows = refresh_cell_stats(conn, settings.h3_resolutions, k=settings.suppression_k)
        bump_layer_versions(conn, ("cell_stats",))
    return {"rows": rows}


def _flood(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
           say: Progress) -> dict[str, Any]:  # fmt: skip
    from twin.runs import flood as flood_runs

    params = flood_runs.FloodParams(
        return_period_years=inputs.storm_years, duration_s=inputs.storm_duration_s
    )
    out = flood_runs.run_flood(settings, params)
    keep: dict[str, Any] = {
        k: out[k] for k in ("run_id", "max_depth_m", "flooded_area_m2") if k in out
    }
    if not out.get("flooded_area_m2"):
        keep["warnings"] = [f"flood: the {inputs.storm_years:g}-year storm left no wet cell"]
    return keep


def _traffic(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
             say: Progress) -> dict[str, Any]:  # fmt: skip
    from twin.runs import traffic as traffic_runs

    with psycopg.connect(url) as conn:
        ((commuters,),) = conn.execute("SELECT count(work_cell) FROM twin.person").fetchall()
    if not commuters:
        return {"trips": 0, "warnings": [
            "traffic: not run, the twin has no commuters (pass --population GRID.tif, or "
            "--people FILE with work addresses)"]}  # fmt: skip
    flood = state["done"].get("flood", {}).get("run_id")
    params = traffic_runs.TrafficParams(flood_runs=(flood,) if flood else ())
    out = traffic_runs.run_traffic(settings, params)
    keep = {k: out.get(k) for k in ("run_id", "trips", "relative_gap", "converged",
                                     "delay_index", "delay_band")}  # fmt: skip
    if not out.get("trips"):
        keep["warnings"] = ["traffic: the morning peak has no trips"]
    return keep


def _risk(settings: Settings, url: str, inputs: CityInputs, state: dict[str, Any],
          say: Progress) -> dict[str, Any]:  # fmt: skip
    from twin.alerts.refresh import refresh

    out = refresh(settings)
    alerts = {rule: sum(c.values()) for rule, c in out["alerts"].items()}
    return {"layers": out["risk"]["layers"], "alerts": alerts}


_STAGE_FUNCS = {
    "database": _database,
    "osm": _osm,
    "dem": _dem,
    "people": _people,
    "jobs": _jobs,
    "cells": _cells,
    "flood": _flood,
    "traffic": _traffic,
    "risk": _risk,
}
