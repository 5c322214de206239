"""Run AequilibraE's bi-conjugate Frank-Wolfe ("bfw") static assignment on one core, for comparison
with the twin's solver. It is called with AequilibraE's own Python (it lives in a separate
virtualenv, ``python3 -m venv /tmp/aeq && /tmp/aeq/bin/pip install aequilibrae``):

    /tmp/aeq/bin/python benchmarks/aequilibrae_runner.py IN.npz OUT.npz

IN holds, one row per directed link (row i is link i): ``a_node``, ``b_node`` (int64, 1-based
node ids), ``capacity`` (veh/h), ``fft`` (free-flow time, min), ``b`` and ``power`` (BPR alpha
and beta); scalars ``zones`` (nodes 1..zones are the centroids), ``first_thru_node`` (TNTP: zone
nodes below it carry no through traffic) and ``max_iter``; ``demand`` (zones x zones, trips/h,
row = origin) and ``gaps`` (target relative gaps). For each gap i, OUT gets ``seconds_i`` (the
``execute()`` call alone), ``setup_seconds_i`` (graph, matrix and assignment set-up),
``cpu_seconds_i`` (process CPU time of ``execute()``, ~ seconds_i on one core), ``iterations_i``,
``rgap_i`` (AequilibraE's final gap), ``gap_i`` (the standard gap, recomputed here), ``tstt_i``
(sum of flow x BPR time, recomputed here from the flows), ``flows_i``, and AequilibraE's
per-iteration report as ``rgap_history_i`` and ``time_history_i`` (s since the start of
``execute()``); plus ``version``.

Everything runs in memory: no AequilibraE project folder is needed (results are not saved).
Blocking flows through centroids (``first_thru_node > 1``) blocks all zone nodes, which is the
TNTP rule only when ``first_thru_node == zones + 1``, the usual case.

AequilibraE's gap is ``|c(x_k).x_{k+1} - c(x_k).y_k| / c(x_k).x_{k+1}``: ``y_k`` is the
all-or-nothing load on the costs ``c(x_k)`` that the iteration started from and ``x_{k+1}`` the
flows after the step, so it mixes two iterates. The textbook gap ``(TSTT - SPTT) / TSTT`` takes
costs and shortest paths at the same flows; ``gap_i`` is that one, at the final flows, with
shortest paths (scipy's Dijkstra, through-centroid blocking as above) computed here. Near
convergence the two differ by a small factor either way (EMA at 1e-6: 9.3e-7 vs 3.0e-6).

In 1.7.x, bfw's line search caps the step at 1/sqrt(iteration), so very tight gaps take many
iterations (EMA: 364 at 1e-6, 1902 at 1e-7, ~90,000 at 1e-8).
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import version

# Read when aequilibrae is imported: no tqdm progress bars (they would be timed with execute()).
os.environ["AEQ_SHOW_PROGRESS"] = "FALSE"

import numpy as np
import pandas as pd
from aequilibrae.matrix import AequilibraeMatrix
from aequilibrae.paths import Graph, TrafficAssignment, TrafficClass
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra


def bpr(flow: np.ndarray, src: dict[str, np.ndarray]) -> np.ndarray:
    return src["fft"] * (1.0 + src["b"] * (flow / src["capacity"]) ** src["power"])


def standard_gap(flow: np.ndarray, src: dict[str, np.ndarray], zones: int, block: bool) -> float:
    """(TSTT - SPTT) / TSTT at ``flow``; with ``block``, no path passes through a zone node."""
    a, b = src["a_node"] - 1, src["b_node"] - 1
    n = int(max(a.max(), b.max())) + 1
    cost = bpr(flow, src)
    tstt = float(flow @ cost)
    # Each zone's out-links also leave from a copy of it (node n + zone), the search's source; the
    # zone nodes themselves keep their out-links only when through traffic is allowed.
    tail = np.where(a < zones, n + a, a)
    keep = np.ones(a.size, bool) if not block else a >= zones
    rows = np.concatenate([tail, a[keep]])
    cols = np.concatenate([b, b[keep]])
    vals = np.concatenate([cost, cost[keep]])
    # Parallel links: csr sums duplicates, so keep only the cheapest of each (tail, head) pair.
    order = np.lexsort((vals, cols, rows))
    rows, cols, vals = rows[order], cols[order], vals[order]
    first = np.ones(rows.size, bool)
    first[1:] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1])
    # Zero costs would vanish from a sparse matrix; nudge them (the gap's scale dwarfs 1e-12).
    w = np.maximum(vals[first], 1e-12)
    g = csr_matrix((w, (rows[first], cols[first])), shape=(n + zones, n + zones))
    dist = dijkstra(g, directed=True, indices=n + np.arange(zones))[:, :zones]
    demand = src["demand"] * (1.0 - np.eye(zones))  # intra-zonal trips use no links
    sptt = float(np.sum(demand[demand > 0] * dist[demand > 0]))
    return (tstt - sptt) / tstt


def build(src: dict[str, np.ndarray], gap: float, max_iter: int) -> TrafficAssignment:
    n, zones = src["a_node"].size, int(src["zones"])
    graph = Graph()
    graph.network = pd.DataFrame(
        {
            "link_id": np.arange(1, n + 1, dtype=np.int64),
            "a_node": src["a_node"].astype(np.int64),
            "b_node": src["b_node"].astype(np.int64),
            "direction": np.ones(n, np.int8),
            "capacity": src["capacity"],
            "free_flow_time": src["fft"],
            "alpha": src["b"],
            "beta": src["power"],
        }
    )
    graph.prepare_graph(np.arange(1, zones + 1, dtype=np.int64))
    graph.set_graph("free_flow_time")
    graph.set_skimming([])
    graph.set_blocked_centroid_flows(int(src["first_thru_node"]) > 1)

    mat = AequilibraeMatrix()
    mat.create_empty(zones=zones, matrix_names=["demand"], memory_only=True)
    mat.index[:] = np.arange(1, zones + 1)
    mat.matrices[:, :, 0] = src["demand"]
    mat.computational_view(["demand"])

    assig = TrafficAssignment()
    assig.set_classes([TrafficClass("car", graph, mat)])
    assig.set_vdf("BPR")
    assig.set_vdf_parameters({"alpha": "alpha", "beta": "beta"})
    assig.set_capacity_field("capacity")
    assig.set_time_field("free_flow_time")
    assig.set_cores(1)  # before set_algorithm, which copies the core count
    assig.set_algorithm("bfw")
    assig.max_iter = max_iter
    assig.rgap_target = gap
    return assig


def main() -> None:
    src = dict(np.load(sys.argv[1]))
    zones, block = int(src["zones"]), int(src["first_thru_node"]) > 1
    n = src["a_node"].size
    out: dict[str, object] = {"version": version("aequilibrae")}
    for i, gap in enumerate(np.atleast_1d(src["gaps"]).astype(float)):
        start = time.perf_counter()
        assig = build(src, float(gap), int(src["max_iter"]))
        out[f"setup_seconds_{i}"] = time.perf_counter() - start
        cpu, start = time.process_time(), time.perf_counter()
        assig.execute()
        out[f"seconds_{i}"] = time.perf_counter() - start
        out[f"cpu_seconds_{i}"] = time.process_time() - cpu
        report = assig.assignment.convergence_report
        out[f"iterations_{i}"] = int(report["iteration"][-1])
        out[f"rgap_{i}"] = float(report["rgap"][-1])
        out[f"rgap_history_{i}"] = np.asarray(report["rgap"], float)
        out[f"time_history_{i}"] = np.asarray(report["time"], float)
        loads = assig.classes[0].results.get_load_results()
        flows = loads["demand_ab"].reindex(np.arange(1, n + 1), fill_value=0.0).to_numpy()
        out[f"flows_{i}"] = flows
        out[f"tstt_{i}"] = float(flows @ bpr(flows, src))
        out[f"gap_{i}"] = standard_gap(flows, src, zones, block)
        print(
            f"gap {gap:g}: {out[f'iterations_{i}']} iterations, {out[f'seconds_{i}']:.3f} s, "
            f"rgap {out[f'rgap_{i}']:.3e}, standard gap {out[f'gap_{i}']:.3e}, "
            f"TSTT {out[f'tstt_{i}']:.6f}",
            file=sys.stderr,
        )
    np.savez(sys.argv[2], **out)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
