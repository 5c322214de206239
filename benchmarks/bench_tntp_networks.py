"""Equilibrium on the public TNTP networks against their best-known flow solutions.

    .venv/bin/python benchmarks/bench_tntp_networks.py --data DIR [--gap 1e-8] [--json]

DIR holds ``<name>_net.tntp``, ``<name>_trips.tntp`` and, where published, ``<name>_flow.tntp``
(from https://github.com/bstabler/TransportationNetworks; research licence, so they are not
copied into this repository). For each network: iterations, seconds, the relative gap, the
Beckmann objective, TSTT, and against the best-known flows the TSTT they imply (from their own
cost column) and the relative L1 distance of the link flows. Generalised-cost weights that a
network's README gives (not its file) are applied: Chicago Sketch 0.02 min/cent and 0.04
min/mile.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np

from twin.sim import tntp
from twin.sim.traffic import assign

#: Weights from the networks' README files (toll factor, distance factor).
README_WEIGHTS = {"ChicagoSketch": (0.02, 0.04)}


def run(folder: Path, name: str, gap: float) -> dict[str, object]:
    net = tntp.read_net(folder / f"{name}_net.tntp")
    toll, dist = README_WEIGHTS.get(name, (net.toll_factor, net.distance_factor))
    net = dataclasses.replace(net, toll_factor=toll, distance_factor=dist)
    trips = tntp.read_trips(folder / f"{name}_trips.tntp", n_zones=net.n_zones)
    assign(net, trips, gap=1e-2, max_iter=2)  # compile the kernels outside the timing
    r = assign(net, trips, gap=gap, max_iter=5000)
    out: dict[str, object] = {
        "network": name, "zones": net.n_zones, "nodes": net.n_nodes, "links": net.n_links,
        "iterations": r.iterations, "seconds": round(r.seconds, 3), "gap": r.gap,
        "objective": r.objective, "tstt": r.tstt, "weights": [toll, dist],
    }  # fmt: skip
    ref_path = folder / f"{name}_flow.tntp"
    if ref_path.is_file():
        ref = tntp.read_flow(ref_path)
        key = {(int(t), int(h)): i for i, (t, h) in enumerate(zip(net.tail, net.head, strict=True))}
        order = np.array(
            [key[(int(t) - 1, int(h) - 1)] for t, h in zip(ref.tail, ref.head, strict=True)]
        )
        ours = r.flow[order]
        out["ref_tstt"] = float((ref.volume * ref.cost).sum())
        out["flow_rel_l1"] = float(np.abs(ours - ref.volume).sum() / ref.volume.sum())
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--gap", type=float, default=1e-8)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    names = sorted(f.name[: -len("_net.tntp")] for f in a.data.glob("*_net.tntp"))
    rows = []
    for name in names:
        try:
            rows.append(run(a.data, name, a.gap))
        except tntp.TNTPError as exc:
            rows.append({"network": name, "error": str(exc)})
    if a.json:
        print(json.dumps(rows, indent=2))
        return
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
