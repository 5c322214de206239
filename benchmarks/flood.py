"""The flood solver: cell-steps per second, and side by side with landlab's OverlandFlow.

Two parts in one run:

1. Throughput on a 1000 x 1000 grid (float64 and float32), one core: the target is 5e7
   cell-steps/s.
2. The same DEM and storm through this solver and landlab's ``OverlandFlow`` (the same
   de Almeida et al. 2012 scheme; landlab lives in its own virtualenv, given by
   ``--landlab-python``): cell-steps/s of each, wall time for the same simulated time, and
   agreement of the max depth (mean absolute difference over the grid).

    python3 -m venv /tmp/landlab && /tmp/landlab/bin/pip install landlab requireit==0.8.0
    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/flood.py \
        --landlab-python /tmp/landlab/bin/python [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from twin.sim.flood import simulate
from twin.sim.rain import Series

HERE = Path(__file__).resolve().parent


def urban_dem(rows: int, cols: int, dx: float, seed: int = 7) -> np.ndarray:
    """A gentle plain (0.2% fall to the east) with undulations and closed depressions (m)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols] * dx
    z = 20.0 - 0.002 * x + 0.4 * np.sin(x / 170.0) * np.cos(y / 230.0)
    for _ in range(max(3, rows * cols // 40_000)):
        cx, cy = rng.uniform(0, cols * dx), rng.uniform(0, rows * dx)
        z -= rng.uniform(0.8, 2.0) * np.exp(
            -((x - cx) ** 2 + (y - cy) ** 2) / (2 * rng.uniform(30, 80) ** 2)
        )
    return z


def throughput(n: int, seconds: float, friction: str = "vector") -> list[dict]:
    out = []
    bed = urban_dem(n, n, 5.0)
    rain = Series.constant(80 / 3.6e6)
    for dtype in (np.float64, np.float32):
        simulate(bed[:8, :8], dx=5.0, duration_s=5, dtype=dtype, friction=friction)  # compile
        r = simulate(
            bed,
            dx=5.0,
            duration_s=seconds,
            rain=rain,
            initial_depth=0.05,
            dtype=dtype,
            friction=friction,
        )
        out.append({
            "grid": f"{n}x{n}", "dtype": np.dtype(dtype).name, "steps": r.steps,
            "wall_s": round(r.wall_s, 2), "cell_steps_per_s": round(r.cell_steps_per_s),
            "mass_error_rel": r.mass_error_rel,
        })  # fmt: skip
    return out


def versus_landlab(python: str, n: int, minutes: float, rain_mm_h: float, manning: float) -> dict:
    dx, h_init = 5.0, 1e-5
    bed = urban_dem(n, n, dx)
    duration = minutes * 60
    rain_s = duration * 2 / 3
    rain = Series(np.array([0.0, rain_s]), np.array([rain_mm_h / 3.6e6, 0.0]))
    simulate(bed[:8, :8], dx=dx, duration_s=5)
    common = {"dx": dx, "duration_s": duration, "rain": rain, "manning": manning,
              "initial_depth": h_init, "alpha": 0.7, "theta": 0.8}  # fmt: skip
    # Our default: all five maxima (depth and its time, velocity, hazard, time to 15 cm)
    # after every step.
    ours = simulate(bed, **common)  # type: ignore[arg-type]
    # Like for like: landlab's runner takes the max depth every 30 s of simulated time.
    like = simulate(bed, maxima_every_step=False, output_interval_s=30.0, **common)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src, bed=bed, dx=dx, rain_m_s=rain_mm_h / 3.6e6, rain_s=rain_s, duration_s=duration,
            snapshot_s=30.0, mannings_n=manning, h_init=h_init,
        )  # fmt: skip
        subprocess.run([python, str(HERE / "landlab_runner.py"), str(src), str(dst)], check=True)
        ll = dict(np.load(dst))
    ll_steps, ll_wall = int(ll["steps"]), float(ll["wall_s"])
    ll_rate = ll_steps * bed.size / ll_wall
    diff = np.abs(ours.max_depth - ll["max_depth"])
    wet = (ours.max_depth > 0.01) | (ll["max_depth"] > 0.01)
    diff_like = np.abs(like.max_depth - ll["max_depth"])
    return {
        "grid": f"{n}x{n}", "cell_m": dx, "simulated_s": duration, "rain_mm_h": rain_mm_h,
        "rain_s": rain_s, "manning": manning,
        "twin": {"steps": ours.steps, "wall_s": round(ours.wall_s, 2),
                 "cell_steps_per_s": round(ours.cell_steps_per_s),
                 "alpha_effective": ours.extra["alpha_effective"],
                 "mass_error_rel": ours.mass_error_rel},
        "landlab": {"steps": ll_steps, "wall_s": round(ll_wall, 2),
                    "cell_steps_per_s": round(ll_rate)},
        "twin_maxima_every_30s": {"steps": like.steps, "wall_s": round(like.wall_s, 2),
                                  "cell_steps_per_s": round(like.cell_steps_per_s),
                                  "max_depth_mad_m": round(float(diff_like.mean()), 4)},
        "speedup_cell_steps": round(ours.cell_steps_per_s / ll_rate, 1),
        "speedup_cell_steps_like_for_like": round(like.cell_steps_per_s / ll_rate, 1),
        "speedup_wall": round(ll_wall / ours.wall_s, 1),
        "max_depth_mad_m": round(float(diff.mean()), 4),
        "max_depth_mad_wet_m": round(float(diff[wet].mean()), 4),
        "max_depth_p99_abs_diff_m": round(float(np.quantile(diff, 0.99)), 4),
        "max_depth_twin_m": round(float(ours.max_depth.max()), 3),
        "max_depth_landlab_m": round(float(ll["max_depth"].max()), 3),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--landlab-python", default=None, help="python of a landlab virtualenv")
    ap.add_argument("--size", type=int, default=1000, help="throughput grid side (cells)")
    ap.add_argument(
        "--friction",
        choices=("vector", "face"),
        default="vector",
        help="friction rule of the throughput runs (face: per-face, as landlab)",
    )
    ap.add_argument("--seconds", type=float, default=300.0, help="simulated time for throughput")
    ap.add_argument("--compare-size", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--rain-mm-h", type=float, default=100.0)
    ap.add_argument("--manning", type=float, default=0.03)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default")},
        "throughput": throughput(args.size, args.seconds, args.friction),
    }  # fmt: skip
    if args.landlab_python:
        result["versus_landlab"] = versus_landlab(
            args.landlab_python, args.compare_size, args.minutes, args.rain_mm_h, args.manning
        )
    result["total_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for t in result["throughput"]:
        rate = t["cell_steps_per_s"] / 1e6
        print(f"{t['grid']} {t['dtype']}: {rate:.1f} M cell-steps/s ({t['steps']} steps, "
              f"{t['wall_s']} s, mass error {t['mass_error_rel']:.1e})")  # fmt: skip
    v = result.get("versus_landlab")
    if v:
        print(f"vs landlab on {v['grid']}: twin {v['twin']['cell_steps_per_s'] / 1e6:.2f} M/s, "
              f"landlab {v['landlab']['cell_steps_per_s'] / 1e6:.2f} M/s "
              f"(x{v['speedup_cell_steps']} per cell-step, x{v['speedup_wall']} wall); max depth "
              f"MAD {v['max_depth_mad_m'] * 100:.2f} cm "
              f"(wet cells {v['max_depth_mad_wet_m'] * 100:.2f} cm); maxima every 30 s like "
              f"landlab: x{v['speedup_cell_steps_like_for_like']}")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
