"""Bands of rows: one thread and two give the same flood, bit for bit, and the bands change
nothing that the active region or the border rows could make differ."""

from __future__ import annotations

import os
from typing import Any

import numba
import numpy as np
import pytest

from twin.sim.flood import Boundaries, FloodResult, Inflow, simulate
from twin.sim.flood_bands import BAND_ROWS
from twin.sim.rain import Series

MM_H = 1 / 3_600_000
# Only a one-core developer machine may skip; CI (two cores) must run it, so it fails there.
TWO = pytest.mark.skipif(
    numba.config.NUMBA_NUM_THREADS < 2 and not os.environ.get("CI"),
    reason="numba has one thread here (NUMBA_NUM_THREADS)",
)


def town(rows: int = 3 * BAND_ROWS + 11, cols: int = 57) -> np.ndarray:
    """Streets between raised blocks falling to the south-east, with pits, over several bands
    (the last one short)."""
    y, x = np.mgrid[0:rows, 0:cols]
    bed = 30.0 - 0.02 * x - 0.03 * y + 0.2 * np.sin(x / 3.0) * np.cos(y / 5.0)
    bed[((y % 14) > 4) & ((x % 16) > 5)] += 6.0
    bed[BAND_ROWS - 3 : BAND_ROWS + 2, 20:26] -= 1.0  # a pit across the first band border
    return bed


def identical(a: FloodResult, b: FloodResult) -> None:
    for name in ("depth", "max_depth", "time_of_max_s", "max_velocity", "max_hazard"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name
    assert np.array_equal(a.time_to_threshold_s, b.time_to_threshold_s, equal_nan=True)
    assert a.state is not None and b.state is not None
    assert np.array_equal(a.state.qx, b.state.qx) and np.array_equal(a.state.qy, b.state.qy)
    assert np.array_equal(a.probe_depth, b.probe_depth)
    assert a.steps == b.steps and a.volumes_m3 == b.volumes_m3


RAIN: dict[str, Any] = {
    "dx": 2.0, "duration_s": 240.0, "output_interval_s": 60.0, "initial_depth": 1e-5,
    "rain": Series(np.array([0.0, 150.0]), np.array([120 * MM_H, 0.0])),
    "boundaries": Boundaries(south="open", east="open"), "drainage_m_s": 3 * MM_H,
    "probes": [(BAND_ROWS - 1, 22), (BAND_ROWS, 22)],
}  # fmt: skip


@TWO
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("friction", ["vector", "face"])
def test_rain_one_thread_and_two_are_identical(dtype: type, friction: str) -> None:
    bed = town()
    one = simulate(bed, dtype=dtype, friction=friction, threads=1, **RAIN)  # type: ignore[arg-type]
    two = simulate(bed, dtype=dtype, friction=friction, threads=2, **RAIN)  # type: ignore[arg-type]
    assert one.max_depth[BAND_ROWS - 1 : BAND_ROWS + 1].max() > 0.02  # water at the border
    identical(one, two)
    assert abs(one.mass_error_rel) < (1e-12 if dtype == np.float64 else 1e-6)


def inflow_case(bed: np.ndarray) -> dict[str, Any]:
    rows, cols = np.array([8, 8, 9, 9]), np.array([2, 3, 2, 3])  # on a street, near the top
    hydro = Series(np.array([0.0, 60.0, 400.0]), np.array([0.0, 0.8, 0.2]))
    return {
        "dx": 1.0, "duration_s": 420.0, "inflows": [Inflow(rows, cols, hydro, "pipe")],
        "manning": 0.02, "froude_limit": 1.0, "boundaries": Boundaries(south="open"),
        "output_interval_s": 30.0, "probes": [(BAND_ROWS, 3)],
    }  # fmt: skip


@TWO
def test_point_inflow_one_thread_and_two_are_identical() -> None:
    """The active region grows row by row across the band borders, so bands of one row and
    regions starting inside a band are swept too; and with two threads the full sweep's result
    is the region's, volumes included."""
    bed = town()
    kw = inflow_case(bed)
    one = simulate(bed, threads=1, **kw)
    two = simulate(bed, threads=2, **kw)
    full = simulate(bed, threads=2, active_region=False, **kw)
    assert (one.max_depth[2 * BAND_ROWS :] > 0.01).any()  # the water crossed two borders
    assert one.extra["swept_share"] < 0.9
    identical(one, two)
    identical(two, full)


def test_threads_checked() -> None:
    bed = town(20, 20)
    for bad in (0, numba.config.NUMBA_NUM_THREADS + 1):
        with pytest.raises(ValueError, match="threads"):
            simulate(bed, dx=1.0, duration_s=1.0, threads=bad)


@TWO
def test_a_storm_over_part_of_the_grid_one_thread_and_two_are_identical() -> None:
    """Rain on a band of the grid only: the region spans a band border and starts inside a
    band; one thread, two and the full sweep agree bit for bit."""
    bed = town()
    y, _ = np.mgrid[0 : bed.shape[0], 0 : bed.shape[1]]
    field = ((y > BAND_ROWS - 20) & (y < BAND_ROWS + 15)).astype(np.float64)
    kw = RAIN | {"rain_factor": field}
    one = simulate(bed, threads=1, **kw)
    two = simulate(bed, threads=2, **kw)
    full = simulate(bed, threads=2, active_region=False, **kw)
    assert one.extra["swept_share"] < 0.75
    identical(one, two)
    identical(two, full)
