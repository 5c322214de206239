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


def storm_cell(shape: tuple[int, int], r: float, c: float, radius: float) -> np.ndarray:
    """A rain factor of 1 inside ``radius`` cells of ``(r, c)``, 0 beyond (a storm cell)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    return (np.hypot(y - r, x - c) <= radius).astype(np.float64)


@pytest.mark.parametrize(
    "case",
    [
        {},
        # (with sinks any water counts as wet: start dry, not from a film)
        {
            "drainage_m_s": 5 * MM_H,
            "boundaries": Boundaries(south="open", east="open"),
            "initial_depth": 0.0,
        },
        {"maxima_every_step": False, "dtype": np.float32},
        {"inflows": [Inflow(np.array([40]), np.array([60]), Series.constant(0.2))]},
    ],
)
def test_a_storm_over_part_of_the_grid_sweeps_its_box_bit_for_bit(case: dict[str, Any]) -> None:
    """Rain on a storm cell in the north-west: while it rains the region is the cell's box (and
    the runoff's), not the grid; after it, the film is measured afresh."""
    bed = street_grid()
    field = storm_cell(bed.shape, 10.0, 12.0, 8.0)
    kw: dict[str, Any] = {
        "dx": 1.0, "duration_s": 300.0, "manning": 0.02, "rain_factor": field,
        "rain": Series(np.array([0.0, 120.0, 180.0]), np.array([80 * MM_H, 20 * MM_H, 0.0])),
        "probes": [(10, 12), (30, 30)], "output_interval_s": 30.0, "initial_depth": 1e-5,
    } | case  # fmt: skip
    region = simulate(bed, **kw)
    full = simulate(bed, active_region=False, **kw)
    assert region.max_depth[field == 0].max() > 0.01  # runoff left the storm cell
    same(region, full)
    if case.get("maxima_every_step", True) and not case.get("inflows"):
        # the storm cell's box is 17 x 17 of 48 x 64 cells: most of the grid is never swept
        assert region.extra["swept_share"] < 0.5
    assert abs(region.mass_error_rel) < (1e-12 if kw.get("dtype") is None else 1e-6)
