"""Points -> H3 cells: twin.grid.points_to_cells versus a naive geopandas spatial join.

The naive route is what a GIS user without an H3 index would write: polygons for every cell
covering the area, then ``gpd.sjoin(points, cells, predicate="within")``. Both give each point its
res-9 cell; the script checks they agree before it reports.

    .venv/bin/python benchmarks/bench_grid.py [--points 1000000] [--res 9] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import geopandas as gpd
import h3
import numpy as np

from twin import grid


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--res", type=int, default=9)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    # A 20 km x 20 km city around the default centre.
    lon = rng.uniform(120.06, 120.26, args.points)
    lat = rng.uniform(30.18, 30.36, args.points)

    t0 = time.perf_counter()
    cells = grid.points_to_cells(lon, lat, args.res)
    t_twin = time.perf_counter() - t0

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

    result = {
        "points": args.points,
        "res": args.res,
        "cells_in_area": len(cover),
        "twin_points_per_s": args.points / t_twin,
        "twin_s": t_twin,
        "sjoin_points_per_s": args.points / t_sjoin,
        "sjoin_s": t_sjoin,
        "speedup": t_sjoin / t_twin,
        # Straight-edged polygons vs H3's geodesic cells: a few points on edges may differ.
        "agreement": agree,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{args.points:,} points -> res {args.res} cells ({len(cover):,} cells in the area)")
        twin_rate, sjoin_rate = result["twin_points_per_s"], result["sjoin_points_per_s"]
        print(f"  twin.grid.points_to_cells : {twin_rate:>12,.0f} points/s ({t_twin:.2f} s)")
        print(f"  geopandas sjoin (naive)   : {sjoin_rate:>12,.0f} points/s ({t_sjoin:.2f} s)")
        print(f"  speed-up {result['speedup']:.1f}x; agreement {agree:.6f}")


if __name__ == "__main__":
    main()
