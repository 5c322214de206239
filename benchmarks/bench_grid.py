"""Points -> H3 cells: twin.grid.points_to_cells versus a naive geopandas spatial join.

The naive route is what a GIS user without an H3 index would write: polygons for every cell
covering the area, then ``gpd.sjoin(points, cells, predicate="within")``. Both give each point its
res-9 cell; the script checks they agree before it reports.

points_to_cells is timed with 1 worker and with ``--workers`` (default: every core), after one
warm-up call that loads the compiled loop from numba's cache (timed apart), and against h3-py's
own per-point loop (``np.frompyfunc(h3.api.basic_int.latlng_to_cell)``); all must give the same
cells. The process CPU time beside each wall time shows how much of the cores it really got on a
shared machine.

    .venv/bin/python benchmarks/bench_grid.py [--points 1000000] [--res 9] [--workers N] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import geopandas as gpd
import h3
import numpy as np
from h3.api import basic_int

from twin import grid, h3c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--res", type=int, default=9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=h3c.default_workers())
    ap.add_argument("--repeat", type=int, default=3, help="best of this many runs")
    ap.add_argument("--no-sjoin", action="store_true", help="skip the naive spatial join")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    # A 20 km x 20 km city around the default centre.
    lon = rng.uniform(120.06, 120.26, args.points)
    lat = rng.uniform(30.18, 30.36, args.points)

    t0 = time.perf_counter()
    grid.points_to_cells(lon[:200_000], lat[:200_000], args.res, workers=1)
    t_warm = time.perf_counter() - t0

    def best(workers: int) -> tuple[np.ndarray, float, float]:
        runs = []
        for _ in range(args.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            out = grid.points_to_cells(lon, lat, args.res, workers=workers)
            runs.append((time.perf_counter() - w0, time.process_time() - c0))
        wall, cpu = min(runs)
        return out, wall, cpu

    cells_1, t_1, cpu_1 = best(1)
    cells, t_twin, cpu_twin = best(args.workers)
    h3py = np.frompyfunc(basic_int.latlng_to_cell, 3, 1)
    w0 = time.perf_counter()
    by_h3py = np.asarray(h3py(lat, lon, args.res), dtype=np.uint64).view(np.int64)
    t_h3py = time.perf_counter() - w0
    if not (np.array_equal(cells_1, cells) and np.array_equal(cells, by_h3py)):
        raise SystemExit("points_to_cells differs between worker counts or from h3-py")
    load = os.getloadavg()[0]
    result: dict[str, object] = {
        "points": args.points,
        "res": args.res,
        "workers": args.workers,
        "warmup_s": t_warm,
        "h3py_points_per_s": args.points / t_h3py,
        "one_worker_points_per_s": args.points / t_1,
        "one_worker_s": t_1,
        "one_worker_cpu_s": cpu_1,
        "twin_points_per_s": args.points / t_twin,
        "twin_s": t_twin,
        "twin_cpu_s": cpu_twin,
        "seconds_for_12m": 12e6 / (args.points / t_twin),
        "identical_to_h3py": True,
        "load_average_1min": load,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    if args.no_sjoin:
        _report(args, result)
        return

    # Naive: every cell polygon of the area (built outside the timing), then a spatial join.
    bbox = {
        "type": "Polygon",
        "coordinates": [
            [(120.05, 30.17), (120.27, 30.17), (120.27, 30.37), (120.05, 30.37), (120.05, 30.17)]
        ],
    }
    cover = grid.to_int(h3.geo_to_cells(bbox, args.res))
    cell_gdf = grid.cells_to_geodataframe(cover)[["cell", "geometry"]]
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(lon, lat), crs="EPSG:4326")
    t0 = time.perf_counter()
    joined = gpd.sjoin(pts, cell_gdf, how="left", predicate="within")
    t_sjoin = time.perf_counter() - t0

    joined = joined[~joined.index.duplicated()]
    naive = joined["cell"].to_numpy()
    found = ~np.isnan(naive.astype(float))
    agree = float(np.mean(naive[found].astype(np.int64) == cells[found]))

    result.update(
        {
            "cells_in_area": len(cover),
            "sjoin_points_per_s": args.points / t_sjoin,
            "sjoin_s": t_sjoin,
            "speedup": t_sjoin / t_twin,
            # Straight-edged polygons vs H3's geodesic cells: a few points on edges may differ.
            "agreement": agree,
        }
    )
    _report(args, result)


def _report(args: argparse.Namespace, result: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(result, indent=2))
        return
    n, w = args.points, args.workers
    print(f"{n:,} points -> res {args.res} cells (load average {result['load_average_1min']:.2f})")
    print(f"  warm-up (numba cache load)  : {result['warmup_s']:.2f} s, once per process")
    print(f"  h3-py per point (1 core)    : {result['h3py_points_per_s']:>12,.0f} points/s")
    print(
        f"  points_to_cells, 1 worker   : {result['one_worker_points_per_s']:>12,.0f} points/s"
        f" ({result['one_worker_s']:.2f} s wall, {result['one_worker_cpu_s']:.2f} s CPU)"
    )
    print(
        f"  points_to_cells, {w} workers  : {result['twin_points_per_s']:>12,.0f} points/s"
        f" ({result['twin_s']:.2f} s wall, {result['twin_cpu_s']:.2f} s CPU)"
        f" -> 12 M points in {result['seconds_for_12m']:.2f} s"
    )
    if "sjoin_s" in result:
        print(f"  geopandas sjoin (naive)     : {result['sjoin_points_per_s']:>12,.0f} points/s")
        print(f"  speed-up {result['speedup']:.1f}x; agreement {result['agreement']:.6f}")


if __name__ == "__main__":
    main()
