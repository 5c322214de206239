"""Carrying the flood state from run to run: a chain of short runs is one long run."""

from __future__ import annotations

import numpy as np
import pytest

from twin.sim.flood import Boundaries, simulate
from twin.sim.flood_state import FloodState
from twin.sim.nowcast import NowcastModel, advance, forecast
from twin.sim.rain import Series

MM_H = 1 / 3_600_000  # m/s per mm/h


def sloped_bed(rows: int = 30, cols: int = 40) -> np.ndarray:
    # A valley falling east with a bump: water runs, ponds and leaves through the east edge.
    y, x = np.mgrid[0:rows, 0:cols]
    return (
        0.02 * (cols - x)
        + 0.3 * np.exp(-((x - 20) ** 2 + (y - 15) ** 2) / 30.0)
        + 0.01 * ((y - rows / 2) ** 2) / rows
    )


KW = dict(
    dx=5.0, manning=0.03, drainage_m_s=10 * MM_H, boundaries=Boundaries(east="open"),
    probes=[(15, 30)],
)  # fmt: skip
# 60 mm/h for four minutes, then 20 mm/h: the change falls inside the first 5-minute step.
RAIN = Series(np.array([0.0, 240.0]), np.array([60.0, 20.0]) * MM_H, hold_last=True)
STATE_ARRAYS = ("depth", "qx", "qy", "max_depth", "time_of_max_s", "max_velocity", "max_hazard",
                "time_to_threshold_s")  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_two_five_minute_steps_are_one_ten_minute_run_bit_for_bit(dtype: type) -> None:
    bed = sloped_bed()
    # The long run has an output at 300 s, so its adaptive step lands on the boundary too.
    whole = simulate(bed, duration_s=600.0, rain=RAIN, output_interval_s=300.0, dtype=dtype, **KW)
    first = simulate(bed, duration_s=300.0, rain=RAIN, dtype=dtype, **KW)
    assert first.state is not None and first.state.time_s == 300.0
    second = simulate(
        bed, duration_s=300.0, rain=RAIN, dtype=dtype, initial_state=first.state, **KW
    )
    a, b = whole.state, second.state
    assert a is not None and b is not None
    assert b.time_s == a.time_s == 600.0
    for name in STATE_ARRAYS:
        np.testing.assert_array_equal(getattr(b, name), getattr(a, name), err_msg=name)
    assert b.hmax_m == a.hmax_m
    assert b.steps == a.steps == first.steps + second.steps
    assert b.volumes_m3 == a.volumes_m3
    assert second.volumes_m3 == whole.volumes_m3
    assert second.mass_error_rel == whole.mass_error_rel
    np.testing.assert_array_equal(second.max_depth, whole.max_depth)
    np.testing.assert_array_equal(second.time_to_threshold_s, whole.time_to_threshold_s)
    # Times are on the chain's clock: the second run's outputs and probes start at 300 s.
    assert second.output_times_s.tolist() == [300.0, 600.0]
    assert second.probe_depth[-1, 0] == whole.probe_depth[-1, 0]
    assert second.probe_depth[0, 0] == first.probe_depth[-1, 0]
    # Something happened: water ran off the east edge and drained.
    assert a.volumes_m3["outflow"] > 0 and a.volumes_m3["drained"] > 0


def test_without_an_output_at_the_boundary_the_long_run_strides_over_it() -> None:
    # Why the boundary must be an output time: a step across 300 s is not two steps.
    # max_dt_s 7 s, which 300 s is no multiple of: on this thin film the step is mostly that
    # cap, and with the 10 s default a long run can land on 300 s by chance (it does with the
    # vector friction), which would leave nothing to show.
    bed = sloped_bed()
    kw = dict(KW, max_dt_s=7.0)
    whole = simulate(bed, duration_s=600.0, rain=RAIN, **kw)
    first = simulate(bed, duration_s=300.0, rain=RAIN, **kw)
    second = simulate(bed, duration_s=300.0, rain=RAIN, initial_state=first.state, **kw)
    assert whole.state is not None and second.state is not None
    assert np.abs(second.state.depth - whole.state.depth).max() > 0
    # Different steps, the same physics: the same water, spread a little differently (the
    # truncation error of 10 s steps over a thin film; mm at the open edge here).
    stored = [float(s.depth.sum()) * 25.0 for s in (second.state, whole.state)]
    assert stored[0] == pytest.approx(stored[1], rel=0.05)
    assert abs(second.mass_error_rel) < 1e-12 and abs(whole.mass_error_rel) < 1e-12


def test_mass_is_conserved_across_steps() -> None:
    bed = sloped_bed()
    model = NowcastModel(bed, dx=5.0, drainage_m_s=5 * MM_H)
    field_mm_h = np.linspace(10.0, 50.0, bed.size).reshape(bed.shape)
    state = None
    for _ in range(4):
        r = advance(model, state, window_s=300.0, rain_mm_h=field_mm_h)
        state = r.state
    assert state is not None and state.time_s == 1200.0
    v = state.volumes_m3
    # The rain by hand: the field (mm/h) over 20 minutes on 25 m² cells.
    rain = float(field_mm_h.sum()) / 1000 * (1200 / 3600) * 25.0
    assert v["rain"] == pytest.approx(rain, rel=1e-12)
    stored = float(state.depth.sum(dtype=np.float64)) * 25.0
    balance = v["initial"] + v["rain"] + v["inflow"] - v["drained"] - v["infiltrated"]
    balance -= v["outflow"]
    assert abs(stored - balance) / rain < 1e-12
    assert abs(r.mass_error_rel) < 1e-12
    assert v["outflow"] > 0


def test_a_rain_factor_of_one_is_uniform_rain_bit_for_bit() -> None:
    bed = sloped_bed()
    plain = simulate(bed, duration_s=300.0, rain=RAIN, **KW)
    ones = simulate(bed, duration_s=300.0, rain=RAIN, rain_factor=np.ones(bed.shape), **KW)
    np.testing.assert_array_equal(ones.depth, plain.depth)
    assert ones.volumes_m3 == plain.volumes_m3
    # A field puts its own rain on each cell: twice the factor on the west half, none east.
    factor = np.zeros(bed.shape)
    factor[:, :20] = 2.0
    r = simulate(bed, duration_s=300.0, rain=RAIN, rain_factor=factor, **KW)
    by_hand = (60 * 240 + 20 * 60) / 3600 / 1000 * 2.0 * 30 * 20 * 25.0  # m³
    assert r.volumes_m3["rain"] == pytest.approx(by_hand, rel=1e-12)


def test_forecast_looks_ahead_without_touching_the_state() -> None:
    bed = sloped_bed()
    model = NowcastModel(bed, dx=5.0, drainage_m_s=5 * MM_H)
    state = advance(model, None, window_s=600.0, rain_mm_h=40.0).state
    assert state is not None
    copies = {name: getattr(state, name).copy() for name in STATE_ARRAYS}
    volumes = dict(state.volumes_m3)
    f = forecast(model, state, rain_mm_h=40.0, horizon_s=3600.0)
    for name, before in copies.items():
        np.testing.assert_array_equal(getattr(state, name), before, err_msg=name)
    assert state.volumes_m3 == volumes and state.time_s == 600.0
    np.testing.assert_array_equal(f.now_depth, state.depth)
    assert f.result.state is not None and f.result.state.time_s == 4200.0
    # An hour more of the same rain: more water on the ground than now.
    assert f.horizon_depth.sum() > f.now_depth.sum()
    assert np.nanmax(f.horizon_max_depth) >= f.horizon_depth.max() - 1e-7
    # The step after the forecast goes on from the observed state, as if there had been none.
    nxt = advance(model, state, window_s=300.0, rain_mm_h=40.0)
    alone = advance(model, FloodState.from_bytes(state.to_bytes()), window_s=300.0, rain_mm_h=40.0)
    assert nxt.state is not None and alone.state is not None
    np.testing.assert_array_equal(nxt.state.depth, alone.state.depth)
    # No rain ahead: the water drains and runs off.
    dry = forecast(model, state, rain_mm_h=0.0, horizon_s=3600.0)
    assert dry.horizon_depth.sum() < f.now_depth.sum()


def test_the_state_survives_serialisation_exactly() -> None:
    bed = sloped_bed()
    r = simulate(bed, duration_s=120.0, rain=RAIN, dtype=np.float32, **KW)
    assert r.state is not None
    back = FloodState.from_bytes(r.state.to_bytes())
    for name in STATE_ARRAYS:
        a, b = getattr(back, name), getattr(r.state, name)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert (back.time_s, back.hmax_m, back.steps, back.volumes_m3) == (
        r.state.time_s, r.state.hmax_m, r.state.steps, r.state.volumes_m3,
    )  # fmt: skip
    with pytest.raises(ValueError, match="not a flood state"):
        FloodState.from_bytes(b"nonsense")


def test_a_state_of_another_grid_is_refused() -> None:
    r = simulate(sloped_bed(), duration_s=60.0, rain=RAIN, **KW)
    with pytest.raises(ValueError, match=r"initial_state.depth has shape \(30, 40\)"):
        simulate(sloped_bed(20, 40), duration_s=60.0, initial_state=r.state, dx=5.0)
    with pytest.raises(ValueError, match="exclude each other"):
        simulate(sloped_bed(), duration_s=60.0, initial_state=r.state, initial_depth=0.1, dx=5.0)
