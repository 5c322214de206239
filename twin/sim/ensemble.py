"""Storm ensembles on one grid: members, their rain perturbations and exceedance probabilities.

An ensemble runs the same ground (bed, roughness, drainage) under many storms: design storms of
several return periods and durations, each with the rain multiplied by a factor, uniform or a
seeded random field. Every member is a pure function of the grid and its own parameters, so a
member computed on a Dask worker (:mod:`twin.runs.ensemble_cluster`) is bit for bit the member
computed here, and members can run in any order on any machine with the same libraries.

A random perturbation is a log-normal multiplicative field with mean 1,

    f(x) = exp(sigma z(x) - sigma² / 2),

where ``z`` is white noise (from ``numpy.random.default_rng([seed, draw])``) smoothed by a
Gaussian kernel of standard deviation ``length_m`` (periodic edges) and standardised over the
grid (mean 0, variance 1): rain cells of about that size, heavier in some places and lighter
in others, the storm's total unchanged on average. ``sigma`` is the standard deviation of ``log f``.

The exceedance probability of a depth ``d`` at a place is the share of members whose maximum
depth there is strictly greater than ``d`` (members are equally likely: the probability is
conditional on the ensemble's storms, not an annual one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from twin.sim.flood import Boundaries, simulate
from twin.sim.rain import Series, chicago_storm

FloatArray = npt.NDArray[np.float64]

#: The depths whose exceedance an ensemble reports (m): slowed and closed roads
#: (``twin.runs.flood.ROAD_SLOWED_M`` and ``ROAD_CLOSED_M``).
THRESHOLDS_M = (0.15, 0.30)


@dataclass(frozen=True)
class MemberGrid:
    """The ground every member runs on (what the client scatters to the workers once).

    Attributes
    ----------
    bed
        Bed elevation (m), buildings raised.
    dx
        Cell size (m).
    manning
        Manning's n (s/m^(1/3)) per cell.
    drainage_m_s
        Drainage capacity (m/s), scalar or per cell.
    active
        Cells that take part (None: all).
    """

    bed: FloatArray
    dx: float
    manning: FloatArray
    drainage_m_s: FloatArray | float
    active: npt.NDArray[np.bool_] | None = None


@dataclass(frozen=True)
class Member:
    """One storm of an ensemble.

    Attributes
    ----------
    index
        Position in the ensemble (0-based).
    return_period_years, duration_s, peak_ratio
        The Chicago design storm (:func:`twin.sim.rain.chicago_storm`).
    after_s
        Simulated time after the rain stops (s).
    factor
        Multiplicative factor of the rain (dimensionless, > 0), uniform over the grid.
    seed, draw
        With ``sigma > 0``: the random perturbation field's generator is
        ``default_rng([seed, draw])``.
    sigma
        Standard deviation of the log of the random factor (dimensionless; 0: no field).
    length_m
        Correlation length of the random field (m): the smoothing kernel's standard deviation.
    dtype
        ``"float64"`` or ``"float32"``.
    """

    index: int
    return_period_years: float
    duration_s: float
    after_s: float = 1800.0
    peak_ratio: float = 0.4
    factor: float = 1.0
    seed: int = 0
    draw: int = 0
    sigma: float = 0.0
    length_m: float = 0.0
    dtype: str = "float64"

    @property
    def total_s(self) -> float:
        return self.duration_s + self.after_s

    def rain(self) -> Series:
        """The member's design storm (m/s), before the factor."""
        return chicago_storm(
            return_period_years=self.return_period_years,
            duration_min=self.duration_s / 60,
            peak_ratio=self.peak_ratio,
        )

    def label(self) -> str:
        text = f"T{self.return_period_years:g}y {self.duration_s / 60:g}min x{self.factor:g}"
        if self.sigma > 0:
            text += f" field(seed {self.seed}/{self.draw}, sigma {self.sigma:g})"
        return text


@dataclass(frozen=True)
class MemberMaxima:
    """What a member sends back: its maximum depth per cell (m, in the model's storage dtype)
    and a few totals."""

    index: int
    max_depth: npt.NDArray[np.floating]
    steps: int
    wall_s: float
    mass_error_rel: float
    rain_m3: float


def perturbation_field(
    shape: tuple[int, int], *, dx: float, seed: int, draw: int, sigma: float, length_m: float
) -> FloatArray:
    """A log-normal rain factor field with mean 1 (dimensionless), see the module docstring.

    Parameters
    ----------
    shape
        Grid shape (rows, cols).
    dx
        Cell size (m).
    seed, draw
        The generator is ``numpy.random.default_rng([seed, draw])``.
    sigma
        Standard deviation of ``log f`` (dimensionless, >= 0; 0 gives ones).
    length_m
        Smoothing kernel's standard deviation (m, >= 0; 0: uncorrelated cells).
    """
    if sigma < 0 or length_m < 0 or not (dx > 0):
        raise ValueError("sigma and length_m must be >= 0 and dx > 0")
    if sigma == 0:
        return np.ones(shape)
    z = np.random.default_rng([seed, draw]).standard_normal(shape)
    if length_m > 0:
        z = ndimage.gaussian_filter(z, sigma=length_m / dx, mode="wrap")
    z = z - z.mean()
    sd = float(z.std())
    z = z / sd if sd > 0 else np.zeros(shape)
    return np.exp(sigma * z - sigma * sigma / 2)


def rain_factor(grid: MemberGrid, member: Member) -> FloatArray | float:
    """The member's rain factor: its uniform factor, times its random field if it has one."""
    if member.sigma == 0:
        return float(member.factor)
    field = perturbation_field(
        grid.bed.shape, dx=grid.dx, seed=member.seed, draw=member.draw,
        sigma=member.sigma, length_m=member.length_m,
    )  # fmt: skip
    return member.factor * field


def run_member(grid: MemberGrid, member: Member) -> MemberMaxima:
    """Run one member on ``grid``: the model options of a storm run on the twin
    (``twin.runs.flood``: open edges, output every 1% of the run, 15 cm arrival threshold).

    Returns its maximum depth (m) per cell, NaN where inactive."""
    total = member.total_s
    result = simulate(
        grid.bed,
        dx=grid.dx,
        duration_s=total,
        rain=member.rain(),
        rain_factor=rain_factor(grid, member),
        manning=grid.manning,
        drainage_m_s=grid.drainage_m_s,
        active=grid.active,
        boundaries=Boundaries.all("open"),
        output_interval_s=max(total / 100, 1.0),
        threshold_m=THRESHOLDS_M[0],
        dtype=np.float32 if member.dtype == "float32" else np.float64,
    )
    return MemberMaxima(
        index=member.index,
        max_depth=result.max_depth,
        steps=result.steps,
        wall_s=result.wall_s,
        mass_error_rel=result.mass_error_rel,
        rain_m3=result.volumes_m3.get("rain", math.nan),
    )


def exceedance(maxima: npt.ArrayLike, thresholds_m: Sequence[float] = THRESHOLDS_M) -> FloatArray:
    """Share of members whose maximum depth is strictly above each threshold.

    Parameters
    ----------
    maxima
        Maximum depths (m), members along the first axis; NaN counts as dry.
    thresholds_m
        Depths (m).

    Returns
    -------
    Probabilities in [0, 1], shape ``(len(thresholds_m), *maxima.shape[1:])``.
    """
    m = np.nan_to_num(np.asarray(maxima, dtype=np.float64), nan=0.0)
    if m.ndim < 1 or m.shape[0] == 0:
        raise ValueError("exceedance needs at least one member")
    return np.stack([(m > t).sum(axis=0) / m.shape[0] for t in thresholds_m])
