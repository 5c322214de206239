"""Trip distribution: a doubly constrained gravity model with exponential deterrence.

``T_ij = a_i O_i b_j D_j exp(-beta c_ij)``: every zone sends exactly its productions ``O_i``
and receives exactly its attractions ``D_j`` (Furness balancing finds ``a`` and ``b``), and
``beta`` is calibrated so the mean trip cost equals an observed or target value (Hyman's
method, by bisection, since the mean cost falls monotonically as ``beta`` grows). Wilson (1970),
Ortúzar & Willumsen, *Modelling Transport*, ch. 5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Distribution:
    """Trips (per period) between zones, the deterrence ``beta`` (1/cost unit) and the mean cost.

    ``note`` says when the target mean could not be met (it lies outside what the zones' costs
    allow) and which end was used instead.
    """

    trips: FloatArray
    beta: float
    mean_cost: float
    balancing_iterations: int
    note: str = ""


def _furness(
    seed: FloatArray, origins: FloatArray, destinations: FloatArray, *, tol: float, max_iter: int
) -> tuple[FloatArray, int]:
    """Scale rows and columns of ``seed`` in turn until both margins match (relative ``tol``)."""
    a = np.ones(seed.shape[0])
    b = np.ones(seed.shape[1])
    total = max(float(origins.sum()), 1e-300)
    for it in range(1, max_iter + 1):
        row = seed @ b
        a = np.divide(origins, row, out=np.zeros_like(origins), where=row > 0)
        col = a @ seed
        b = np.divide(destinations, col, out=np.zeros_like(destinations), where=col > 0)
        trips = seed * a[:, None] * b[None, :]
        if np.abs(trips.sum(axis=1) - origins).sum() <= tol * total:
            return trips, it
    return seed * a[:, None] * b[None, :], max_iter


def gravity(
    productions: FloatArray,
    attractions: FloatArray,
    cost: FloatArray,
    *,
    target_mean_cost: float,
    tol: float = 1e-9,
    max_balancing: int = 2000,
    check_target: bool = True,
) -> Distribution:
    """Distribute ``productions`` over ``attractions`` with a calibrated exponential deterrence.

    Parameters
    ----------
    productions, attractions : (n,) arrays
        Trips leaving / arriving at each zone (per period). Attractions are rescaled to the
        productions' total, as a doubly constrained model needs.
    cost : (n, n) array
        Generalised cost between zones (minutes); ``inf`` where no path exists (no trips).
    target_mean_cost : float
        Mean trip cost (minutes) the distribution should reproduce (``inf`` with
        ``check_target=False``: no deterrence, the widest spread the margins allow).

    Returns
    -------
    Distribution
        Whose row sums equal ``productions`` and column sums the rescaled ``attractions``,
        wherever the cost matrix lets zones reach each other.
    """
    o = np.asarray(productions, dtype=np.float64)
    d = np.asarray(attractions, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    n = o.shape[0]
    if d.shape != (n,) or c.shape != (n, n):
        raise ValueError(f"productions, attractions and cost must be (n,), (n,), (n, n); n = {n}")
    if np.any(o < 0) or np.any(d < 0) or not (np.isfinite(o).all() and np.isfinite(d).all()):
        raise ValueError("productions and attractions must be finite and non-negative")
    if np.any(c < 0) or np.isnan(c).any():
        raise ValueError("costs must be non-negative (inf for unreachable pairs)")
    if check_target and not (0 < target_mean_cost < math.inf):
        raise ValueError("target_mean_cost must be positive")
    if o.sum() <= 0 or d.sum() <= 0:
        return Distribution(np.zeros((n, n)), 0.0, 0.0, 0)
    d = d * (o.sum() / d.sum())
    reach = np.isfinite(c)
    finite_c = np.where(reach, c, 0.0)

    def solve(beta: float) -> tuple[FloatArray, float, int, bool]:
        # Shift costs by each row's minimum before exponentiating: the row factor a_i absorbs
        # the shift, and large beta x cost no longer underflows to an all-zero row.
        shifted = finite_c - np.min(np.where(reach, c, np.inf), axis=1, initial=np.inf)[:, None]
        seed = np.where(reach, np.exp(-beta * np.where(reach, shifted, 0.0)), 0.0)
        # A beta too large for the margins (a zone's jobs reachable only through seeds that
        # underflowed) makes the balancing factors overflow: that beta is infeasible, not an
        # answer, and the search treats it as "too large".
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            trips, its = _furness(seed, o, d, tol=tol, max_iter=max_balancing)
        ok = bool(np.isfinite(trips).all()) and its < max_balancing
        total = trips.sum() if ok else 0.0
        mean = float((trips * finite_c).sum() / total) if total > 0 else 0.0
        return trips, mean, its, ok

    trips, mean, its, _ = solve(0.0)
    if mean <= target_mean_cost:
        note = (
            f"target mean cost {target_mean_cost:g} exceeds the {mean:.4g} reached with no "
            "deterrence: beta = 0 (trips spread as widely as the margins allow)"
            if check_target
            else ""
        )
        return Distribution(trips, 0.0, mean, its, note)
    # Invariant: beta = lo is feasible with a mean above the target (best = its solution);
    # hi is infeasible or has a mean at or below it.
    best = (trips, 0.0, mean, its)
    lo, hi = 0.0, 0.1
    t_hi, mean_hi, its_hi, ok_hi = solve(hi)
    while ok_hi and mean_hi > target_mean_cost and hi < 1e3:
        best = (t_hi, hi, mean_hi, its_hi)
        lo, hi = hi, hi * 4
        t_hi, mean_hi, its_hi, ok_hi = solve(hi)
    if ok_hi and mean_hi > target_mean_cost:
        note = (
            f"target mean cost {target_mean_cost:g} is below the {mean_hi:.4g} reachable: "
            f"beta capped at {hi:g}"
        )
        return Distribution(t_hi, hi, mean_hi, its_hi, note)
    best_below = (t_hi, hi, mean_hi, its_hi) if ok_hi else None
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        trips, mean, its, ok = solve(mid)
        if ok and abs(mean - target_mean_cost) <= 1e-6 * target_mean_cost:
            return Distribution(trips, mid, mean, its)
        if ok and mean > target_mean_cost:
            lo, best = mid, (trips, mid, mean, its)
        else:
            hi = mid
            if ok:
                best_below = (trips, mid, mean, its)
    if best_below is not None:
        return Distribution(*best_below)
    t, beta, m, it = best
    return Distribution(
        t, beta, m, it,
        f"target mean cost {target_mean_cost:g} is below the {m:.4g} that the margins allow "
        f"(zones must send and receive their totals): beta = {beta:.4g}, the largest feasible",
    )  # fmt: skip
