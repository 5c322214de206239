"""A point inflow on a mostly dry urban grid: the active region against the full sweep.

The case of issue 25's real benchmark in shape only (synthetic, nothing copied): 416 x 321
cells of 1 m, streets falling 2-6 % between raised blocks, a steady 1.5 m³/s point inflow of
radius 2 m near the top, closed edges but for an open south edge, Manning's n 0.02, one hour.
Both runs are the same result bit for bit (checked here); the numbers are wall time, steps,
the share of cells swept, and the per-step time.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_flood_inflow.py [--minutes 60] [--json]
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from twin.sim.flood import Boundaries, Inflow, cells_within, simulate
from twin.sim.rain import Series


def urban_slope(rows: int = 416, cols: int = 321, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Bed (m) and the raised-building mask of a steep synthetic town."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    slope = 0.02 + 0.04 * np.exp(-(((y - 80) / 90) ** 2))  # steepest near the inflow
    ground = 60.0 - np.cumsum(slope, axis=0) - 0.01 * x + 0.3 * np.sin(x / 23) * np.cos(y / 31)
    ground += rng.normal(0, 0.01, ground.shape)
    blocks = ((y % 40) > 8) & ((x % 36) > 7)
    return ground + 8.0 * blocks, blocks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    bed, blocks = urban_slope()
    transform = (1.0, 0.0, 0.0, 0.0, -1.0, float(bed.shape[0]))
    rows, cols = cells_within(bed.shape, transform, 160.5, bed.shape[0] - 20.5, 2.0,
                              open_cells=~blocks)  # fmt: skip
    inflow = Inflow(rows, cols, Series.constant(1.5), "pipe")
    kw = {"dx": 1.0, "duration_s": args.minutes * 60, "inflows": [inflow], "manning": 0.02,
          "boundaries": Boundaries(south="open"), "froude_limit": 1.0,
          "output_interval_s": 60.0}  # fmt: skip
    simulate(bed[:40, :40], dx=1.0, duration_s=5, inflows=[Inflow(rows[:1] % 40, cols[:1] % 40,
             Series.constant(0.1))])  # compile outside the clock  # fmt: skip
    out = {}
    runs = {}
    for name, flag in (("full_sweep", False), ("active_region", True)):
        r = simulate(bed, active_region=flag, **kw)  # type: ignore[arg-type]
        runs[name] = r
        out[name] = {
            "steps": r.steps, "wall_s": round(r.wall_s, 2),
            "ms_per_step": round(1000 * r.wall_s / r.steps, 3),
            "cell_steps_per_s": round(r.cell_steps_per_s),
            "swept_share": round(r.extra["swept_share"], 3),
            "mass_error_rel": r.mass_error_rel,
        }  # fmt: skip
    a, b = runs["full_sweep"], runs["active_region"]
    out["bit_for_bit"] = bool(np.array_equal(a.depth, b.depth)) and bool(
        np.array_equal(a.max_depth, b.max_depth, equal_nan=True)
    )
    out["speedup"] = round(a.wall_s / b.wall_s, 2)
    out["grid"] = f"{bed.shape[0]}x{bed.shape[1]}"
    out["wet_share_at_end"] = round(float((b.depth > 0.01).mean()), 3)
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for name in ("full_sweep", "active_region"):
        o = out[name]
        rate = o["cell_steps_per_s"] / 1e6
        print(f"{name}: {o['steps']} steps, {o['wall_s']} s, {o['ms_per_step']} ms/step, "
              f"{rate:.1f} M cell-steps/s, swept {o['swept_share']:.0%}")  # fmt: skip
    print(f"speed-up x{out['speedup']}, identical: {out['bit_for_bit']}, "
          f"wet at the end {out['wet_share_at_end']:.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
