"""Run landlab's OverlandFlow on a DEM fed by an inflow hydrograph; called by the EA validation
cases (benchmarks/validation/ea_common.py) with landlab's own Python (a separate virtualenv):

    /tmp/flood-venv/bin/python benchmarks/landlab_inflow_runner.py IN.npz OUT.npz

IN holds ``bed`` (rows x cols, m, north-up), ``dx`` (m), ``duration_s``, ``mannings_n``,
``inflow_rows``/``inflow_cols`` (the cells fed), ``q_times``/``q_values`` (the hydrograph,
m³/s, linear between points, 0 outside), ``probes`` (k x 2 cells), ``output_s``, ``chunk_s``.
OverlandFlow has no point inflow, so the hydrograph's volume over each ``chunk_s`` is added to
the fed cells' depth before landlab advances that chunk (its own adaptive steps inside).
OUT gets ``t`` (output times), ``probe_depth`` (times x k), ``max_depth``, ``depth`` (final),
``max_velocity`` (m/s, where deeper than 1 cm, from the mean link discharges at each node),
``wall_s``, ``cpu_s`` (process CPU time of the loop), ``stored_m3`` (the water on the cells
at the end, less the ``h_init`` film they started with: against the inflow, landlab's own mass
balance). Edges are closed; the bed starts wet at landlab's ``h_init`` (1e-5 m).
"""

from __future__ import annotations

import sys
import time

import numpy as np
from landlab import RasterModelGrid
from landlab.components import OverlandFlow

H_INIT = 1e-5


def volume(times: np.ndarray, q: np.ndarray, t0: float, t1: float) -> float:
    """The hydrograph's volume (m³) between t0 and t1 (trapezoids on a fine grid of the span)."""
    s = np.linspace(t0, t1, 9)
    v = np.interp(s, times, q, left=0.0, right=0.0)
    return float(np.sum(0.5 * (v[1:] + v[:-1]) * np.diff(s)))


def main() -> None:
    src = np.load(sys.argv[1])
    bed = src["bed"]
    rows, cols = bed.shape
    dx = float(src["dx"])
    grid = RasterModelGrid((rows + 2, cols + 2), xy_spacing=dx)
    z = np.full((rows + 2, cols + 2), bed.max() + 100.0)
    z[1:-1, 1:-1] = bed[::-1]  # landlab's row 0 is the south edge
    grid.add_field("topographic__elevation", z.ravel(), at="node")
    grid.add_field("surface_water__depth", np.full(grid.number_of_nodes, H_INIT), at="node")
    grid.set_closed_boundaries_at_grid_edges(True, True, True, True)
    of = OverlandFlow(
        grid, mannings_n=float(src["mannings_n"]), h_init=H_INIT, alpha=0.7, theta=0.8
    )
    node = lambda r, c: (rows - r) * (cols + 2) + (c + 1)  # noqa: E731  north-up cell -> node
    fed = np.array(
        [node(r, c) for r, c in zip(src["inflow_rows"], src["inflow_cols"], strict=True)]
    )
    probes = np.array([node(r, c) for r, c in src["probes"]], dtype=np.int64)
    times, q = src["q_times"], src["q_values"]
    h = grid.at_node["surface_water__depth"]
    duration, out_s, chunk = float(src["duration_s"]), float(src["output_s"]), float(src["chunk_s"])
    max_depth = h.copy()
    max_v = np.zeros_like(h)
    t_out, samples = [0.0], [h[probes].copy()]
    t, next_out = 0.0, out_s
    start, cpu = time.perf_counter(), time.process_time()
    while t < duration - 1e-9:
        step = min(chunk, next_out - t, duration - t)
        h[fed] += volume(times, q, t, t + step) / (len(fed) * dx * dx)
        of.run_one_step(dt=step)
        t += step
        np.maximum(max_depth, h, out=max_depth)
        qn = grid.at_link["surface_water__discharge"]
        qx = grid.map_mean_of_horizontal_links_to_node(qn)
        qy = grid.map_mean_of_vertical_links_to_node(qn)
        v = np.where(h > 0.01, np.hypot(qx, qy) / np.maximum(h, 1e-9), 0.0)
        np.maximum(max_v, v, out=max_v)
        if t >= next_out - 1e-9:
            t_out.append(t)
            samples.append(h[probes].copy())
            next_out = min(next_out + out_s, duration)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    to_dem = lambda a: a.reshape(rows + 2, cols + 2)[1:-1, 1:-1][::-1]  # noqa: E731
    np.savez(
        sys.argv[2], t=np.array(t_out), probe_depth=np.array(samples), max_depth=to_dem(max_depth),
        depth=to_dem(h), max_velocity=to_dem(max_v), wall_s=wall, cpu_s=cpu,
        stored_m3=float((to_dem(h).sum() - H_INIT * rows * cols) * dx * dx),
    )  # fmt: skip


if __name__ == "__main__":
    main()
