"""Traffic assignment side by side with AequilibraE's bi-conjugate Frank-Wolfe, one core each.

Seconds to relative gap 1e-4 and 1e-6 on Anaheim (TNTP) and on the medium demo city's morning
peak (its road graph, H3 res-8 zones and gravity demand, as ``twin simulate traffic`` builds
them). AequilibraE runs in its own virtualenv through ``benchmarks/aequilibrae_runner.py``; both
get the same links, BPR parameters, zones (centroids not passed through) and demand.

    python3 -m venv /tmp/aeq && /tmp/aeq/bin/pip install aequilibrae
    TWIN_DB_NAME=twin_medium .venv/bin/twin demo --size medium --no-serve --storm-years 0
    NUMBA_NUM_THREADS=1 TWIN_DB_NAME=twin_medium .venv/bin/python benchmarks/traffic.py \\
        --aequilibrae-python /tmp/aeq/bin/python [--no-city] [--json]

Our time is the whole ``assign`` call (setup, initial loading, iterations, the gap checks: the
exact one wherever a bound cannot rule the target out, always at the end), the best of
``--repeat`` runs on each network after a warm-up that compiles the kernels. AequilibraE's is
its ``execute()`` call (graph building reported apart), one run.
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

from twin.sim import tntp
from twin.sim.traffic import Network, assign

ROOT = Path(__file__).resolve().parents[1]
GAPS = (1e-4, 1e-6)


def _data() -> Path:
    for c in (os.environ.get("TWIN_TRAFFIC_DATA", ""), str(ROOT.parent / "shared/data/traffic"),
              "/work/shared/data/traffic"):  # fmt: skip
        if c and Path(c, "Anaheim").is_dir():
            return Path(c)
    sys.exit("TNTP data not found: set TWIN_TRAFFIC_DATA")


def ours(
    net: Network, trips: np.ndarray, repeat: int, *, full_sweeps: bool = False
) -> dict[str, dict[str, float]]:
    assign(net, trips, gap=1e-2, max_iter=2)  # compile / load the kernels
    out = {}
    for gap in GAPS:
        best = None
        for _ in range(repeat):
            t = time.perf_counter()
            r = assign(net, trips, gap=gap, max_iter=10_000, full_sweeps=full_sweeps)
            wall = time.perf_counter() - t
            if best is None or wall < best[0]:
                best = (wall, r)
        assert best is not None
        wall, r = best
        out[f"{gap:g}"] = {"seconds": wall, "iterations": r.iterations, "gap": r.gap,
                           "tstt": r.tstt}  # fmt: skip
    return out


def theirs(python: str, net: Network, trips: np.ndarray) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp, "in.npz"), Path(tmp, "out.npz")
        np.savez(
            src, a_node=net.tail + 1, b_node=net.head + 1, capacity=net.capacity, fft=net.fft,
            b=net.alpha, power=net.beta, zones=net.n_zones, first_thru_node=net.first_thru + 1,
            demand=trips, gaps=np.array(GAPS), max_iter=100_000,
        )  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
        subprocess.run([python, str(ROOT / "benchmarks/aequilibrae_runner.py"), str(src),
                        str(dst)], check=True, env=env)  # fmt: skip
        res = np.load(dst)
        out = {"version": str(res["version"])}
        for i, gap in enumerate(GAPS):
            out[f"{gap:g}"] = {
                "seconds": float(res[f"seconds_{i}"]),
                "iterations": int(res[f"iterations_{i}"]),
                "gap": float(res[f"rgap_{i}"]),
                "tstt": float(res[f"tstt_{i}"]),
                "setup_seconds": float(res[f"setup_seconds_{i}"]),
            }
        return out


def city() -> tuple[Network, np.ndarray, dict[str, int]]:
    """The demo city's morning peak, built as the twin builds it (TWIN_* settings)."""
    import psycopg

    from twin.db.engine import database_url
    from twin.runs.roadnet import load_roads
    from twin.runs.traffic import TrafficParams, demand, load_zones
    from twin.settings import Settings

    settings = Settings()
    params = TrafficParams()
    with psycopg.connect(database_url(settings)) as conn:
        roads = load_roads(conn, settings.metric_crs)
        zones = load_zones(conn, settings, params.zone_res)
    net, dist = demand(roads, zones, params)
    trips = dist.trips.copy()
    np.fill_diagonal(trips, 0.0)
    shape = {"zones": net.n_zones, "nodes": net.n_nodes, "links": net.n_links,
             "road_links": roads.n_links, "trips": round(float(trips.sum()))}  # fmt: skip
    return net, trips, shape


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--aequilibrae-python", default="/tmp/aeq/bin/python")
    ap.add_argument("--no-city", action="store_true", help="Anaheim only")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    folder = _data() / "Anaheim"
    cases = {}
    net = tntp.read_net(folder / "Anaheim_net.tntp")
    trips = tntp.read_trips(folder / "Anaheim_trips.tntp", n_zones=net.n_zones)
    cases["anaheim"] = (net, trips, {"zones": 38, "nodes": 416, "links": 914})
    if not args.no_city:
        cases["medium demo city"] = city()
    report: dict[str, object] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "cases": {},
    }
    for name, (net, trips, shape) in cases.items():
        mine = ours(net, trips, args.repeat)
        full = ours(net, trips, args.repeat, full_sweeps=True)
        other = theirs(args.aequilibrae_python, net, trips)
        speedup = {g: other[g]["seconds"] / mine[g]["seconds"] for g in mine}
        report["cases"][name] = {"shape": shape, "twin": mine, "twin_full_sweeps": full,  # type: ignore[index]
                                 "aequilibrae": other, "speedup": speedup}  # fmt: skip
        if not args.json:
            print(f"{name} {shape}")
            for g in mine:
                m, o = mine[g], other[g]
                print(
                    f"  gap {g}: twin {m['seconds']:.3f} s ({m['iterations']} it, gap "
                    f"{m['gap']:.1e}, TSTT {m['tstt']:,.1f}); AequilibraE {other['version']} "
                    f"{o['seconds']:.3f} s ({o['iterations']} it, gap {o['gap']:.1e}, TSTT "
                    f"{o['tstt']:,.1f}); {speedup[g]:.1f}x; twin with full sweeps "
                    f"{full[g]['seconds']:.3f} s ({full[g]['iterations']} it)"
                )
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
