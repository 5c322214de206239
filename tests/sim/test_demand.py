"""The gravity model: margins, calibrated mean cost and the exponential form."""

from __future__ import annotations

import numpy as np
import pytest

from twin.sim.demand import gravity


def _case(n: int = 6, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 10, (n, 2))
    cost = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) * 3 + 2  # minutes
    return rng.uniform(10, 100, n), rng.uniform(10, 100, n), cost


def test_margins_and_target_mean_are_met() -> None:
    o, d, c = _case()
    dist = gravity(o, d, c, target_mean_cost=12.0)
    np.testing.assert_allclose(dist.trips.sum(axis=1), o, rtol=1e-8)
    np.testing.assert_allclose(dist.trips.sum(axis=0), d * o.sum() / d.sum(), rtol=1e-6)
    assert (dist.trips * c).sum() / dist.trips.sum() == pytest.approx(12.0, rel=1e-5)
    assert dist.mean_cost == pytest.approx(12.0, rel=1e-5) and dist.beta > 0 and not dist.note


def test_trips_follow_the_exponential_deterrence() -> None:
    # The odds ratio T_ij T_kl / (T_il T_kj) does not depend on the balancing factors:
    # it must equal exp(-beta (c_ij + c_kl - c_il - c_kj)).
    o, d, c = _case(seed=5)
    dist = gravity(o, d, c, target_mean_cost=11.0)
    t, b = dist.trips, dist.beta
    i, j, k, l_ = 0, 1, 2, 3
    odds = t[i, j] * t[k, l_] / (t[i, l_] * t[k, j])
    assert odds == pytest.approx(np.exp(-b * (c[i, j] + c[k, l_] - c[i, l_] - c[k, j])), rel=1e-6)


def test_an_unreachable_target_falls_back_to_no_deterrence_and_says_so() -> None:
    o, d, c = _case()
    dist = gravity(o, d, c, target_mean_cost=1e6)
    # beta = 0: trips are independent of cost, T_ij = O_i D_j / total.
    expected = np.outer(o, d * o.sum() / d.sum()) / o.sum()
    np.testing.assert_allclose(dist.trips, expected, rtol=1e-9)
    assert dist.beta == 0 and "exceeds" in dist.note


def test_unreachable_pairs_get_no_trips() -> None:
    o, d, c = _case()
    c[0, 1] = np.inf
    dist = gravity(o, d, c, target_mean_cost=12.0)
    assert dist.trips[0, 1] == 0
    np.testing.assert_allclose(dist.trips.sum(axis=1), o, rtol=1e-8)


def test_no_people_no_trips_and_bad_input_is_named() -> None:
    o, d, c = _case()
    assert gravity(np.zeros(6), d, c, target_mean_cost=10).trips.sum() == 0
    with pytest.raises(ValueError, match="non-negative"):
        gravity(-o, d, c, target_mean_cost=10)
    with pytest.raises(ValueError, match=r"\(n, n\)"):
        gravity(o, d, c[:3], target_mean_cost=10)
    with pytest.raises(ValueError, match="target_mean_cost"):
        gravity(o, d, c, target_mean_cost=0)


def test_a_target_below_what_the_margins_allow_stays_finite_and_says_so() -> None:
    # Zone 1 holds most jobs and no workers: its jobs must be reached from 3 km away or more,
    # so no deterrence brings the mean below a floor. Computed here: every worker of zone 0
    # fills zone 0's 10 jobs scaled (9.6) and sends the rest 3 km; zones 2, 3 likewise.
    workers = np.array([120.0, 0.0, 40.0, 75.0])
    jobs = np.array([10.0, 200.0, 30.0, 5.0])
    x = np.array([0.0, 3.0, 6.0, 9.0])
    cost = np.abs(x[:, None] - x[None, :])
    with np.errstate(over="raise", invalid="raise"):  # no overflow reaches the caller
        dist = gravity(workers, jobs, cost, target_mean_cost=1.0)
    assert np.isfinite(dist.trips).all()
    assert dist.trips.sum(axis=1) == pytest.approx(workers, rel=1e-6)
    assert "below the" in dist.note and "margins allow" in dist.note
    scaled = jobs * workers.sum() / jobs.sum()
    assert dist.trips.sum(axis=0) == pytest.approx(scaled, rel=1e-6)
    # The floor: only zone 1's attractions (192 trips) must travel, at 3 km at least.
    assert dist.mean_cost >= 3.0 * scaled[1] / workers.sum() - 1e-9
