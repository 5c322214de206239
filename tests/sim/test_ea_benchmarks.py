"""The flood model on the UK Environment Agency tests 1, 2 and 4 (benchmarks/validation/ea_*.py,
docs/validation/), on grids coarser than the report's so that the file runs in seconds.

The expectations come from the bed and the hydrograph alone (fill-and-spill, saddle levels,
volumes) or from the published LISFLOOD-FP 8.0 runs of Test 4; the bounds are argued in each
case's module and widened here only where the coarser grid changes what can be resolved.
"""

from __future__ import annotations

import numpy as np

from benchmarks.validation import ea_common, ea_test1, ea_test2, ea_test4


def test_fill_and_spill_matches_a_hand_computed_cascade() -> None:
    # Two basins in a row, 1 m cells: [wall 3, basin 0 0, saddle 1, basin 0.5, wall 3]. Pouring
    # 2.5 m³ into the first fills it to the saddle (2 cells x 1 m = 2 m³) and sends 0.5 m³ on:
    # the second basin (one cell at 0.5 m) rises to 1.0 m, its own saddle being the wall.
    bed = np.array([[3.0, 0.0, 0.0, 1.0, 0.5, 3.0]])
    level = ea_common.pour(bed, (0, 1), 2.5, 1.0)
    assert np.allclose(level[0, 1:3], 1.0)
    assert np.isclose(level[0, 4], 1.0)
    assert np.isnan(level[0, 0]) and np.isnan(level[0, 3]) and np.isnan(level[0, 5])
    # Less than the first basin holds: a flat level over it, 0.6 m for 1.2 m³.
    part = ea_common.pour(bed, (0, 2), 1.2, 1.0)
    assert np.allclose(part[0, 1:3], 0.6) and np.isnan(part[0, 4])
    assert ea_common.spill_level(bed, (0, 1)) == 1.0


def test_gauges_on_cell_edges_average_the_cells_that_share_them() -> None:
    # 5 m cells on a 2000 m tall grid: y = 1000 m is the edge between rows 199 and 200, x = 50 m
    # the edge between columns 9 and 10.
    assert ea_common.gauge_cells(50.0, 1000.0, 5.0, (400, 200)) == [
        (199, 9), (199, 10), (200, 9), (200, 10),
    ]  # fmt: skip
    assert ea_common.gauge_cells(52.5, 997.5, 5.0, (400, 200)) == [(200, 10)]


def test_ea1_ridge_overtops_when_the_basin_is_full_and_the_depression_keeps_the_rest() -> None:
    # 10 m cells as in the report. The basin ends at its saddle and the depression at the
    # fill-and-spill level within 2 cm (the head left over the ridge 18 h after the inflow);
    # the ridge is overtopped within an output interval plus 2 cm of inflow over the basin.
    res = ea_test1.run(dx=10.0)
    for name, m in res.metrics.items():
        assert np.isfinite(m.tolerance)
        assert m.passed, f"{name}: {m.value:.4g} {m.unit} over {m.tolerance:.3g}"
    assert abs(float(res.settings["mass_error_rel"])) < 1e-12


def test_ea2_no_depression_ends_above_its_saddle_and_the_fed_one_is_full() -> None:
    # 40 m cells (the report's 20 m halved): the depressions are 500 m across, 12 cells, still
    # resolved. At rest no basin holds water above its lowest saddle, and the basin under the
    # inflow (51,000 m³, more than it holds) ends at its saddle: 2 cm, the head that drains
    # within the 48 h. The volume stays on the closed square.
    res = ea_test2.run(dx=40.0)
    held = {k: m for k, m in res.metrics.items() if np.isfinite(m.tolerance)}
    assert len(held) == 16
    for name, m in held.items():
        assert m.passed, f"{name}: {m.value:.4g} {m.unit} over {m.tolerance:.3g}"
    assert abs(float(res.settings["stored_over_inflow"]) - 1) < 1e-9
    assert int(res.settings["wet_gauges_model"]) >= 2  # the flood went beyond the first basin


def test_ea4_front_and_peaks_follow_the_published_local_inertial_run() -> None:
    # 20 m cells (the report's 5 m coarsened four times): peaks within 10 % of LISFLOOD-FP
    # 8.0's local-inertial run (Neal et al. 2012: within 10 % of the industry codes) and the
    # 2 cm arrival within 10 % of its time plus the time the front needs to cross one 20 m
    # cell, the resolution of a gridded front.
    res = ea_test4.run(dx=20.0, output_s=60.0)
    held = {k: m for k, m in res.metrics.items() if np.isfinite(m.tolerance)}
    assert len(held) == 12
    for name, m in held.items():
        assert m.passed, f"{name}: {m.value:.4g} {m.unit} over {m.tolerance:.3g}"
    assert abs(float(res.settings["mass_error_rel"])) < 1e-12
