"""The active region skips only what a step cannot change: the full sweep's result, bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from twin.sim.flood import Boundaries, FloodResult, Inflow, simulate
from twin.sim.rain import Series

MM_H = 1 / 3_600_000


def street_grid(rows: int = 48, cols: int = 64) -> np.ndarray:
    """Steep streets between raised blocks, falling to the south-east, with a pit."""
    y, x = np.mgrid[0:rows, 0:cols]
    bed = 20.0 - 0.04 * x - 0.03 * y + 0.2 * np.sin(x / 3.0)
    blocks = ((y % 12) > 3) & ((x % 16) > 5)
    bed[blocks] += 10.0
    bed[30:34, 40:44] -= 1.5
    return bed


def same(a: FloodResult, b: FloodResult) -> None:
    for name in ("depth", "max_depth", "time_of_max_s", "max_velocity", "max_hazard"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert np.array_equal(a.time_to_threshold_s, b.time_to_threshold_s, equal_nan=True)
    assert np.array_equal(a.probe_depth, b.probe_depth)
    assert a.steps == b.steps and a.volumes_m3 == b.volumes_m3


@pytest.mark.parametrize(
    "case",
    [
        {},  # a point inflow on dry ground, closed edges
        {"boundaries": Boundaries(south="open", east="open"), "froude_limit": 1.0},
        {"drainage_m_s": 5 * MM_H, "drop_weir": True},
        {"rain": Series(np.array([0.0, 60.0, 120.0]), np.array([50 * MM_H, 0.0, 0.0]))},
        # a drizzle that leaves a film below min_flow_depth_m: measured afresh after it
        {"rain": Series(np.array([0.0, 60.0, 120.0]), np.array([2 * MM_H, 0.0, 0.0]))},
        {"maxima_every_step": False, "dtype": np.float32},
    ],
)
def test_the_active_region_gives_the_full_sweeps_result_bit_for_bit(case: dict[str, Any]) -> None:
    bed = street_grid()
    pipe = Inflow(np.array([2, 2, 3]), np.array([3, 4, 3]), Series.constant(0.4))
    kw: dict[str, Any] = {
        "dx": 1.0, "duration_s": 240.0, "inflows": [pipe], "manning": 0.02,
        "probes": [(2, 3), (20, 30), (33, 43)], "output_interval_s": 30.0,
    } | case  # fmt: skip
    region = simulate(bed, **kw)
    full = simulate(bed, active_region=False, **kw)
    same(region, full)
    assert full.extra["swept_share"] == 1
    if case.get("rain") is None or case["rain"].values[0] < 10 * MM_H:
        # (after 50 mm/h every cell holds water: all are swept)
        assert region.extra["swept_share"] < 0.9  # it did skip cells


def test_a_grid_with_nothing_wet_and_no_rain_sweeps_nothing() -> None:
    r = simulate(np.zeros((20, 20)), dx=1.0, duration_s=60.0, initial_depth=1e-5)
    assert r.extra["swept_share"] == 0
    assert np.all(r.depth == 1e-5)
