"""Partitioned bulk join (twin.ingest.bulkjoin) versus one-process geopandas.sjoin.

Synthetic points, uniform over a 20 km x 18 km city, in a Parquet file (id, lon, lat, a small
attribute); parcels are ~100 m squares (90 % of a grid step, so a tenth of the points fall in
none). The bulk join gives each point its res-9 cell and its parcel, partitioned by res-5 parent
cell; its rows/s count output rows over the whole run (reading, H3, staging, sort, join). Peak
RSS is the process's (DuckDB runs in it), read before the reference join runs. The reference is
``geopandas.sjoin`` on a sample of ``--reference-points``, points already in memory.

``--write`` also COPYs the result into a table of a scratch database created on the cluster of
TWIN_DATABASE_URL (dropped afterwards), through the staging table and the swap.

    .venv/bin/python benchmarks/bench_bulkjoin.py --points 50000000 [--threads 2]
        [--memory-limit 4GB] [--reference-points 2000000] [--write] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import shapely
from psycopg import sql

from twin.ingest.bulkjoin import JoinSpec, bulk_join, partitioned_join

BBOX = (120.06, 30.18, 120.26, 30.36)


def make_points(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with pq.ParquetWriter(
        path,
        pa.schema(
            [("id", pa.int64()), ("lon", pa.float64()), ("lat", pa.float64()), ("kind", pa.int8())]
        ),
    ) as w:
        for start in range(0, n, 5_000_000):
            k = min(5_000_000, n - start)
            w.write_table(
                pa.table(
                    {
                        "id": np.arange(start, start + k, dtype=np.int64),
                        "lon": rng.uniform(BBOX[0], BBOX[2], k),
                        "lat": rng.uniform(BBOX[1], BBOX[3], k),
                        "kind": rng.integers(0, 4, k, dtype=np.int8),
                    }
                ),
                row_group_size=1_000_000,
            )


def make_parcels(path: Path, nx: int, ny: int) -> gpd.GeoDataFrame:
    xs = np.linspace(BBOX[0], BBOX[2], nx + 1)[:-1]
    ys = np.linspace(BBOX[1], BBOX[3], ny + 1)[:-1]
    gx, gy = np.meshgrid(xs, ys)
    dx, dy = (BBOX[2] - BBOX[0]) / nx * 0.9, (BBOX[3] - BBOX[1]) / ny * 0.9
    boxes = shapely.box(gx.ravel(), gy.ravel(), gx.ravel() + dx, gy.ravel() + dy)
    parcels = gpd.GeoDataFrame(
        {"parcel_id": np.arange(boxes.size, dtype=np.int64)}, geometry=boxes, crs="EPSG:4326"
    )
    parcels.to_parquet(path)
    return parcels


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument("--parcels-grid", type=int, nargs=2, default=(200, 180), metavar=("NX", "NY"))
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument("--reference-points", type=int, default=2_000_000)
    ap.add_argument("--write", action="store_true", help="COPY into a scratch database too")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    result: dict[str, Any] = {"points": args.points, "threads": args.threads}
    with tempfile.TemporaryDirectory(prefix="bench-bulkjoin-") as tmp:
        pts_path, poly_path = Path(tmp) / "points.parquet", Path(tmp) / "parcels.parquet"
        t0 = time.perf_counter()
        make_points(pts_path, args.points, args.seed)
        parcels = make_parcels(poly_path, *args.parcels_grid)
        result["generate_s"] = time.perf_counter() - t0
        result["parcels"] = len(parcels)
        spec = JoinSpec(x="lon", y="lat", polygon_id="parcel_id", res=9, key_res=5)

        rss0 = peak_rss_mb()
        t0, c0 = time.perf_counter(), time.process_time()
        rows = matched = parts = 0
        for part in partitioned_join(
            pts_path, poly_path, spec, threads=args.threads, memory_limit=args.memory_limit
        ):
            rows += part.num_rows
            matched += part.num_rows - part.column("parcel_id").null_count
            parts += 1
        wall = time.perf_counter() - t0
        result.update(
            join_s=wall,
            join_cpu_s=time.process_time() - c0,
            rows=rows,
            matched=matched,
            partitions=parts,
            join_rows_per_s=rows / wall,
            peak_rss_mb=peak_rss_mb(),
            rss_before_join_mb=rss0,
        )

        if args.write:
            result.update(_write(pts_path, poly_path, spec, args))

        m = min(args.reference_points, args.points)
        ref = pq.read_table(pts_path).slice(0, m)
        gpts = gpd.GeoDataFrame(
            {"id": ref["id"].to_numpy()},
            geometry=gpd.points_from_xy(ref["lon"].to_numpy(), ref["lat"].to_numpy()),
            crs="EPSG:4326",
        )
        t0 = time.perf_counter()
        joined = gpd.sjoin(gpts, parcels, how="left", predicate="intersects")
        t_ref = time.perf_counter() - t0
        result.update(reference_points=m, sjoin_rows_per_s=len(joined) / t_ref)
    result["load_average_1min"] = os.getloadavg()[0]
    result["machine"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{rows:,} rows ({matched:,} in a parcel) from {args.points:,} points x "
        f"{len(parcels):,} parcels, {parts} partitions "
        f"(load average {result['load_average_1min']:.2f})"
    )
    print(
        f"  bulkjoin (DuckDB spatial, partitioned): {result['join_rows_per_s']:>12,.0f} rows/s "
        f"({wall:.1f} s wall, {result['join_cpu_s']:.1f} s CPU; peak RSS "
        f"{result['peak_rss_mb']:,.0f} MB, {rss0:,.0f} MB before)"
    )
    if args.write:
        print(
            f"  bulkjoin + COPY + swap into PostGIS     : {result['write_rows_per_s']:>12,.0f} "
            f"rows/s ({result['write_s']:.1f} s)"
        )
    print(
        f"  geopandas.sjoin, one process ({m:,} pts): {result['sjoin_rows_per_s']:>12,.0f} rows/s"
        " (points already in memory)"
    )


def _write(pts_path: Path, poly_path: Path, spec: JoinSpec, args: argparse.Namespace) -> dict:
    """bulk_join into a scratch database on TWIN_DATABASE_URL's cluster, dropped afterwards."""
    base = os.environ["TWIN_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    head, _, _ = base.partition("?")[0].rpartition("/")
    name = f"bench_bulkjoin_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{head}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{head}/{name}"
    try:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(
                "CREATE TABLE point_parcel "
                "(id bigint, kind smallint, cell bigint, parcel_id bigint)"
            )
        t0 = time.perf_counter()
        report = bulk_join(
            pts_path, poly_path, "public.point_parcel", url, spec,
            threads=args.threads, memory_limit=args.memory_limit,
        )  # fmt: skip
        wall = time.perf_counter() - t0
        return {
            "write_s": wall,
            "write_rows": report.loaded,
            "write_rows_per_s": report.loaded / wall,
        }
    finally:
        with psycopg.connect(f"{head}/postgres", autocommit=True) as c:
            c.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    main()
