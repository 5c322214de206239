"""A lake at rest over rough terrain: a flat water surface over a random bed whose peaks stand
above it (dry islands, wet/dry edges everywhere), no rain, no inflow, closed edges.

The exact solution is the initial state for ever ("C-property", Bermúdez & Vázquez 1994): the
surface slope is zero on every face between wet cells, and a face to a dry cell whose bed is
above the water has a flow depth of zero. So any change is round-off: the bound is 1e-12 m
(about 1e4 ulps of a 1 m depth in float64) and 1e-9 m/s.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.validation.lake_at_rest
"""

from __future__ import annotations

import numpy as np

from benchmarks.validation.result import CaseResult, Metric
from twin.sim.flood import simulate

ROUND_OFF_M = 1e-12
ROUND_OFF_M_S = 1e-9


def rough_bed(rows: int, cols: int, seed: int = 25) -> np.ndarray:
    """Bed (m): uniform noise in [0, 1] m cell by cell (no smoothing: the roughest bed there is)
    plus a gentle swell, so that wet basins, islands and single dry peaks all occur."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols]
    return rng.uniform(0.0, 1.0, (rows, cols)) + 0.5 * np.sin(x / 7.0) * np.cos(y / 5.0)


def run(
    rows: int = 120,
    cols: int = 160,
    dx: float = 1.0,
    level: float = 0.8,
    duration_s: float = 3600.0,
    manning: float = 0.0,
    theta: float = 0.8,
) -> CaseResult:
    """Run the case; ``manning`` 0 is frictionless, the hardest setting (nothing damps)."""
    bed = rough_bed(rows, cols)
    depth0 = np.maximum(level - bed, 0.0)
    r = simulate(
        bed,
        dx=dx,
        duration_s=duration_s,
        initial_depth=depth0,
        manning=manning,
        theta=theta,
        velocity_min_depth_m=0.0,
    )
    wet = depth0 > 0
    level_err = float(np.abs(r.depth[wet] + bed[wet] - level).max())
    depth_err = float(np.abs(r.depth - depth0).max())
    vmax = float(np.nanmax(r.max_velocity))
    why = "round-off: the initial state is the exact solution"
    return CaseResult(
        case="lake_at_rest",
        settings={
            "grid": f"{rows} x {cols}",
            "dx_m": dx,
            "level_m": level,
            "duration_s": duration_s,
            "manning": manning,
            "theta": theta,
            "wet_share": float(wet.mean()),
        },
        metrics={
            "max level change (wet cells)": Metric(level_err, ROUND_OFF_M, "m", why),
            "max depth change": Metric(depth_err, ROUND_OFF_M, "m", why),
            "max velocity": Metric(vmax, ROUND_OFF_M_S, "m/s", why),
        },
        curves={
            "bed_row": (np.arange(cols) * dx, bed[rows // 2]),
            "level_row": (np.arange(cols) * dx, (r.depth + bed)[rows // 2]),
        },
        wall_s=r.wall_s,
        steps=r.steps,
    )


if __name__ == "__main__":
    res = run()
    for k, m in res.metrics.items():
        print(
            f"{k}: {m.value:.3e} {m.unit} (bound {m.tolerance:.0e}) {'ok' if m.passed else 'FAIL'}"
        )
