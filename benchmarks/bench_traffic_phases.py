"""Where the traffic solver's time goes on the twin's morning peak, phase by phase.

Builds the network and demand as ``twin simulate traffic`` does (the twin's roads, H3 zones at
``--zone-res``, gravity demand), then runs Algorithm B's loop of :func:`twin.sim.traffic.assign`
with one thread, with a timer around each phase: the shortest-path trees and the
all-or-nothing loading, each growing sweep, each flow-shifting sweep, and the gap's lower bound
and exact value after every iteration (the solver itself measures the exact gap only when the
bound allows a stop; here both are printed, to show how loose the bound is).

    TWIN_DATABASE_URL=postgresql://twin@127.0.0.1:PORT/twin_large NUMBA_NUM_THREADS=1 \\
        .venv/bin/python benchmarks/bench_traffic_phases.py --zone-res 7 --iterations 3

It prints one JSON line per iteration and a last one with the totals per phase (s).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import psycopg

from twin.city.meta import read_city, with_city
from twin.db.engine import database_url
from twin.runs import traffic as runs
from twin.runs.roadnet import load_roads
from twin.settings import Settings
from twin.sim import bush
from twin.sim.traffic import STALL, _star


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--zone-res", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=3)
    ap.add_argument("--gap", type=float, default=1e-4, help="the target the sweeps aim at")
    args = ap.parse_args()
    settings = Settings()
    url = database_url(settings)
    with psycopg.connect(url) as conn:
        settings = with_city(settings, read_city(conn))
        roads = load_roads(conn, settings.metric_crs)
        zones = runs.load_zones(conn, settings, args.zone_res)
    params = runs.TrafficParams(zone_res=args.zone_res, events=False)
    net, dist = runs.demand(roads, zones, params)
    print(json.dumps({"links": net.n_links, "nodes": net.n_nodes, "zones": net.n_zones,
                      "trips": float(dist.trips.sum())}), flush=True)  # fmt: skip
    phases = run(net, dist.trips, iterations=args.iterations, gap=args.gap)
    print(json.dumps({"totals_s": {k: round(v, 2) for k, v in phases.items()}}), flush=True)


def run(net, trips, *, iterations: int, gap: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The solver's loop (one thread, default options) with a timer per phase."""
    demand = np.array(trips, dtype=np.float64)
    np.fill_diagonal(demand, 0.0)
    nn, nl, ft = net.n_nodes, net.n_links, int(net.first_thru)
    tail, head = net.tail.astype(np.int64), net.head.astype(np.int64)
    fft, alpha, beta = (a.astype(np.float64) for a in (net.fft, net.alpha, net.beta))
    cap, const = net.capacity.astype(np.float64), net.constant_cost.astype(np.float64)
    open_link = np.ones(nl, dtype=bool)
    ids = np.arange(nl, dtype=np.int64)
    out_start, out_link = _star(tail, ids, nn)
    in_start, in_link = _star(head, ids, nn)
    zone_node = np.arange(net.n_zones, dtype=np.int64)
    origins = np.flatnonzero(demand.sum(axis=1) > 0).astype(np.int64)
    members = np.arange(origins.shape[0], dtype=np.int64)
    no = origins.shape[0]
    x, cost = np.zeros(nl), np.empty(nl)
    bush.all_costs(x, fft, alpha, beta, cap, const, cost)
    in_bush = np.zeros((no, nl), dtype=np.bool_)
    orders = np.empty((no, nn), dtype=np.int32)
    counts = np.zeros(no, dtype=np.int64)
    bstart = np.empty((no, nn + 1), dtype=np.int32)
    blink = np.empty((no, nl), dtype=np.int32)
    bflow = np.empty((no, nl))
    dist, pred, settle = np.empty(nn), np.empty(nn, dtype=np.int64), np.empty(nn, dtype=np.int64)
    heap_f, heap_i = np.empty(nl + nn + 1), np.empty(nl + nn + 1, dtype=np.int64)
    work_i = np.empty((8, 2 * nn + 2), dtype=np.int64)
    work_f = np.empty((3, nn))
    lay_i, lay_f = np.empty((2, nl), dtype=np.int64), np.empty(nl)
    sp_i, sp_f = np.empty(2 * nl + 1, dtype=np.int64), np.empty(2 * nl + 1)
    spent: dict[str, float] = {}

    def timed(name: str, t: float) -> None:
        spent[name] = spent.get(name, 0.0) + time.perf_counter() - t

    for k, o in enumerate(origins):
        t = time.perf_counter()
        settled = bush.dijkstra(o, cost, out_start, out_link, head, ft, dist, pred, settle,
                                heap_f, heap_i)  # fmt: skip
        timed("shortest_path_trees", t)
        t = time.perf_counter()
        bush.init_bush(o, demand[o], zone_node, pred, settle, settled, in_bush[k], tail, x,
                       orders[k], bstart[k], blink[k], bflow[k])  # fmt: skip
        counts[k] = settled
        timed("loading", t)
    bush.all_costs(x, fft, alpha, beta, cap, const, cost)

    def totals(exact: bool) -> float:
        return bush.path_totals(members, origins, demand, zone_node, cost, in_start, in_link,
                                out_start, out_link, tail, head, ft, orders, counts, exact,
                                work_f[0], work_f[1], sp_f, sp_i)  # fmt: skip

    t = time.perf_counter()
    sptt = totals(False)
    timed("gap_bound", t)
    for it in range(1, iterations + 1):
        tol = 0.002 * gap * sptt / max(float(demand.sum()), 1e-300)
        last = np.inf
        sweeps = []
        for sweep in range(25):
            t = time.perf_counter()
            worst = 0.0
            for k in range(no):
                w = bush.update_origin(
                    origins[k], ft, in_bush[k], x, cost, fft, alpha, beta, cap, const, tail,
                    head, open_link, 1, sweep == 0, tol, orders[k], counts[k], bstart[k],
                    blink[k], bflow[k], work_i, work_f, lay_i, lay_f,
                )  # fmt: skip
                worst = max(worst, w)
            took = time.perf_counter() - t
            spent["grow_sweeps" if sweep == 0 else "shift_sweeps"] = (
                spent.get("grow_sweeps" if sweep == 0 else "shift_sweeps", 0.0) + took
            )
            sweeps.append(round(took, 2))
            if sweep > 0 and (worst <= tol or worst > STALL * last):
                break
            last = worst
        bush.all_costs(x, fft, alpha, beta, cap, const, cost)
        total = float(np.sum(x * cost))
        t = time.perf_counter()
        sptt = totals(False)
        timed("gap_bound", t)
        t = time.perf_counter()
        exact = totals(True)
        timed("gap_exact", t)
        print(json.dumps({"iteration": it, "sweeps_s": sweeps,
                          "gap_bound": (total - sptt) / total,
                          "gap_exact": (total - exact) / total}), flush=True)  # fmt: skip
    return spent


if __name__ == "__main__":
    main()
