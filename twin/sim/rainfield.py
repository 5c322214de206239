"""A rain field from rain gauges: inverse-distance weighting over the flood grid.

The nowcast (:mod:`twin.sim.nowcast`) rains on each cell what the gauges around it measured
over the last window. Each gauge gives one reading for the window, an intensity (mm/h) or the
depth (mm) that fell in it; a gauge whose last reading is older than ``max_age_s`` is dropped
(a dead or disconnected gauge must not keep raining its last value). Between gauges the field
is the inverse-distance weighted mean (Shepard 1968)

    i(x) = sum_k w_k i_k / sum_k w_k,    w_k = 1 / d_k^p,

with ``d_k`` the distance (m) from the cell's centre to gauge ``k`` and the power ``p`` 2 by
default (the usual choice for rain; larger powers give flatter plateaus around each gauge).
The field is exact at a gauge: a cell whose centre is a gauge's position gets that gauge's
reading (the mean of the readings of gauges sharing it). It never leaves the range of the
readings, and with one gauge it is that gauge's reading everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Unit = Literal["mm/h", "mm"]


class NoGaugesError(ValueError):
    """No gauge has a reading fresh enough to build a field from."""


@dataclass(frozen=True)
class GaugeReading:
    """One gauge's reading over the window.

    Attributes
    ----------
    gauge
        The gauge's name (its sensor code).
    x_m, y_m
        Position (m) in the flood grid's CRS.
    value
        Intensity (mm/h) or depth (mm) over the window, as ``unit`` says; >= 0.
    unit
        ``"mm/h"`` (mean intensity over the window) or ``"mm"`` (depth that fell in it).
    last_seen
        Time of the gauge's latest reading (timezone-aware).
    """

    gauge: str
    x_m: float
    y_m: float
    value: float
    unit: Unit
    last_seen: datetime


@dataclass(frozen=True)
class RainField:
    """The field and how it was made.

    Attributes
    ----------
    intensity_mm_h
        Rain intensity (mm/h) per cell, ``(rows, cols)``, float64.
    used
        The gauges that went into it, in the order given.
    stale
        The gauges dropped because their last reading was older than ``max_age_s``.
    power
        The inverse-distance power used.
    """

    intensity_mm_h: FloatArray
    used: tuple[str, ...]
    stale: tuple[str, ...]
    power: float

    @property
    def mean_mm_h(self) -> float:
        return float(self.intensity_mm_h.mean()) if self.intensity_mm_h.size else 0.0


def idw(
    x_m: npt.ArrayLike,
    y_m: npt.ArrayLike,
    gauge_x_m: npt.ArrayLike,
    gauge_y_m: npt.ArrayLike,
    values: npt.ArrayLike,
    *,
    power: float = 2.0,
) -> FloatArray:
    """Inverse-distance weighted values at points ``(x_m, y_m)`` (any matching shapes).

    Parameters
    ----------
    x_m, y_m
        Where to interpolate (m).
    gauge_x_m, gauge_y_m
        The gauges' positions (m), one each, at least one gauge.
    values
        The gauges' values (any unit: the result has it).
    power
        The power ``p`` of the weights ``1 / d^p`` (> 0).

    Returns
    -------
    numpy.ndarray
        The weighted mean at each point (float64, the points' shape); at a point that is a
        gauge's position, that gauge's value (the mean of those of every gauge there).
    """
    if not power > 0 or not math.isfinite(power):
        raise ValueError(f"power must be a positive number, not {power}")
    gx = np.asarray(gauge_x_m, dtype=np.float64).ravel()
    gy = np.asarray(gauge_y_m, dtype=np.float64).ravel()
    v = np.asarray(values, dtype=np.float64).ravel()
    if not len(gx) == len(gy) == len(v) or len(v) == 0:
        raise ValueError("idw needs one position and one value per gauge, at least one gauge")
    x = np.asarray(x_m, dtype=np.float64)
    y = np.asarray(y_m, dtype=np.float64)
    x, y = np.broadcast_arrays(x, y)
    num = np.zeros(x.shape)
    den = np.zeros(x.shape)
    exact_sum = np.zeros(x.shape)
    exact_n = np.zeros(x.shape)
    half = power / 2
    # One gauge at a time: memory stays at a few grids whatever the number of gauges.
    for k in range(len(v)):
        d2 = (x - gx[k]) ** 2 + (y - gy[k]) ** 2
        at = d2 == 0
        with np.errstate(divide="ignore"):
            w = np.where(at, 0.0, 1.0 / np.where(at, 1.0, d2) ** half)
        num += w * v[k]
        den += w
        exact_sum += np.where(at, v[k], 0.0)
        exact_n += at
    out: FloatArray = np.where(exact_n > 0, exact_sum / np.maximum(exact_n, 1), 0.0)
    far = exact_n == 0
    out[far] = num[far] / den[far]
    return out


def cell_centres(
    transform: Sequence[float], shape: tuple[int, int]
) -> tuple[FloatArray, FloatArray]:
    """``(x, y)`` (m) of every cell centre of a north-up grid, each ``shape``; ``transform`` is
    rasterio's ``(a, b, c, d, e, f)``."""
    a, _, c0, _, e, f0 = (float(t) for t in tuple(transform)[:6])
    ny, nx = shape
    cols = c0 + a * (np.arange(nx) + 0.5)
    rows = f0 + e * (np.arange(ny) + 0.5)
    xx, yy = np.meshgrid(cols, rows)
    return xx, yy


def rain_field(
    readings: Sequence[GaugeReading],
    *,
    transform: Sequence[float],
    shape: tuple[int, int],
    window_s: float,
    as_of: datetime,
    max_age_s: float = 900.0,
    power: float = 2.0,
    if_none: Literal["error", "zero"] = "error",
) -> RainField:
    """The rain intensity field (mm/h) over a grid from the gauges' readings of one window.

    Parameters
    ----------
    readings
        One reading per gauge (see :class:`GaugeReading`).
    transform, shape
        The grid (rasterio's affine ``(a, b, c, d, e, f)``, north-up; ``(rows, cols)``), in the
        CRS of the gauges' positions.
    window_s
        Length of the window (s) the readings cover: a depth (mm) becomes an intensity
        ``depth / (window_s / 3600)``.
    as_of
        The end of the window (timezone-aware); a gauge's age is ``as_of - last_seen``.
    max_age_s
        Gauges whose last reading is older than this (s) are dropped as stale.
    power
        The inverse-distance power (default 2).
    if_none
        With no fresh gauge: ``"error"`` raises :class:`NoGaugesError` (default: an unknown
        rain is not a dry one), ``"zero"`` returns a zero field.

    Returns
    -------
    RainField
        The field, the gauges used and the stale ones.
    """
    if not window_s > 0:
        raise ValueError("window_s must be positive")
    if not max_age_s >= 0:
        raise ValueError("max_age_s must not be negative")
    if if_none not in ("error", "zero"):
        raise ValueError("if_none must be 'error' or 'zero'")
    used: list[GaugeReading] = []
    stale: list[str] = []
    for g in readings:
        if g.unit not in ("mm/h", "mm"):
            raise ValueError(f"gauge {g.gauge}: unit {g.unit!r} is neither mm/h nor mm")
        if not (math.isfinite(g.value) and g.value >= 0):
            raise ValueError(f"gauge {g.gauge}: value {g.value} must be a number >= 0")
        if not (math.isfinite(g.x_m) and math.isfinite(g.y_m)):
            raise ValueError(f"gauge {g.gauge}: position must be finite")
        if (as_of - g.last_seen).total_seconds() > max_age_s:
            stale.append(g.gauge)
        else:
            used.append(g)
    if not used:
        if if_none == "error":
            raise NoGaugesError(
                f"no rain gauge reported in the last {max_age_s:g} s before {as_of.isoformat()}"
                + (f" ({len(stale)} stale)" if stale else "")
            )
        return RainField(np.zeros(shape), (), tuple(stale), power)
    hours = window_s / 3600.0
    values = [g.value if g.unit == "mm/h" else g.value / hours for g in used]
    xx, yy = cell_centres(transform, shape)
    field = idw(xx, yy, [g.x_m for g in used], [g.y_m for g in used], values, power=power)
    return RainField(field, tuple(g.gauge for g in used), tuple(stale), power)
