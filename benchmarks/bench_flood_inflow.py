"""A point inflow on a mostly dry urban grid: the active region against the full sweep.

The case of issue 25's real benchmark in shape only (synthetic, nothing copied): 416 x 321
cells of 1 m, streets falling 2-6 % between raised blocks, a steady 1.5 m³/s point inflow of
radius 2 m near the top, closed edges but for an open south edge, Manning's n 0.02, one hour.
Both runs are the same result bit for bit (checked here); the numbers are wall time, steps,
the share of cells swept, and the per-step time.

    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/bench_flood_inflow.py [--minutes 60] [--json] \
        [--landlab-python /tmp/landlab/bin/python]

With ``--landlab-python`` (a virtualenv with landlab: ``python3 -m venv /tmp/landlab &&
/tmp/landlab/bin/pip install landlab requireit==0.8.0``), the same case also runs through
landlab's ``OverlandFlow`` (``benchmarks/landlab_inflow_runner.py``: closed edges, the inflow's
volume added every ``--chunk-s``, the bed wet at 1e-5 m) and through this model with closed
edges too, in the same run: wall and CPU seconds of each for the same simulated time, and the
mean absolute difference of their max depths.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from twin.sim.flood import Boundaries, Inflow, cells_within, simulate
from twin.sim.rain import Series

HERE = Path(__file__).resolve().parent


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
    ap.add_argument("--landlab-python", default=None, help="python of a landlab virtualenv")
    ap.add_argument("--chunk-s", type=float, default=5.0, help="landlab's inflow interval (s)")
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
    if args.landlab_python:
        out["versus_landlab"] = versus_landlab(args.landlab_python, bed, inflow, kw, args.chunk_s)
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
    v = out.get("versus_landlab")
    if v:
        print(f"vs landlab (closed edges): twin {v['twin']['wall_s']} s wall "
              f"{v['twin']['cpu_s']} s CPU, landlab {v['landlab']['wall_s']} s wall "
              f"{v['landlab']['cpu_s']} s CPU: x{v['speedup_cpu']} by CPU, x{v['speedup_wall']} "
              f"by wall; max depth MAD {v['max_depth_mad_m'] * 100:.2f} cm")  # fmt: skip


def versus_landlab(python: str, bed: np.ndarray, inflow: Inflow, kw: dict, chunk_s: float) -> dict:
    """The case with closed edges through this model and landlab's OverlandFlow, in turn."""
    times = np.array([0.0, kw["duration_s"]])
    q = np.array([inflow.discharge.at(0.0), inflow.discharge.at(kw["duration_s"])])
    ours_kw = {**kw, "boundaries": Boundaries()}
    cpu = time.process_time()
    ours = simulate(bed, **ours_kw)
    ours_cpu = time.process_time() - cpu
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src, bed=bed, dx=kw["dx"], duration_s=kw["duration_s"], mannings_n=kw["manning"],
            inflow_rows=inflow.rows, inflow_cols=inflow.cols, q_times=times, q_values=q,
            probes=np.array([[int(inflow.rows[0]) + 30, int(inflow.cols[0])]]),
            output_s=kw["output_interval_s"], chunk_s=chunk_s,
        )  # fmt: skip
        subprocess.run([python, str(HERE / "landlab_inflow_runner.py"), str(src), str(dst)],
                       check=True)  # fmt: skip
        ll = dict(np.load(dst))
    ll_wall, ll_cpu = float(ll["wall_s"]), float(ll["cpu_s"])
    diff = np.abs(ours.max_depth - ll["max_depth"])
    wet = (ours.max_depth > 0.01) | (ll["max_depth"] > 0.01)
    return {
        "chunk_s": chunk_s,
        "twin": {"steps": ours.steps, "wall_s": round(ours.wall_s, 2), "cpu_s": round(ours_cpu, 2),
                 "swept_share": round(ours.extra["swept_share"], 3),
                 "mass_error_rel": ours.mass_error_rel},
        "landlab": {"wall_s": round(ll_wall, 2), "cpu_s": round(ll_cpu, 2)},
        "speedup_wall": round(ll_wall / ours.wall_s, 1),
        "speedup_cpu": round(ll_cpu / ours_cpu, 1),
        "max_depth_mad_m": round(float(diff.mean()), 4),
        "max_depth_mad_wet_m": round(float(diff[wet].mean()), 4),
        "wet_cells_twin": int((ours.max_depth > 0.01).sum()),
        "wet_cells_landlab": int((ll["max_depth"] > 0.01).sum()),
    }  # fmt: skip


if __name__ == "__main__":
    main()
