"""A rolling flood nowcast: advance the carried state by one window of observed rain, then
look ahead over a horizon from it without touching it.

Each step (every few minutes) the gauges' readings over the last window become a rain field
(:func:`twin.sim.rainfield.rain_field`), and :func:`advance` runs the flood model over the
window from the state where the previous step stopped (:mod:`twin.sim.flood_state`): the
nowcast never restarts from a dry grid, so water that fell an hour ago is still on the ground,
still running off and draining. :func:`forecast` then runs a copy of that state over the
horizon (60 minutes by default) with the rain held at a forecast field: the twin uses
*persistence*, each gauge's mean intensity over the last hour carried unchanged into the next
hour (interpolated like the step's field). Persistence is the baseline every rain nowcast is
measured against: right on average over an hour for slow stratiform rain, late at the start and
end of a convective cell. The forecast never modifies the carried state; the next step goes on
from the observed state, not the forecast one.

Both are pure: arrays in, arrays out. The runs layer (:mod:`twin.runs.nowcast`) reads the gauges
and stores the state and the depths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.sim.flood import Boundaries, FloodResult, simulate
from twin.sim.flood_state import FloodState
from twin.sim.rain import Series

FloatArray = npt.NDArray[np.floating]
#: 1 mm/h in m/s: the unit series a rain field in mm/h multiplies.
MM_H = 1 / 3_600_000


@dataclass(frozen=True)
class NowcastModel:
    """The grid the nowcast runs on and the model's options, the same for every step.

    Attributes
    ----------
    bed
        Bed elevation (m), buildings raised (see :func:`twin.sim.flood.simulate`).
    dx
        Cell size (m).
    manning
        Manning's n (s/m^(1/3)), scalar or per cell.
    drainage_m_s
        Drainage capacity (m/s), scalar or per cell.
    active
        Cells that take part (None: all).
    boundaries
        Edges (default: all open, so water can leave the city).
    dtype
        ``np.float64`` or ``np.float32``.
    threshold_m
        Depth (m) whose first arrival is recorded.
    options
        Further keyword options of :func:`twin.sim.flood.simulate` (alpha, theta, ...).
    """

    bed: FloatArray
    dx: float
    manning: float | FloatArray = 0.03
    drainage_m_s: float | FloatArray = 0.0
    active: npt.NDArray[np.bool_] | None = None
    boundaries: Boundaries = field(default_factory=lambda: Boundaries.all("open"))
    dtype: type = np.float64
    threshold_m: float = 0.15
    options: dict[str, Any] = field(default_factory=dict)

    def run(
        self, state: FloodState | None, *, duration_s: float, rain_mm_h: float | FloatArray
    ) -> FloodResult:
        """Run ``duration_s`` (s) from ``state`` (None: dry) with rain constant in time at
        ``rain_mm_h`` (mm/h, scalar or per cell)."""
        return simulate(
            self.bed, dx=self.dx, duration_s=duration_s, rain=Series.constant(MM_H),
            rain_factor=rain_mm_h, manning=self.manning, drainage_m_s=self.drainage_m_s,
            active=self.active, boundaries=self.boundaries, initial_state=state,
            threshold_m=self.threshold_m, dtype=self.dtype, **self.options,
        )  # fmt: skip


def advance(
    model: NowcastModel,
    state: FloodState | None,
    *,
    window_s: float,
    rain_mm_h: float | FloatArray,
) -> FloodResult:
    """One nowcast step: ``window_s`` (s) of observed rain from ``state``.

    Parameters
    ----------
    model
        The grid and options.
    state
        Where the previous step stopped (None: the first step, from a dry grid).
    window_s
        The step's length (s), the window the gauges' readings cover.
    rain_mm_h
        The observed rain field (mm/h), constant over the window.

    Returns
    -------
    FloodResult
        The run; ``.state`` is the state to carry to the next step, ``.depth`` the depth now.
        Its volumes are the running accounts since the first step.
    """
    if not window_s > 0:
        raise ValueError("window_s must be positive")
    return model.run(state, duration_s=window_s, rain_mm_h=rain_mm_h)


@dataclass(frozen=True)
class Forecast:
    """The depth now and at the horizon.

    Attributes
    ----------
    now_depth
        Depth (m) at the state's time (a copy).
    horizon_depth
        Depth (m) ``horizon_s`` later under the forecast rain.
    horizon_max_depth
        Largest depth (m) over the horizon (float32; NaN where blocked).
    horizon_s
        The horizon (s).
    result
        The forecast run itself (volumes, steps, its state at the horizon).
    """

    now_depth: FloatArray
    horizon_depth: FloatArray
    horizon_max_depth: FloatArray
    horizon_s: float
    result: FloodResult


def forecast(
    model: NowcastModel,
    state: FloodState | None,
    *,
    rain_mm_h: float | FloatArray,
    horizon_s: float = 3600.0,
) -> Forecast:
    """The depth ``horizon_s`` ahead of ``state`` with the rain held at ``rain_mm_h``.

    Parameters
    ----------
    model
        The grid and options.
    state
        The carried state (None: a dry grid); not modified.
    rain_mm_h
        The forecast rain (mm/h, scalar or per cell), constant over the horizon: the nowcast
        passes persistence, the last hour's mean intensity at each gauge, interpolated.
    horizon_s
        How far ahead (s), 60 minutes by default.

    Returns
    -------
    Forecast
        Depth now and at the horizon; the maxima over the horizon are those of the forecast
        alone (reset at the state's time), not of the event so far.
    """
    if not horizon_s > 0:
        raise ValueError("horizon_s must be positive")
    now: FloatArray
    if state is None:
        now = np.zeros(model.bed.shape, dtype=model.dtype)
        start = None
    else:
        now = state.depth.copy()
        # Maxima of the look-ahead alone: what the next hour brings, not the event's peak.
        start = FloodState(
            time_s=state.time_s, depth=state.depth, qx=state.qx, qy=state.qy,
            hmax_m=state.hmax_m, max_depth=state.depth.astype(np.float32),
            time_of_max_s=np.full(state.shape, state.time_s, dtype=np.float32),
            max_velocity=np.zeros(state.shape, dtype=np.float32),
            max_hazard=np.zeros(state.shape, dtype=np.float32),
            time_to_threshold_s=state.time_to_threshold_s, volumes_m3=dict(state.volumes_m3),
            steps=state.steps,
        )  # fmt: skip
    result = model.run(start, duration_s=horizon_s, rain_mm_h=rain_mm_h)
    return Forecast(
        now_depth=now, horizon_depth=result.depth, horizon_max_depth=result.max_depth,
        horizon_s=float(horizon_s), result=result,
    )  # fmt: skip
