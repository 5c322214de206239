"""The flood solver against analytic answers: rest, mass, planar wave, symmetry, filling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

from twin.sim.flood import Boundaries, Inflow, cells_within, simulate
from twin.sim.rain import Series

MM_H = 1 / 3_600_000  # m/s per mm/h


def bumpy_bed(rows: int = 40, cols: int = 50) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    return 0.5 * np.sin(x / 5.0) * np.cos(y / 7.0)


def bowl(rows: int = 41, cols: int = 51) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    return ((x - (cols - 1) / 2) ** 2 + (y - (rows - 1) / 2) ** 2) / 150.0


def test_lake_at_rest_over_a_bumpy_bed_stays_at_rest() -> None:
    # Water at 0.3 m over bumps from -0.5 to 0.5 m: some emerge (dry islands), some are under.
    bed = bumpy_bed()
    depth0 = np.maximum(0.3 - bed, 0.0)
    assert (depth0 == 0).any() and (depth0 > 0).any()
    r = simulate(bed, dx=2.0, duration_s=900.0, initial_depth=depth0)
    level = np.where(depth0 > 0, r.depth + bed, 0.3)
    assert np.abs(level - 0.3).max() < 1e-12
    assert np.abs(r.depth - depth0).max() < 1e-12
    assert np.nanmax(r.max_velocity) < 1e-9
    assert r.steps > 100


def test_closed_basin_stores_exactly_the_rain_that_fell() -> None:
    bed = bowl()
    rain = Series(np.array([0.0, 600.0, 1200.0]), np.array([80.0, 20.0, 0.0]) * MM_H)
    r = simulate(bed, dx=5.0, duration_s=1800.0, rain=rain)
    expected = (80 * 600 + 20 * 600) / 3600 / 1000 * 5.0 * 5.0 * bed.size  # m³, by hand
    assert r.volumes_m3["rain"] == pytest.approx(expected, rel=1e-12)
    assert r.volumes_m3["outflow"] == 0
    stored = float(r.depth.sum()) * 25.0
    assert abs(stored - expected) / expected < 1e-10
    assert abs(r.mass_error_rel) < 1e-10
    assert (r.depth >= -1e-12).all()


def test_planar_wave_front_matches_the_analytic_solution() -> None:
    # Hunter et al. (2005); de Almeida & Bates (2012): a front advancing at u over a flat
    # frictional plane has h(x, t) = [7/3 n² u² (u t - x)]^(3/7) behind it. Fed at x = 0 with
    # q = u h(0, t).
    n, u, dx, duration = 0.01, 0.4, 5.0, 3600.0
    rows, cols = 4, 400
    t = np.arange(0.0, duration + 1, 1.0)
    h0 = (7 / 3 * n**2 * u**3 * t) ** (3 / 7)
    inflow = Inflow(
        np.arange(rows), np.zeros(rows, dtype=np.intp), Series(t, u * h0 * dx * rows, "linear")
    )
    r = simulate(np.zeros((rows, cols)), dx=dx, duration_s=duration, inflows=[inflow], manning=n)
    x = (np.arange(cols) + 0.5) * dx
    exact = (7 / 3 * n**2 * u**2 * np.clip(u * duration - x, 0, None)) ** (3 / 7)
    near = x < 1.2 * u * duration
    rmse = float(np.sqrt(np.mean((r.depth[1][near] - exact[near]) ** 2)))
    assert rmse < 0.01
    # The front: dry well ahead of it, wet well behind it.
    assert r.depth[1][x > u * duration + 100].max() < 1e-3
    assert r.depth[1][x < u * duration - 100].min() > 0.05
    assert abs(r.mass_error_rel) < 1e-12


def test_a_symmetric_domain_stays_symmetric() -> None:
    bed = bowl() + 0.2 * np.cos(np.mgrid[0:41, 0:51][1] * np.pi / 25)
    r = simulate(bed, dx=5.0, duration_s=1200.0, rain=Series.constant(60 * MM_H))
    assert np.abs(r.depth - r.depth[:, ::-1]).max() < 1e-12
    assert np.abs(r.depth - r.depth[::-1, :]).max() < 1e-12
    assert np.nanmax(np.abs(r.max_depth - r.max_depth[:, ::-1])) < 1e-6


def test_a_closed_depression_fills_to_the_level_its_volume_implies() -> None:
    bed = bowl()
    volume = 4000.0  # m³ poured in as an inflow at the rim
    inflow = Inflow(
        np.array([0]), np.array([0]), Series(np.array([0.0, 200.0]), np.array([20.0, 20.0]))
    )
    r = simulate(bed, dx=5.0, duration_s=4 * 3600.0, inflows=[inflow], manning=0.05)
    assert r.volumes_m3["inflow"] == pytest.approx(volume, rel=1e-12)

    def excess(level: float) -> float:  # the level holding the volume, by bisection
        return float(np.clip(level - bed, 0, None).sum() * 25.0 - volume)

    level = brentq(excess, 0.0, 100.0, xtol=1e-9)
    wet = r.depth > 0.01
    assert np.abs(r.depth[wet] + bed[wet] - level).max() < 0.002
    assert not np.any(r.depth[bed > level + 0.01] > 0.001)


def test_open_boundary_lets_water_out_and_counts_it() -> None:
    rows, cols = 10, 60
    bed = np.tile(np.linspace(3.0, 0.0, cols), (rows, 1))  # slopes down to the east
    rain = Series(np.array([0.0, 600.0]), np.array([100.0, 0.0]) * MM_H)
    closed = simulate(bed, dx=5.0, duration_s=3600.0, rain=rain)
    opened = simulate(bed, dx=5.0, duration_s=3600.0, rain=rain, boundaries=Boundaries(east="open"))
    assert closed.volumes_m3["outflow"] == 0
    assert opened.volumes_m3["outflow"] > 0.5 * opened.volumes_m3["rain"]
    assert abs(opened.mass_error_rel) < 1e-10
    assert opened.depth[:, -1].max() < closed.depth[:, -1].max()


def test_drainage_takes_at_most_its_capacity_and_at_most_the_water() -> None:
    bed = np.zeros((5, 5))
    rain = Series(np.array([0.0, 3600.0]), np.array([30.0, 0.0]) * MM_H)
    r = simulate(bed, dx=10.0, duration_s=3600.0, rain=rain, drainage_m_s=20 * MM_H)
    # 30 mm/h in, 20 mm/h out over an hour: 10 mm left on a flat closed plate.
    assert r.depth == pytest.approx(np.full((5, 5), 0.010), abs=1e-9)
    assert r.volumes_m3["drained"] == pytest.approx(0.020 * 100 * 25, rel=1e-9)
    # Capacity above the rain: nothing stands, nothing goes negative.
    r = simulate(bed, dx=10.0, duration_s=3600.0, rain=rain, drainage_m_s=50 * MM_H)
    assert np.abs(r.depth).max() < 1e-15
    assert r.volumes_m3["drained"] == pytest.approx(r.volumes_m3["rain"], rel=1e-12)


def test_blocked_cells_take_no_water_and_report_nan() -> None:
    bed = np.zeros((9, 9))
    active = np.ones((9, 9), dtype=bool)
    active[3:6, 3:6] = False
    r = simulate(bed, dx=2.0, duration_s=600, rain=Series.constant(50 * MM_H), active=active)
    assert np.all(r.depth[~active] == 0)
    assert np.isnan(r.max_depth[~active]).all()
    assert abs(r.mass_error_rel) < 1e-10


def test_hazard_rating_and_threshold_time_on_a_still_pond() -> None:
    # Still water 0.5 m deep: v = 0, so HR = d * 0.5 + DF = 0.25 + 0.5 (0.25 < d <= 0.75).
    r = simulate(np.zeros((5, 5)), dx=1.0, duration_s=60, initial_depth=0.5)
    assert np.nanmax(r.max_hazard) == pytest.approx(0.75, abs=1e-6)
    assert np.all(r.time_to_threshold_s == 0)


def test_float32_runs_and_conserves_mass_to_its_precision() -> None:
    bed = bowl()
    r = simulate(bed, dx=5.0, duration_s=600, rain=Series.constant(60 * MM_H), dtype=np.float32)
    assert r.dtype == "float32"
    assert abs(r.mass_error_rel) < 1e-5


def test_float32_sinks_are_accounted_as_they_were_taken() -> None:
    """Uniform rain and drainage round every cell's update the same way in float32: unless the
    update is computed in float64 and the accounts hold what really left the cells, the error
    piles up (2e-6 here once) instead of staying at round-off."""
    bed = bumpy_bed(37, 53)
    for kw in ({"drainage_m_s": 1e-6}, {"drainage_m_s": 2e-6, "infiltration_m_s": 1e-6}):
        r = simulate(bed, dx=2.0, duration_s=900, rain=Series.constant(60 * MM_H),
                     dtype=np.float32, **kw)  # type: ignore[arg-type]  # fmt: skip
        assert r.volumes_m3["drained"] > 0
        assert abs(r.mass_error_rel) < 1e-7, (kw, r.mass_error_rel)


def test_probes_record_depth_at_every_output_time() -> None:
    r = simulate(
        np.zeros((4, 4)), dx=1.0, duration_s=100, rain=Series.constant(36 * MM_H),
        probes=[(1, 1), (2, 3)], output_interval_s=25,
    )  # fmt: skip
    assert list(r.output_times_s) == [0, 25, 50, 75, 100]
    # 36 mm/h = 0.01 mm/s on a closed flat plate: depth grows 0.25 mm per 25 s everywhere.
    assert r.probe_depth[:, 0] == pytest.approx([0, 2.5e-4, 5e-4, 7.5e-4, 1e-3], abs=1e-12)


def test_maxima_at_output_times_only_are_the_peaks_of_the_samples() -> None:
    """With ``maxima_every_step=False`` the state evolves exactly as before, and the max depth
    of a cell is the highest of its depths at the output times (read through the probes)."""
    bed = bowl()
    rain = Series(np.array([0.0, 200.0]), np.array([150 * MM_H, 0.0]))  # a burst, then drying
    cells = [(20, 25), (5, 5), (30, 40), (0, 0)]
    kw = {"dx": 2.0, "duration_s": 600, "rain": rain, "probes": cells, "output_interval_s": 60}
    every = simulate(bed, **kw)  # type: ignore[arg-type]
    sampled = simulate(bed, maxima_every_step=False, **kw)  # type: ignore[arg-type]
    assert np.array_equal(sampled.depth, every.depth)
    assert sampled.steps == every.steps
    for i, (r, c) in enumerate(cells):
        peaks = sampled.probe_depth[:, i]
        assert sampled.max_depth[r, c] == pytest.approx(peaks.max(), rel=1e-6)  # float32 maxima
        when = sampled.output_times_s[int(np.argmax(peaks))]
        assert sampled.time_of_max_s[r, c] == pytest.approx(when) or peaks.max() == peaks[0]
    assert np.all(sampled.max_depth <= every.max_depth)
    assert np.any(sampled.max_depth < every.max_depth)  # peaks between outputs are missed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bed": np.array([[0.0, np.nan]])}, "nodata"),
        ({"manning": -0.1}, "manning"),
        ({"probes": [(10, 0)]}, "outside"),
        ({"rain": Series.constant(-1.0)}, "negative"),
        ({"drainage_m_s": np.ones((3, 3))}, "shape"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(kwargs: dict, message: str) -> None:
    args = {"bed": np.zeros((2, 2)), "dx": 1.0, "duration_s": 10.0} | kwargs
    with pytest.raises(ValueError, match=message):
        simulate(**args)


def test_cells_within_a_radius() -> None:
    transform = (2.0, 0.0, 100.0, 0.0, -2.0, 200.0)
    rows, cols = cells_within((50, 50), transform, 121.0, 179.0, 3.0)
    centres_x = 100 + 2 * (cols + 0.5)
    centres_y = 200 - 2 * (rows + 0.5)
    assert np.all((centres_x - 121) ** 2 + (centres_y - 179) ** 2 <= 9)
    assert len(rows) == 9  # (121, 179) is a centre: it, 4 at 2 m and 4 at 2.83 m
    with pytest.raises(ValueError, match="outside"):
        cells_within((50, 50), transform, 0.0, 0.0, 3.0)
