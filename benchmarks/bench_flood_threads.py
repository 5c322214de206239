"""A whole city's grid (10 M cells and more) on one thread and on two: cell-steps/s of each, and
whether they give the same depths bit for bit (issue 21).

The DEM is ``benchmarks/flood.py``'s ``urban_dem`` (a plain falling 0.2 % eastward, undulations,
closed depressions), with each depression computed in a window of 5 sigma around it instead of
over the whole grid (what it adds beyond is under 4e-6 of its depth; the full-grid version takes
minutes to build at this size). 5 m cells, rain on a 5 cm film, closed edges, a short simulated
time; the runs alternate (1, 2, 1, 2, ...) so that a loaded machine weighs on both alike, and
each reports wall time and CPU time (all threads) of the run.

    NUMBA_NUM_THREADS=2 .venv/bin/python benchmarks/bench_flood_threads.py \
        [--size 3200] [--seconds 60] [--repeat 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from twin.sim.flood import FloodResult, simulate
from twin.sim.rain import Series


def city_dem(rows: int, cols: int, dx: float, seed: int = 7) -> np.ndarray:
    """``urban_dem`` of ``benchmarks/flood.py``, each depression cut at 5 sigma (m)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] * dx
    z = 20.0 - 0.002 * x + 0.4 * np.sin(x / 170.0) * np.cos(y / 230.0)
    del x, y
    for _ in range(max(3, rows * cols // 40_000)):
        cx, cy = rng.uniform(0, cols * dx), rng.uniform(0, rows * dx)
        depth, sigma = rng.uniform(0.8, 2.0), rng.uniform(30, 80)
        c0, c1 = max(int((cx - 5 * sigma) / dx), 0), min(int((cx + 5 * sigma) / dx) + 1, cols)
        r0, r1 = max(int((cy - 5 * sigma) / dx), 0), min(int((cy + 5 * sigma) / dx) + 1, rows)
        yy, xx = np.mgrid[r0:r1, c0:c1] * dx
        z[r0:r1, c0:c1] -= depth * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return z


def run(bed: np.ndarray, seconds: float, threads: int, dtype: type) -> tuple[FloodResult, float]:
    cpu = time.process_time()
    r = simulate(
        bed, dx=5.0, duration_s=seconds, rain=Series.constant(80 / 3.6e6), initial_depth=0.05,
        dtype=dtype, threads=threads,
    )  # fmt: skip
    return r, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=3200, help="grid side (cells)")
    ap.add_argument("--seconds", type=float, default=60.0, help="simulated time (s)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    dtype = np.float64 if args.dtype == "float64" else np.float32
    bed = city_dem(args.size, args.size, 5.0)
    for threads in (1, 2):  # compile outside the clock
        simulate(bed[:200, :50], dx=5.0, duration_s=5, rain=Series.constant(1e-5),
                 dtype=dtype, threads=threads)  # fmt: skip
    runs: dict[int, list[dict]] = {1: [], 2: []}
    depth: dict[int, np.ndarray] = {}
    for _ in range(args.repeat):
        for threads in (1, 2):
            r, cpu = run(bed, args.seconds, threads, dtype)
            depth[threads] = r.depth
            runs[threads].append({
                "steps": r.steps, "wall_s": round(r.wall_s, 2), "cpu_s": round(cpu, 2),
                "cell_steps_per_s": round(r.cell_steps_per_s),
                "cell_steps_per_cpu_s": round(r.steps * r.cells / cpu),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            })  # fmt: skip
            del r
    best = {k: max(v, key=lambda o: o["cell_steps_per_s"]) for k, v in runs.items()}
    out = {
        "grid": f"{args.size}x{args.size}", "cells": args.size * args.size,
        "dtype": args.dtype, "simulated_s": args.seconds, "runs": runs,
        "speedup_wall_best": round(best[2]["cell_steps_per_s"] / best[1]["cell_steps_per_s"], 2),
        "bit_for_bit": bool(np.array_equal(depth[1], depth[2])),
    }  # fmt: skip
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for k, v in runs.items():
        for o in v:
            print(f"{out['grid']} {args.dtype}, {k} thread(s): {o['steps']} steps, "
                  f"{o['wall_s']} s wall, {o['cpu_s']} s CPU, "
                  f"{o['cell_steps_per_s'] / 1e6:.0f} M cell-steps/s "
                  f"(load {o['load_avg_1min']})")  # fmt: skip
    print(f"two threads / one: x{out['speedup_wall_best']}, identical: {out['bit_for_bit']}")


if __name__ == "__main__":
    main()
