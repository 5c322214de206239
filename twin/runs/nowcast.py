"""The rolling flood nowcast on the twin: ``twin nowcast step`` and ``twin nowcast status``.

A step, every few minutes (cron, a systemd timer):

1. takes the nowcast the previous step left (``twin.nowcast``, locked: two steps at once run one
   after the other), or starts one from a dry grid (the first step, after ``--restart``, after a
   gap longer than ``max_gap_s`` or when the DEM changed);
2. reads the rain gauges' readings of the window from the previous step's time (or ``window_s``
   back, for a first step) to ``as_of`` (:func:`gauge_readings`), builds the rain field by
   inverse-distance weighting (:mod:`twin.sim.rainfield`) and advances the carried flood state
   over the window (:func:`twin.sim.nowcast.advance`);
3. looks ``horizon_s`` ahead from the new state with persistence (each gauge's mean intensity
   over the last ``lookback_s``, interpolated the same way), without touching the state;
4. stores, in one transaction: the state, the step (window, gauges used and stale, rain, the
   deepest water), per H3 cell at every kept resolution the deepest land pixel now, at the
   horizon and over it (cells with ``wet_m`` or more only), per road link the depth along it
   now and at the horizon with its state (passable / slowed / closed, the flood run's bands)
   and, per water-level sensor that read in the window, the reading against the model at its
   pixel (``nowcast_skill``).

A gauge's reading of a window: for intensities (mm/h) the mean of its readings in the window,
or its latest one before it when none fell in the window (an intensity holds until the next
reading); for depths (mm, what fell since the previous reading) their sum. A gauge whose latest
reading is older than ``max_age_s`` is stale and dropped. A water-level sensor reads the depth
of water above the ground at it (m), or the water surface's elevation when its ``attrs`` say
``"datum": "elevation"``; the difference stored is observed minus modelled.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from pyproj import Transformer

from twin import grid as h3grid
from twin.db.copy import copy_rows
from twin.db.engine import database_url
from twin.db.queries import query
from twin.runs.flood import ROAD_CLOSED_M, ROAD_SLOWED_M, FloodRunError, TwinGrid, load_grid
from twin.runs.floodcells import link_depth_table, pixel_cells
from twin.settings import Settings
from twin.sim.flood import pixel_index
from twin.sim.flood_state import FloodState
from twin.sim.nowcast import NowcastModel, advance, forecast
from twin.sim.rainfield import GaugeReading, NoGaugesError, RainField, rain_field

SQL = "nowcast.sql"
INTENSITY_UNITS = frozenset({"mm/h", "mm/hr", "mm.h-1", "mm h-1"})
DEPTH_UNITS = frozenset({"mm"})


class NowcastError(ValueError):
    """A nowcast step that cannot run: bad parameters, no DEM, no fresh gauge, time going back."""


@dataclass(frozen=True)
class NowcastParams:
    """What a step does.

    Attributes
    ----------
    window_s
        Length (s) of a first step's window (later steps cover the time since the previous).
    horizon_s
        How far ahead (s) the forecast looks.
    lookback_s
        The persistence window (s): each gauge's mean intensity over it holds over the horizon.
    max_age_s
        A gauge whose latest reading is older than this (s) is stale.
    power
        Inverse-distance power of the rain field.
    max_gap_s
        A previous step older than this (s) is not continued: the nowcast restarts from dry.
    if_no_gauges
        ``"error"`` (default) or ``"zero"`` (no rain) when no gauge is fresh.
    wet_m
        Cells are stored when they hold at least this depth (m) now, at or over the horizon.
    dtype
        ``float64`` or ``float32``.
    restart
        Start a new nowcast from a dry grid even if one can be continued.
    """

    window_s: float = 300.0
    horizon_s: float = 3600.0
    lookback_s: float = 3600.0
    max_age_s: float = 900.0
    power: float = 2.0
    max_gap_s: float = 6 * 3600.0
    if_no_gauges: Literal["error", "zero"] = "error"
    wet_m: float = 0.01
    dtype: str = "float64"
    restart: bool = False

    def __post_init__(self) -> None:
        for name in ("window_s", "horizon_s", "lookback_s", "power", "max_gap_s"):
            if not getattr(self, name) > 0:
                raise NowcastError(f"{name} must be positive")
        if self.horizon_s > 86400 or self.window_s > self.max_gap_s:
            raise NowcastError("horizon_s is at most a day and window_s at most max_gap_s")
        if not self.max_age_s >= 0 or not self.wet_m >= 0:
            raise NowcastError("max_age_s and wet_m must not be negative")
        if self.if_no_gauges not in ("error", "zero"):
            raise NowcastError("if_no_gauges must be 'error' or 'zero'")
        if self.dtype not in ("float64", "float32"):
            raise NowcastError("dtype must be float64 or float32")


def _grid_key(g: TwinGrid) -> dict[str, Any]:
    return {
        "rows": int(g.bed.shape[0]), "cols": int(g.bed.shape[1]), "cell_m": g.dx, "crs": g.crs,
        "transform": [float(v) for v in g.transform[:6]],
    }  # fmt: skip


def gauge_readings(
    conn: psycopg.Connection, g: TwinGrid, start: datetime, end: datetime
) -> tuple[list[GaugeReading], dict[str, str]]:
    """Each rain gauge's reading of ``(start, end]`` in the grid's CRS (see the module), and
    the gauges left out with why (never reported, a unit that is not rain)."""
    rows = conn.execute(query(SQL, "rain_gauges"), {"start": start, "end": end}).fetchall()
    to_grid = Transformer.from_crs("EPSG:4326", g.crs, always_xy=True)
    out: list[GaugeReading] = []
    skipped: dict[str, str] = {}
    for code, unit, lon, lat, last_seen, last_value, n, mean_v, sum_v in rows:
        unit_n = (unit or "").strip().lower()
        if unit_n not in INTENSITY_UNITS | DEPTH_UNITS:
            skipped[code] = f"unit {unit!r} is not mm/h or mm"
            continue
        if last_seen is None:
            skipped[code] = "no reading yet"
            continue
        x, y = to_grid.transform(lon, lat)
        if unit_n in INTENSITY_UNITS:
            value, kind = (float(mean_v) if n else float(last_value)), "mm/h"
        else:
            value, kind = (float(sum_v) if n else 0.0), "mm"
        out.append(GaugeReading(code, float(x), float(y), max(value, 0.0), kind, last_seen))  # type: ignore[arg-type]
    return out, skipped


def _field(
    readings: list[GaugeReading], g: TwinGrid, params: NowcastParams, window_s: float,
    as_of: datetime,
) -> RainField:  # fmt: skip
    try:
        return rain_field(
            readings, transform=g.transform, shape=g.bed.shape, window_s=window_s, as_of=as_of,
            max_age_s=params.max_age_s, power=params.power, if_none=params.if_no_gauges,
        )  # fmt: skip
    except NoGaugesError as exc:
        raise NowcastError(f"{exc}; pass --if-no-gauges zero to step with no rain") from exc


def _model(g: TwinGrid, dtype: str) -> NowcastModel:
    return NowcastModel(
        bed=g.bed, dx=g.dx, manning=g.manning, drainage_m_s=g.drainage_m_s, active=g.active,
        dtype=np.float32 if dtype == "float32" else np.float64, threshold_m=ROAD_SLOWED_M,
    )  # fmt: skip


def _restart_reason(
    row: tuple[Any, ...] | None, key: dict[str, Any], end: datetime, params: NowcastParams
) -> str | None:
    """Why the step starts a new nowcast from dry (None: it continues the latest)."""
    if row is None:
        return "first step"
    prev, grid_was = row[2], row[3]
    if end <= prev:
        raise NowcastError(
            f"as_of {end.isoformat()} is not after the last step ({prev.isoformat()})"
        )
    if params.restart:
        return "restart asked"
    if grid_was != key:
        return "the DEM changed"
    if (end - prev).total_seconds() > params.max_gap_s:
        return f"the last step ({prev.isoformat()}) is older than max_gap_s"
    return None


def step(
    settings: Settings, params: NowcastParams, *, as_of: datetime | None = None
) -> dict[str, Any]:
    """One nowcast step at ``as_of`` (default now); returns its summary (see the module)."""
    end = as_of or datetime.now(UTC)
    if end.tzinfo is None:
        raise NowcastError("as_of needs a time zone")
    t0 = time.perf_counter()
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        try:
            g = load_grid(conn)
        except FloodRunError as exc:
            raise NowcastError(str(exc)) from exc
        load_s = time.perf_counter() - t0
        key = _grid_key(g)
        row = conn.execute(query(SQL, "latest_nowcast")).fetchone()
        restarted = _restart_reason(row, key, end, params)
        state: FloodState | None = None
        if row is not None and restarted is None:
            nid, origin, start, _, blob, _ = row
            state = FloodState.from_bytes(bytes(blob))
        else:
            start = end - timedelta(seconds=params.window_s)
            origin = start
        window_s = (end - start).total_seconds()

        readings, skipped = gauge_readings(conn, g, start, end)
        observed = _field(readings, g, params, window_s, end)
        back = end - timedelta(seconds=params.lookback_s)
        recent, _ = gauge_readings(conn, g, back, end)
        persisted = _field(recent, g, params, params.lookback_s, end)

        model = _model(g, params.dtype)
        if state is not None:
            # The model clock runs from the nowcast's origin: the step ends exactly at as_of.
            window_s = (end - origin).total_seconds() - state.time_s
        t_sim = time.perf_counter()
        now = advance(model, state, window_s=window_s, rain_mm_h=observed.intensity_mm_h)
        assert now.state is not None
        ahead = forecast(model, now.state, rain_mm_h=persisted.intensity_mm_h,
                         horizon_s=params.horizon_s)  # fmt: skip
        sim_s = time.perf_counter() - t_sim

        if restarted is not None:
            nid = conn.execute(query(SQL, "insert_nowcast"), {
                "origin": start, "as_of": end, "grid": json.dumps(key),
                "params": json.dumps(asdict(params)), "state": now.state.to_bytes(),
            }).fetchone()[0]  # type: ignore[index]  # fmt: skip
        conn.execute(query(SQL, "update_nowcast"),
                     {"id": nid, "as_of": end, "state": now.state.to_bytes()})  # fmt: skip
        land_now = np.where(g.land, np.nan_to_num(now.depth.astype(np.float64)), 0.0)
        land_ahead = np.where(g.land, np.nan_to_num(ahead.horizon_depth.astype(np.float64)), 0.0)
        land_max = np.where(g.land, np.nan_to_num(ahead.horizon_max_depth.astype(np.float64)), 0)
        gauges = {
            "used": {code: _at(observed, g, r) for code, r in _by_code(readings, observed)},
            "stale": list(observed.stale),
            "skipped": skipped,
            "forecast": {code: _at(persisted, g, r) for code, r in _by_code(recent, persisted)},
        }
        volumes = now.volumes_m3
        summary: dict[str, Any] = {
            "nowcast_id": nid, "as_of": end.isoformat(), "window_s": window_s,
            "horizon_s": params.horizon_s, "restarted": restarted, "gauges": gauges,
            "rain_mean_mm_h": observed.mean_mm_h,
            "rain_max_mm_h": float(observed.intensity_mm_h.max()),
            "forecast_rain_mean_mm_h": persisted.mean_mm_h,
            "max_depth_now_m": float(land_now.max()),
            "max_depth_horizon_m": float(land_ahead.max()),
            "volumes_m3": {k: round(v, 3) for k, v in volumes.items()},
            "mass_error_rel": now.mass_error_rel, "model_time_s": now.state.time_s,
            "steps": now.steps, "forecast_steps": ahead.result.steps,
        }  # fmt: skip
        step_id = conn.execute(query(SQL, "insert_step"), {
            "nowcast_id": nid, "as_of": end, "window_s": window_s,
            "horizon_s": params.horizon_s,
            "gauges": json.dumps({k: gauges[k] for k in ("used", "stale", "forecast")}),
            "rain_mean": summary["rain_mean_mm_h"], "rain_max": summary["rain_max_mm_h"],
            "forecast_mean": summary["forecast_rain_mean_mm_h"],
            "max_now": summary["max_depth_now_m"], "max_horizon": summary["max_depth_horizon_m"],
            "summary": json.dumps(summary, default=str),
        }).fetchone()[0]  # type: ignore[index]  # fmt: skip
        summary["step_id"] = step_id
        summary["cells"] = _store_cells(conn, settings, g, step_id, land_now, land_ahead,
                                        land_max, params.wet_m)  # fmt: skip
        summary["links"] = _store_links(conn, g, step_id, now.depth, ahead.horizon_depth)
        summary["skill"] = _store_skill(conn, g, step_id, start, end, now.depth)
    summary["wall_s"] = round(time.perf_counter() - t0, 3)
    summary["load_s"] = round(load_s, 3)
    summary["simulate_s"] = round(sim_s, 3)  # the step and the forecast
    return summary


def _by_code(readings: list[GaugeReading], f: RainField) -> list[tuple[str, GaugeReading]]:
    used = set(f.used)
    return [(r.gauge, r) for r in readings if r.gauge in used]


def _at(f: RainField, g: TwinGrid, r: GaugeReading) -> float | None:
    """The field (mm/h) at the gauge's pixel (its own reading there, near enough); None for a
    gauge off the grid (it still weighs in on the cells near it)."""
    rows, cols, inside = pixel_index(g.transform, g.bed.shape, [r.x_m], [r.y_m])
    return round(float(f.intensity_mm_h[rows[0], cols[0]]), 4) if inside[0] else None


def _store_cells(
    conn: psycopg.Connection, settings: Settings, g: TwinGrid, step_id: int,
    now: npt.NDArray[np.float64], ahead: npt.NDArray[np.float64],
    ahead_max: npt.NDArray[np.float64], wet_m: float,
) -> int:  # fmt: skip
    """Per cell at every kept resolution: the deepest land pixel now, at the horizon and over
    it; only cells where one of them reaches ``wet_m``."""
    land = g.land.ravel()
    base = pd.DataFrame({
        "cell": pixel_cells(settings, g).ravel()[land], "depth_now_m": now.ravel()[land],
        "depth_horizon_m": ahead.ravel()[land], "max_depth_horizon_m": ahead_max.ravel()[land],
    })  # fmt: skip
    base = base[base[["depth_now_m", "depth_horizon_m", "max_depth_horizon_m"]].max(axis=1)
                >= wet_m]  # fmt: skip
    frames = []
    for res in settings.h3_resolutions:
        per = base.assign(cell=h3grid.parent(base.cell.to_numpy(), res)).groupby("cell").max()
        frames.append(per.reset_index().assign(res=res))
    if not frames or base.empty:
        return 0
    cells = pd.concat(frames, ignore_index=True)
    cells.insert(0, "step_id", step_id)
    cols = ["step_id", "res", "cell", "depth_now_m", "depth_horizon_m", "max_depth_horizon_m"]
    copy_rows(conn, "twin.nowcast_cell", cols, cells[cols])
    return len(cells)


def _state(depth: npt.NDArray[np.float64]) -> npt.NDArray[np.str_]:
    return np.where(
        depth >= ROAD_CLOSED_M, "closed", np.where(depth >= ROAD_SLOWED_M, "slowed", "passable")
    )


def _store_links(
    conn: psycopg.Connection, g: TwinGrid, step_id: int, now: npt.NDArray[np.floating],
    ahead: npt.NDArray[np.floating],
) -> int:  # fmt: skip
    """Road links with 5 cm or more along them now or at the horizon (as flood runs store)."""
    d = link_depth_table(conn, g, {"now": now, "ahead": ahead})
    d = d[(d["now"] >= 0.05) | (d["ahead"] >= 0.05)]
    if d.empty:
        return 0
    frame = pd.DataFrame({
        "step_id": step_id, "link_id": d.index.to_numpy(), "depth_now_m": d["now"].to_numpy(),
        "depth_horizon_m": d["ahead"].to_numpy(), "state_now": _state(d["now"].to_numpy()),
        "state_horizon": _state(d["ahead"].to_numpy()),
    })  # fmt: skip
    copy_rows(conn, "twin.nowcast_link", list(frame.columns), frame)
    return len(frame)


def _store_skill(
    conn: psycopg.Connection, g: TwinGrid, step_id: int, start: datetime, end: datetime,
    depth: npt.NDArray[np.floating],
) -> dict[str, Any]:  # fmt: skip
    """Water-level sensors that read in the window against the model at their pixel."""
    rows = conn.execute(query(SQL, "water_levels"), {"start": start, "end": end}).fetchall()
    to_grid = Transformer.from_crs("EPSG:4326", g.crs, always_xy=True)
    out = []
    for sid, _code, lon, lat, datum, observed_at, value in rows:
        x, y = to_grid.transform(lon, lat)
        r, c, inside = pixel_index(g.transform, g.bed.shape, [x], [y])
        if not inside[0]:
            continue
        d = float(depth[r[0], c[0]])
        level = float(g.ground[r[0], c[0]]) + d
        diff = float(value) - (level if datum == "elevation" else d)
        out.append((step_id, sid, observed_at, float(value), d, level, diff))
    if out:
        cols = ["step_id", "sensor_id", "observed_at", "observed_m", "modelled_depth_m",
                "modelled_level_m", "difference_m"]  # fmt: skip
        copy_rows(conn, "twin.nowcast_skill", cols, pd.DataFrame(out, columns=cols))
    diffs = np.array([o[-1] for o in out])
    return {
        "sensors": len(out),
        "mean_abs_difference_m": round(float(np.abs(diffs).mean()), 4) if out else None,
    }


def status(settings: Settings, *, limit: int = 5) -> dict[str, Any]:
    """The latest nowcast and its latest ``limit`` steps (an empty dict: none yet)."""
    with psycopg.connect(database_url(settings)) as conn:
        rows = conn.execute(query(SQL, "status"), {"limit": limit}).fetchall()
    if not rows:
        return {}
    first = rows[0]
    steps = [
        {
            "step_id": r[6], "as_of": r[7], "window_s": r[8], "horizon_s": r[9],
            "gauges_used": sorted(r[10]["used"]), "gauges_stale": r[10]["stale"],
            "rain_mean_mm_h": r[11], "rain_max_mm_h": r[12], "forecast_rain_mean_mm_h": r[13],
            "max_depth_now_m": r[14], "max_depth_horizon_m": r[15],
        }
        for r in rows
        if r[6] is not None
    ]  # fmt: skip
    return {
        "nowcast_id": first[0], "origin": first[1], "as_of": first[2], "steps": first[3],
        "grid": first[4], "state_bytes": first[5], "latest_steps": steps,
    }  # fmt: skip
