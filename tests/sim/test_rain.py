"""Hyetographs and hydrographs: exact integrals and the Chicago design storm."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.sim.rain import Series, StormFormula, chicago_storm


def test_step_and_linear_series_integrate_exactly() -> None:
    step = Series(np.array([0.0, 10.0, 30.0]), np.array([2.0, 5.0, 0.0]))
    assert step.integral(0, 30) == pytest.approx(2 * 10 + 5 * 20)
    assert step.integral(5, 15) == pytest.approx(2 * 5 + 5 * 5)
    assert step.integral(30, 100) == 0
    lin = Series(np.array([0.0, 10.0]), np.array([0.0, 4.0]), "linear")
    assert lin.integral(0, 10) == pytest.approx(20.0)  # triangle
    assert lin.integral(0, 5) == pytest.approx(5.0)
    assert lin.at(2.5) == pytest.approx(1.0)
    assert Series.constant(3.0).integral(100, 110) == pytest.approx(30.0)


def test_series_refuses_bad_times() -> None:
    with pytest.raises(ValueError, match="increase"):
        Series(np.array([0.0, 0.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="finite"):
        Series(np.array([0.0, 1.0]), np.array([1.0, np.nan]))


def test_chicago_storm_total_equals_the_formula_depth() -> None:
    # Beijing zone I: q = 2001 (1 + 0.811 lg P) / (t + 8)^0.711 L/(s·ha), t in minutes.
    P, T = 50.0, 120.0
    q = 2001 * (1 + 0.811 * math.log10(P)) / (T + 8) ** 0.711  # L/(s·ha), mean over T
    expected_mm = q * T * 60 / 10_000  # L/ha -> mm (1 mm over 1 ha is 10,000 L)
    storm = chicago_storm(return_period_years=P, duration_min=T, peak_ratio=0.4)
    total_mm = storm.integral(0, T * 60) * 1000
    assert total_mm == pytest.approx(expected_mm, rel=1e-9)
    assert StormFormula().depth_mm(T, P) == pytest.approx(expected_mm, rel=1e-9)
    # The peak block sits at the peak ratio and is the largest.
    peak_time = storm.times_s[int(np.argmax(storm.values))]
    assert abs(peak_time / 60 - 0.4 * T) <= 1.0


def test_chicago_storm_windows_hold_the_formula_depth_for_their_length() -> None:
    # Keil & Chu's property: a window of length tau around the peak (split r : 1 - r) holds
    # the formula's depth for duration tau.
    P, T, r = 10.0, 180.0, 0.5
    storm = chicago_storm(return_period_years=P, duration_min=T, peak_ratio=r, step_min=1.0)
    tau = 60.0
    depth = storm.integral((r * T - r * tau) * 60, (r * T + (1 - r) * tau) * 60) * 1000
    assert depth == pytest.approx(StormFormula().depth_mm(tau, P), rel=1e-9)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"return_period_years": 0, "duration_min": 60},
        {"return_period_years": 5, "duration_min": -1},
        {"return_period_years": 5, "duration_min": 60, "peak_ratio": 1.0},
    ],
)
def test_chicago_storm_refuses_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        chicago_storm(**kwargs)
