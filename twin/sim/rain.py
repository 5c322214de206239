"""Time series that drive simulations: rain hyetographs and inflow hydrographs.

A solver never samples a series at a point in time: it asks for the *amount* over a step
(:meth:`Series.integral`). Rain is a step function of intensity, a hydrograph is linear between
its points, and both integrate exactly, so the volume a run reports as "rain" is the volume it
put on the grid, whatever time steps the solver took.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

Interp = Literal["step", "linear"]

#: 1 mm/min of rain is 166.67 L/(s·ha): the factor between the two forms of storm-intensity
#: formulas used in Chinese drainage design (GB 50014).
MM_PER_MIN_TO_L_S_HA = 10_000 / 60


@dataclass(frozen=True)
class Series:
    """A value over time.

    Parameters
    ----------
    times_s
        Increasing times (s from the run's start), at least one.
    values
        Values at ``times_s``. For ``interp="step"`` value ``k`` holds on
        ``[times_s[k], times_s[k+1])``; for ``"linear"`` values are interpolated. The series is 0
        before the first time and after the last (unless ``hold_last``).
    interp
        ``"step"`` (rain intensity blocks) or ``"linear"`` (hydrographs).
    hold_last
        Keep the last value after the last time (a constant rate to the end of any run).
    """

    times_s: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    interp: Interp = "step"
    hold_last: bool = False

    def __post_init__(self) -> None:
        t = np.asarray(self.times_s, dtype=np.float64)
        v = np.asarray(self.values, dtype=np.float64)
        if t.ndim != 1 or t.shape != v.shape or len(t) == 0:
            raise ValueError("a series needs equal-length, non-empty times and values")
        if not np.all(np.isfinite(t)) or not np.all(np.isfinite(v)):
            raise ValueError("a series' times and values must be finite numbers")
        if np.any(np.diff(t) <= 0):
            raise ValueError("a series' times must increase strictly")
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "values", v)
        # Cumulative integral at each breakpoint: integral() is then two lookups.
        dt = np.diff(t)
        pieces = v[:-1] * dt if self.interp == "step" else 0.5 * (v[:-1] + v[1:]) * dt
        object.__setattr__(self, "_cum", np.concatenate([[0.0], np.cumsum(pieces)]))

    @classmethod
    def constant(cls, value: float) -> Series:
        """``value`` from time 0 for ever."""
        return cls(np.array([0.0]), np.array([float(value)]), "step", hold_last=True)

    @classmethod
    def from_pairs(
        cls, pairs: Sequence[tuple[float, float]], *, interp: Interp, scale: float = 1.0
    ) -> Series:
        """``[(time_s, value), ...]`` with values >= 0, multiplied by ``scale``."""
        if any(not float(v) >= 0 for _, v in pairs):
            raise ValueError("negative values: they must be numbers >= 0")
        return cls(
            np.array([float(t) for t, _ in pairs]),
            np.array([float(v) * scale for _, v in pairs]),
            interp,
        )

    @classmethod
    def from_csv(
        cls, path: Path, columns: tuple[str, str], *, interp: Interp, scale: float = 1.0
    ) -> Series:
        """Read ``columns`` (time in s, value) of a CSV file; values are multiplied by ``scale``.

        Raises ValueError naming the file and line: missing file or columns, a field that is not
        a number, a negative value, no rows, times that do not increase.
        """
        if not Path(path).is_file():
            raise ValueError(f"{path}: file not found")
        times: list[float] = []
        values: list[float] = []
        t_col, v_col = columns
        with Path(path).open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {t_col, v_col} <= set(reader.fieldnames):
                raise ValueError(f"{path}: needs the columns {t_col}, {v_col}")
            for line, row in enumerate(reader, start=2):
                try:
                    t, v = float(row[t_col]), float(row[v_col])
                except (TypeError, ValueError):
                    raise ValueError(f"{path} line {line}: not a number") from None
                if not v >= 0:
                    raise ValueError(f"{path} line {line}: negative {v_col} (must be >= 0)")
                times.append(t)
                values.append(v * scale)
        if not times:
            raise ValueError(f"{path}: no rows")
        try:
            return cls(np.array(times), np.array(values), interp)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    @property
    def end_s(self) -> float:
        return math.inf if self.hold_last else float(self.times_s[-1])

    def _cumulative(self, t: float) -> float:
        times, cum = self.times_s, self._cum  # type: ignore[attr-defined]
        if t <= times[0]:
            return 0.0
        if t >= times[-1]:
            tail = self.values[-1] * (t - times[-1]) if self.hold_last else 0.0
            return float(cum[-1] + tail)
        k = int(np.searchsorted(times, t, side="right")) - 1
        dt = t - times[k]
        if self.interp == "step":
            return float(cum[k] + self.values[k] * dt)
        slope = (self.values[k + 1] - self.values[k]) / (times[k + 1] - times[k])
        return float(cum[k] + dt * (self.values[k] + 0.5 * slope * dt))

    def integral(self, t0: float, t1: float) -> float:
        """The integral of the series over ``[t0, t1]`` (value unit x s)."""
        return self._cumulative(t1) - self._cumulative(t0)

    def at(self, t: float) -> float:
        """The value at time ``t`` (for reports; solvers use :meth:`integral`)."""
        times = self.times_s
        if t < times[0] or (t > times[-1] and not self.hold_last):
            return 0.0
        if self.interp == "linear":
            return float(np.interp(t, times, self.values))
        k = int(np.searchsorted(times, t, side="right")) - 1
        return float(self.values[min(k, len(times) - 1)])


@dataclass(frozen=True)
class StormFormula:
    """A storm-intensity formula ``i = A (1 + C lg P) / (t + b)^n``.

    ``i`` is the mean intensity (mm/min) over a duration ``t`` (min) for a return period ``P``
    (years). The defaults are Beijing's zone-I design formula,
    ``q = 2001 (1 + 0.811 lg P) / (t + 8)^0.711`` L/(s·ha), divided by 166.67 to give mm/min;
    use the formula of your own city (they are published with each city's drainage plan).
    """

    a_mm_min: float = 2001 / MM_PER_MIN_TO_L_S_HA
    c: float = 0.811
    b_min: float = 8.0
    n: float = 0.711

    def mean_intensity_mm_min(self, duration_min: float, return_period_years: float) -> float:
        a = self.a_mm_min * (1 + self.c * math.log10(return_period_years))
        return a / (duration_min + self.b_min) ** self.n

    def depth_mm(self, duration_min: float, return_period_years: float) -> float:
        """Total rain (mm) over ``duration_min`` at return period ``P``: ``i(t) * t``."""
        return self.mean_intensity_mm_min(duration_min, return_period_years) * duration_min


def chicago_storm(
    *,
    return_period_years: float,
    duration_min: float,
    peak_ratio: float = 0.4,
    step_min: float = 1.0,
    formula: StormFormula | None = None,
) -> Series:
    """A Chicago design storm (Keil & Chu 1957) as a step hyetograph of intensity (m/s).

    Every window around the peak holds the formula's depth for that window's length, so the
    total over the storm equals :meth:`StormFormula.depth_mm` for its duration.

    Parameters
    ----------
    return_period_years
        Return period P (years), at least 1 for the usual formulas.
    duration_min
        Storm duration (min).
    peak_ratio
        Position of the peak as a share of the duration, r in (0, 1); 0.3-0.5 is usual.
    step_min
        Length of each block (min); each block carries the exact depth of its interval.
    formula
        The storm-intensity formula (defaults to :class:`StormFormula`'s).

    Returns
    -------
    Series
        Intensity (m/s), step interpolation, from 0 to the storm's end, then zero.
    """
    if return_period_years <= 0:
        raise ValueError("return_period_years must be positive")
    if duration_min <= 0 or step_min <= 0:
        raise ValueError("duration_min and step_min must be positive")
    if not 0 < peak_ratio < 1:
        raise ValueError("peak_ratio must lie strictly between 0 and 1")
    f = formula or StormFormula()
    a = f.a_mm_min * (1 + f.c * math.log10(return_period_years))
    t_peak = peak_ratio * duration_min

    def window(tau: float) -> float:
        # Depth (mm) of the formula over a window of tau minutes around the peak.
        return a * tau / (tau + f.b_min) ** f.n if tau > 0 else 0.0

    def cumulative(t: float) -> float:
        # Depth (mm) from the start to t: the before-peak limb stretched by r, the after-peak
        # one by 1 - r (Keil & Chu's construction), written in integrated form.
        if t <= t_peak:
            return peak_ratio * (window(t_peak / peak_ratio) - window((t_peak - t) / peak_ratio))
        after = (t - t_peak) / (1 - peak_ratio)
        return peak_ratio * window(t_peak / peak_ratio) + (1 - peak_ratio) * window(after)

    n_steps = max(1, math.ceil(duration_min / step_min - 1e-9))
    edges = np.minimum(np.arange(n_steps + 1) * step_min, duration_min)
    depths = np.diff([cumulative(float(t)) for t in edges])
    intensity_m_s = depths / 1000.0 / (np.diff(edges) * 60.0)
    times = edges * 60.0
    return Series(times, np.append(intensity_m_s, 0.0), "step")


def mm_h(series_mm_h: Series) -> Series:
    """Convert a series in mm/h to m/s (what the solver takes)."""
    return Series(
        series_mm_h.times_s,
        series_mm_h.values / 3_600_000.0,
        series_mm_h.interp,
        series_mm_h.hold_last,
    )
