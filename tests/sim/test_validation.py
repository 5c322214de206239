"""The flood model against the analytic cases of benchmarks/validation/ (docs/validation/).

Each bound comes from the method's known accuracy or from the analysis in the case's module,
never from the code's own output; the grids are the small end of each case.
"""

from __future__ import annotations

import numpy as np

from benchmarks.validation import lake_at_rest, macdonald, thacker, wet_front


def test_a_lake_at_rest_over_rough_terrain_stays_at_rest_to_round_off() -> None:
    # The initial state is the exact solution (a flat surface, islands standing out of it), so
    # only round-off may move it: 1e-12 m, 1e-9 m/s; frictionless, where nothing would damp it.
    res = lake_at_rest.run(rows=40, cols=60, duration_s=1800.0)
    assert 0.2 < float(res.settings["wet_share"]) < 0.95  # wet/dry edges everywhere
    for name, m in res.metrics.items():
        assert m.passed, f"{name}: {m.value:.3e} {m.unit} over {m.tolerance:.0e}"
    assert res.steps > 1000


def test_the_wet_front_in_the_diffusive_regime_matches_hunters_solution() -> None:
    # u = 0.2 m/s: u²/g = 0.4 %, the regime of the zero-inertia solution. Bounds: 5 mm of RMSE
    # ("a few mm" for dx = 5 m, de Almeida et al. 2012) and the front within two cells.
    res = wet_front.run(n=0.01, u=0.2, dx=5.0)
    assert len(res.metrics) == 8
    for name, m in res.metrics.items():
        assert np.isfinite(m.tolerance)
        assert m.passed, f"{name}: {m.value:.4f} {m.unit} over {m.tolerance}"
    assert abs(float(res.settings["mass_error_rel"])) < 1e-12


def test_the_wet_front_at_one_metre_per_second_departs_by_the_neglected_inertia() -> None:
    # At u = 1 m/s the local acceleration is u²/g = 10 % of the pressure term Hunter's solution
    # drops: the model must converge to a profile that differs from it by that order, the same
    # on a coarse and a fine grid (a discretisation error would shrink with dx).
    coarse = wet_front.run(n=0.01, u=1.0, dx=10.0, duration_s=1800.0, times_s=(1800.0,))
    fine = wet_front.run(n=0.01, u=1.0, dx=5.0, duration_s=1800.0, times_s=(1800.0,))
    h0 = float(wet_front.exact(np.zeros(1), 1800.0, 0.01, 1.0)[0])
    for res in (coarse, fine):
        rel = float(res.settings["worst_rmse_m"]) / h0
        u2_g = 1.0**2 / wet_front.G
        assert 0.1 * u2_g < rel < u2_g
    assert float(fine.settings["worst_rmse_m"]) > 0.5 * float(coarse.settings["worst_rmse_m"])


def test_the_wet_front_matches_the_local_inertial_travelling_wave_behind_its_bore() -> None:
    # The local-inertial equation's own travelling wave (benchmarks/validation/wet_front.py) is
    # an exact solution of what the model solves: 5 mm of RMSE behind its bore, de Almeida et
    # al.'s "a few mm" for dx = 5 m; the smeared bore itself within 5 % of the distance run.
    res = wet_front.run(n=0.005, u=1.0, dx=5.0, duration_s=1800.0, times_s=(900.0, 1800.0),
                        local_inertial=True)  # fmt: skip
    held = [m for k, m in res.metrics.items() if k.startswith("RMSE behind")]
    assert len(held) == 2
    for m in held:
        assert m.passed, f"RMSE behind the bore {m.value:.4f} m over {m.tolerance} m"
    assert float(res.settings["worst_front_rel"]) < 0.05


def test_thackers_planar_oscillation_stays_within_the_dropped_advection() -> None:
    # eta = a/10: the advection the scheme drops is eps = 0.12 of the pressure term at the
    # probe; its level must follow Thacker's within 2 eps of its swing over a period.
    res = thacker.run(cells=100, eta=thacker.A / 10)
    m = res.metrics["probe level error (max)"]
    assert np.isfinite(m.tolerance)
    assert m.passed, f"probe level error {m.value:.4f} m over {m.tolerance:.4f} m"
    assert abs(float(res.settings["mass_error_rel"])) < 1e-12


def test_macdonalds_subcritical_channel_reaches_its_local_inertial_steady_state() -> None:
    # 1 cm on the local-inertial steady profile (first-order scheme, dx = 10 m still well
    # inside it); MacDonald's shallow-water profile within 1 cm plus the exact gap between the
    # two; at steady state the outflow balances the inflow.
    res = macdonald.run(dx=10.0, duration_s=7200.0)
    for name in ("RMSE vs local-inertial steady profile", "RMSE vs MacDonald (shallow water)"):
        m = res.metrics[name]
        assert m.passed, f"{name}: {m.value:.4f} m over {m.tolerance:.4f} m"
    assert abs(float(res.settings["outflow_over_inflow"]) - 1) < 0.01
