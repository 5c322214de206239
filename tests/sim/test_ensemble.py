"""The pure parts of a storm ensemble: the random rain field and exceedance probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from twin.sim.ensemble import Member, MemberGrid, exceedance, perturbation_field, rain_factor


def test_the_field_is_log_normal_with_mean_one_and_the_asked_spread() -> None:
    f = perturbation_field((400, 400), dx=5.0, seed=1, draw=0, sigma=0.3, length_m=0.0)
    # Uncorrelated cells: 160 000 samples of exp(0.3 z - 0.045), z ~ N(0, 1) exactly rescaled.
    assert np.log(f).std() == pytest.approx(0.3, rel=1e-9)
    assert np.log(f).mean() == pytest.approx(-0.045, abs=1e-9)
    assert f.mean() == pytest.approx(1.0, abs=0.005)  # E exp(N(-s²/2, s²)) = 1


def test_the_field_is_a_function_of_seed_and_draw_only() -> None:
    a = perturbation_field((50, 60), dx=10.0, seed=7, draw=2, sigma=0.5, length_m=100)
    b = perturbation_field((50, 60), dx=10.0, seed=7, draw=2, sigma=0.5, length_m=100)
    c = perturbation_field((50, 60), dx=10.0, seed=7, draw=3, sigma=0.5, length_m=100)
    assert a.tobytes() == b.tobytes() and not np.array_equal(a, c)


def test_a_longer_correlation_length_gives_smoother_fields() -> None:
    def neighbour_corr(length_m: float) -> float:
        z = np.log(perturbation_field((200, 200), dx=5.0, seed=3, draw=0, sigma=0.4,
                                      length_m=length_m))  # fmt: skip
        return float(np.corrcoef(z[:, :-1].ravel(), z[:, 1:].ravel())[0, 1])

    assert abs(neighbour_corr(0)) < 0.02
    # A Gaussian kernel of s cells correlates neighbours by exp(-1 / (4 s²)).
    assert neighbour_corr(50) == pytest.approx(np.exp(-1 / (4 * 10**2)), abs=0.01)


def test_rain_factor_is_the_uniform_factor_times_the_field() -> None:
    g = MemberGrid(bed=np.zeros((20, 30)), dx=5.0, manning=np.full((20, 30), 0.03),
                   drainage_m_s=0.0)  # fmt: skip
    assert rain_factor(g, Member(index=0, return_period_years=5, duration_s=600, factor=1.5)) == 1.5
    m = Member(index=1, return_period_years=5, duration_s=600, factor=2.0, seed=4, draw=1,
               sigma=0.2, length_m=20)  # fmt: skip
    field = perturbation_field((20, 30), dx=5.0, seed=4, draw=1, sigma=0.2, length_m=20)
    assert np.array_equal(rain_factor(g, m), 2.0 * field)


def test_exceedance_is_the_share_strictly_above_each_depth() -> None:
    maxima = np.array([[0.15, 0.31, np.nan], [0.16, 0.30, 0.0], [0.0, 0.5, 0.2], [0.2, 0.1, 0.0]])
    p = exceedance(maxima, (0.15, 0.30))
    assert p.tolist() == [[0.5, 0.75, 0.25], [0.0, 0.5, 0.0]]
    with pytest.raises(ValueError, match="at least one member"):
        exceedance(np.zeros((0, 3)))
