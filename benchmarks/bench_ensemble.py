"""Storm ensemble members serially in one process vs on a Dask LocalCluster.

    PYTHONPATH=. python benchmarks/bench_ensemble.py [--rows 160] [--members 8] [--workers 2]

A synthetic grid (a tilted bowl with hummocks, 5 m cells, a draining band), ``--members``
storms (two return periods x uniform factors and seeded random fields, 20 min of rain and 10
min after), each run by :func:`twin.sim.ensemble.run_member`: once one after another here, once
as tasks on a LocalCluster of ``--workers`` processes (one thread each). Prints the wall times
(the cluster's start-up apart), their ratio, and whether every member's maxima agree bit for
bit. Performance figures live here and in BENCHMARKS.md, never as asserts in the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from twin.runs.ensemble_cluster import open_client, run_members
from twin.runs.ensemblespec import parse
from twin.sim.ensemble import Member, MemberGrid, run_member


def grid(rows: int) -> MemberGrid:
    y, x = np.mgrid[0:rows, 0:rows] * 5.0
    c = rows * 2.5
    bed = 0.0004 * ((x - c) ** 2 + (y - c) ** 2) / 10 + 0.003 * x
    bed += 0.15 * np.sin(x / 23.0) * np.cos(y / 31.0)
    manning = np.where((x // 50) % 3 == 0, 0.016, 0.04)
    drainage = np.where(y < c, 10.0 / 3_600_000, 0.0)
    return MemberGrid(bed=bed, dx=5.0, manning=manning, drainage_m_s=drainage)


def members(n: int) -> list[Member]:
    per_period = max(1, n // 2)
    factors = [0.8, 1.2][: min(2, per_period)]
    spec = {
        "return_periods_years": [10, 100], "durations": ["20min"], "after": "10min",
        "perturbations": {"factors": factors},
    }  # fmt: skip
    if per_period > len(factors):
        spec["perturbations"]["random"] = {  # type: ignore[index]
            "members": per_period - len(factors), "seed": 1, "sigma": 0.4, "length_m": 100,
        }  # fmt: skip
    return parse(spec).members()[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=160)
    ap.add_argument("--members", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    g, ms = grid(args.rows), members(args.members)
    run_member(g, Member(index=-1, return_period_years=2, duration_s=60, after_s=0))  # warm-up

    t0 = time.perf_counter()
    runs = [run_member(g, m) for m in ms]
    serial_s = time.perf_counter() - t0
    serial = {r.index: r.max_depth for r in runs}
    serial_sum = sum(r.wall_s for r in runs)

    t1 = time.perf_counter()
    with open_client("local", workers=args.workers) as client:
        started_s = time.perf_counter() - t1
        client.run(run_member, g, Member(index=-1, return_period_years=2, duration_s=60,
                                         after_s=0))  # warm-up on every worker  # fmt: skip
        t2 = time.perf_counter()
        done = list(run_members(g, ms, client=client))
        dist_s = time.perf_counter() - t2
    dist = {r.index: r.max_depth for r in done}
    # Each member's own time in the kernel: longer on the cluster when the cores are shared.
    dist_sum = sum(r.wall_s for r in done)
    total_s = time.perf_counter() - t1
    same = all(np.array_equal(serial[i], dist[i], equal_nan=True) for i in serial)
    print(json.dumps({
        "grid": [args.rows, args.rows], "members": len(ms), "workers": args.workers,
        "cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
        "serial_s": round(serial_s, 2), "cluster_members_s": round(dist_s, 2),
        "cluster_start_s": round(started_s, 2), "cluster_total_s": round(total_s, 2),
        "serial_member_s_sum": round(serial_sum, 2), "cluster_member_s_sum": round(dist_sum, 2),
        "speedup": round(serial_s / dist_s, 2), "speedup_with_start": round(serial_s / total_s, 2),
        "bit_for_bit": same,
        "max_depth_m": round(max(float(np.nanmax(d)) for d in serial.values()), 3),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
