"""The inflows of a flood run in compiled code: their volumes over a step, and the step whose
stability bound counts the depth they add (:func:`twin.sim.flood.simulate`, ``inflow_cfl``).

Why: that step is found by bisection, twelve halvings and a volume of every inflow at each, on
every step of a run fed by a strong inflow; in Python (:meth:`twin.sim.rain.Series.integral`)
that was a tenth of a millisecond a step, as much as the sweep of a small wet area. The
arithmetic here is :class:`~twin.sim.rain.Series`' own, operation for operation (no fused
multiply-add), so the volumes and the steps are the same bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

from twin.sim.flood_kernels import G

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")

Packed = tuple[np.ndarray, ...]


def pack(inflows: Sequence[Any], cell_area: float) -> Packed:
    """The inflows' hydrographs as flat arrays: ``(times, values, cum, start, linear, hold,
    area)``; inflow ``i``'s breakpoints are ``start[i]:start[i + 1]``, ``area`` the area (m²)
    of its cells."""
    series = [f.discharge for f in inflows]
    start = np.zeros(len(series) + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(s.times_s) for s in series])
    cat = lambda arrs: np.concatenate(arrs) if arrs else np.zeros(0)  # noqa: E731
    return (
        cat([s.times_s for s in series]), cat([s.values for s in series]),
        cat([s._cum for s in series]), start,
        np.array([s.interp != "step" for s in series], dtype=np.bool_),
        np.array([s.hold_last for s in series], dtype=np.bool_),
        np.array([len(f.rows) * cell_area for f in inflows], dtype=np.float64),
    )  # fmt: skip


@_jit
def _cumulative(times, values, cum, linear, hold, t):
    """:meth:`Series._cumulative` of one series."""
    if t <= times[0]:
        return 0.0
    n = len(times)
    if t >= times[n - 1]:
        tail = values[n - 1] * (t - times[n - 1]) if hold else 0.0
        return cum[n - 1] + tail
    k = np.searchsorted(times, t, side="right") - 1
    dt = t - times[k]
    if not linear:
        return cum[k] + values[k] * dt
    slope = (values[k + 1] - values[k]) / (times[k + 1] - times[k])
    return cum[k] + dt * (values[k] + 0.5 * slope * dt)


@_jit
def volume(i, t0, t1, times, values, cum, start, linear, hold, area):
    """Inflow ``i``'s volume (m³) over ``[t0, t1]``: :meth:`Series.integral`."""
    a, b = start[i], start[i + 1]
    tt, vv, cc = times[a:b], values[a:b], cum[a:b]
    return _cumulative(tt, vv, cc, linear[i], hold[i], t1) - _cumulative(
        tt, vv, cc, linear[i], hold[i], t0
    )


@_jit
def _bound(step, t, hmax, courant_m, hmin, times, values, cum, start, linear, hold, area):
    add = -math.inf
    for i in range(len(area)):
        add = max(
            add, volume(i, t, t + step, times, values, cum, start, linear, hold, area) / area[i]
        )
    return courant_m / math.sqrt(G * max(hmax + max(add, 0.0), hmin))


@_jit
def inflow_step(dt, t, hmax, courant_m, hmin, times, values, cum, start, linear, hold, area):
    """The step (s), at most ``dt``, whose stability bound holds for the depth after the
    inflows of that step (see :func:`twin.sim.flood.simulate`): ``courant_m`` is ``alpha dx``
    (m), ``hmax`` the largest depth (m) now, ``hmin`` the least depth the bound takes."""
    args = (t, hmax, courant_m, hmin, times, values, cum, start, linear, hold, area)
    lo = _bound(dt, *args)
    if lo >= dt:
        return dt
    # The bound grows as the step shrinks: lo is stable; bisect towards the largest stable step.
    hi = dt
    for _ in range(12):
        mid = 0.5 * (lo + hi)
        if _bound(mid, *args) >= mid:
            lo = mid
        else:
            hi = mid
    return lo
