"""The flood solver: cell-steps per second, and side by side with landlab's OverlandFlow.

Two parts in one run:

1. Throughput on a 1000 x 1000 grid (float64 and float32), one core: the target is 5e7
   cell-steps/s (``--skip-throughput`` leaves it out).
2. The same DEM and storm through this solver and landlab's ``OverlandFlow`` (the same
   de Almeida et al. 2012 scheme; landlab lives in its own virtualenv, given by
   ``--landlab-python``, and runs with its defaults): cell-steps/s of each, wall and CPU time
   for the same simulated time, and agreement of the max depth (mean absolute difference over
   the grid). Cell-steps are all cells x steps on both sides, whatever the twin skips.

   ``--case wet``: 100 mm/h over the whole 5 km x 5 km tile for 800 s, 1200 s simulated
   (every cell wet). ``--case partly-dry``: a 10-year, 20-minute Chicago design storm
   (Beijing's formula: 40.7 mm, peak 260 mm/h in 1-minute blocks) on a convective storm cell
   of 1 km radius tapering to nothing at 1.5 km (28 % of the tile gets rain, landlab gets the
   same field), 30 minutes simulated: the runoff runs east and gathers in depressions, and
   most of the tile stays dry. That is the usual shape of a cloudburst on a city tile: a
   convective cell is a few km across, the tile is fixed (and a nowcast's field, see
   ``twin.sim.nowcast``, is what falls on it). ``--case both`` runs the two.

    python3 -m venv /tmp/landlab && /tmp/landlab/bin/pip install landlab requireit==0.8.0
    NUMBA_NUM_THREADS=1 .venv/bin/python benchmarks/flood.py \
        --landlab-python /tmp/landlab/bin/python [--case partly-dry] [--json]
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
from twin.sim.rain import Series, chicago_storm

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


def storm_cell(rows: int, cols: int, centre: tuple[float, float], full: float, edge: float):
    """A storm cell's rain factor: 1 within ``full`` cells of ``centre`` (row, col), a cosine
    taper to exactly 0 at ``edge`` cells, 0 beyond (dimensionless)."""
    y, x = np.mgrid[0:rows, 0:cols]
    d = np.hypot(y - centre[0], x - centre[1])
    taper = 0.5 * (1 + np.cos(np.pi * np.clip((d - full) / (edge - full), 0, 1)))
    return np.where(d <= full, 1.0, np.where(d < edge, taper, 0.0))


def case_inputs(case: str, n: int, minutes: float, rain_mm_h: float) -> dict:
    """The DEM, rain and duration of a side-by-side case (see the module).

    ``wet``: ``rain_mm_h`` over the whole grid for the first two thirds of ``minutes``.
    ``partly-dry``: a 10-year, 20-minute Chicago design storm (Beijing's formula, 40.7 mm,
    peak 260 mm/h in 1-minute blocks) falling on a storm cell of 1 km radius (full) tapering to
    nothing at 1.5 km, centred 1.75 km from the west edge of the 5 km x 5 km tile (28 % of the
    cells get rain); the runoff runs east and gathers in the depressions; 30 minutes simulated.
    """
    dx = 5.0
    bed = urban_dem(n, n, dx)
    if case == "wet":
        duration = minutes * 60
        rain_s = duration * 2 / 3
        rain = Series(np.array([0.0, rain_s]), np.array([rain_mm_h / 3.6e6, 0.0]))
        return {"bed": bed, "dx": dx, "duration_s": duration, "rain": rain, "field": None}
    rain = chicago_storm(return_period_years=10, duration_min=20)
    field = storm_cell(n, n, (n / 2, 0.35 * n), 0.2 * n, 0.3 * n)
    return {"bed": bed, "dx": dx, "duration_s": 1800.0, "rain": rain, "field": field}


def _timed(bed: np.ndarray, **kw: object):  # type: ignore[no-untyped-def]
    cpu = time.process_time()
    r = simulate(bed, **kw)  # type: ignore[arg-type]
    return r, time.process_time() - cpu


def _ours(r, cpu: float) -> dict:  # type: ignore[no-untyped-def]
    return {"steps": r.steps, "wall_s": round(r.wall_s, 2), "cpu_s": round(cpu, 2),
            "cell_steps_per_s": round(r.cell_steps_per_s),
            "cell_steps_per_cpu_s": round(r.steps * r.cells / cpu),
            "swept_share": round(r.extra["swept_share"], 3),
            "mass_error_rel": r.mass_error_rel}  # fmt: skip


def versus_landlab(python: str, case: str, n: int, minutes: float, rain_mm_h: float,
                   manning: float) -> dict:  # fmt: skip
    """One case through the twin (maxima every step, the default; and every 30 s, like the
    landlab runner) and landlab, on the same DEM, rain and simulated time. Cell-steps are all
    cells x steps on both sides, whatever the twin's active region skips."""
    ci = case_inputs(case, n, minutes, rain_mm_h)
    bed, dx, duration, rain, field = ci["bed"], ci["dx"], ci["duration_s"], ci["rain"], ci["field"]
    h_init = 1e-5
    simulate(bed[:8, :8], dx=dx, duration_s=5)
    common = {"dx": dx, "duration_s": duration, "rain": rain, "manning": manning,
              "initial_depth": h_init, "alpha": 0.7, "theta": 0.8,
              "rain_factor": 1.0 if field is None else field}  # fmt: skip
    # Our default: all five maxima (depth and its time, velocity, hazard, time to 15 cm)
    # after every step.
    ours, ours_cpu = _timed(bed, **common)
    # Like for like: landlab's runner takes the max depth every 30 s of simulated time.
    like, like_cpu = _timed(bed, maxima_every_step=False, output_interval_s=30.0, **common)
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        extra = {} if field is None else {"rain_field": field}
        np.savez(
            src, bed=bed, dx=dx, rain_times=rain.times_s, rain_values=rain.values,
            duration_s=duration, snapshot_s=30.0, mannings_n=manning, h_init=h_init, **extra,
        )  # fmt: skip
        subprocess.run([python, str(HERE / "landlab_runner.py"), str(src), str(dst)], check=True)
        ll = dict(np.load(dst))
    ll_steps, ll_wall, ll_cpu = int(ll["steps"]), float(ll["wall_s"]), float(ll["cpu_s"])
    ll_rate = ll_steps * bed.size / ll_wall
    diff = np.abs(ours.max_depth - ll["max_depth"])
    wet = (ours.max_depth > 0.01) | (ll["max_depth"] > 0.01)
    diff_like = np.abs(like.max_depth - ll["max_depth"])
    return {
        "case": case, "grid": f"{n}x{n}", "cell_m": dx, "simulated_s": duration,
        "rain_mm": round(rain.integral(0.0, duration) * 1000, 2),
        "rained_cells_share": 1.0 if field is None else round(float((field > 0).mean()), 3),
        "dry_cells_share": round(float((ours.max_depth <= 0.01).mean()), 3),
        "manning": manning, "load_average": [round(x, 2) for x in os.getloadavg()],
        "twin": _ours(ours, ours_cpu) | {"alpha_effective": ours.extra["alpha_effective"]},
        "landlab": {"steps": ll_steps, "wall_s": round(ll_wall, 2), "cpu_s": round(ll_cpu, 2),
                    "cell_steps_per_s": round(ll_rate),
                    "cell_steps_per_cpu_s": round(ll_steps * bed.size / ll_cpu)},
        "twin_maxima_every_30s": _ours(like, like_cpu)
        | {"max_depth_mad_m": round(float(diff_like.mean()), 4)},
        "speedup_wall": round(ll_wall / ours.wall_s, 1),
        "speedup_cpu": round(ll_cpu / ours_cpu, 1),
        "speedup_wall_like_for_like": round(ll_wall / like.wall_s, 1),
        "speedup_cpu_like_for_like": round(ll_cpu / like_cpu, 1),
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
    ap.add_argument(
        "--case",
        choices=("wet", "partly-dry", "both"),
        default="wet",
        help="side-by-side case: rain over the whole grid, or a design storm over part of it",
    )
    ap.add_argument("--skip-throughput", action="store_true", help="only the side by side")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    started = time.perf_counter()
    result: dict = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "numba_threads": os.environ.get("NUMBA_NUM_THREADS", "default")},
    }  # fmt: skip
    if not args.skip_throughput:
        result["throughput"] = throughput(args.size, args.seconds, args.friction)
    if args.landlab_python:
        cases = ("wet", "partly-dry") if args.case == "both" else (args.case,)
        result["versus_landlab"] = [
            versus_landlab(
                args.landlab_python,
                case,
                args.compare_size,
                args.minutes,
                args.rain_mm_h,
                args.manning,
            )
            for case in cases
        ]
    result["total_s"] = round(time.perf_counter() - started, 1)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for t in result.get("throughput", []):
        rate = t["cell_steps_per_s"] / 1e6
        print(f"{t['grid']} {t['dtype']}: {rate:.1f} M cell-steps/s ({t['steps']} steps, "
              f"{t['wall_s']} s, mass error {t['mass_error_rel']:.1e})")  # fmt: skip
    for v in result.get("versus_landlab", []):
        print(f"{v['case']} {v['grid']}: twin {v['twin']['cell_steps_per_s'] / 1e6:.1f} M/s, "
              f"landlab {v['landlab']['cell_steps_per_s'] / 1e6:.2f} M/s "
              f"(x{v['speedup_wall']} wall, x{v['speedup_cpu']} CPU); max depth "
              f"MAD {v['max_depth_mad_m'] * 100:.2f} cm "
              f"(wet cells {v['max_depth_mad_wet_m'] * 100:.2f} cm); maxima every 30 s like "
              f"landlab: x{v['speedup_wall_like_for_like']} wall")  # fmt: skip
    sys.stdout.flush()


if __name__ == "__main__":
    main()
