"""Run landlab's OverlandFlow on a DEM (.npy) with rain; called by benchmarks/flood.py with
landlab's own Python (it lives in a separate virtualenv):

    /tmp/landlab/bin/python benchmarks/landlab_runner.py IN.npz OUT.npz

IN holds ``bed`` (rows x cols, m), ``dx`` (m), ``duration_s``, ``snapshot_s``, ``mannings_n``,
``h_init`` and the rain: either ``rain_m_s`` until ``rain_s`` (constant, then none), or a step
hyetograph ``rain_times`` / ``rain_values`` (m/s from each time to the next, 0 after the last),
times a per-cell ``rain_field`` (north-up like ``bed``; optional, 1 everywhere). Rain changes
only at snapshot boundaries (the step hyetograph's times are added to them). OUT gets
``max_depth`` (max over snapshots), ``depth`` (final), ``steps``, ``wall_s``, ``cpu_s``. Edges
are closed, as in the twin's run.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from landlab import RasterModelGrid
from landlab.components import OverlandFlow


def main() -> None:
    src = np.load(sys.argv[1])
    bed = src["bed"]
    rows, cols = bed.shape
    dx = float(src["dx"])
    # One ring of closed boundary nodes around the DEM's cells (landlab's core nodes).
    grid = RasterModelGrid((rows + 2, cols + 2), xy_spacing=dx)
    z = np.full((rows + 2, cols + 2), bed.max() + 100.0)
    z[1:-1, 1:-1] = bed[::-1]  # landlab's row 0 is the south edge
    grid.add_field("topographic__elevation", z.ravel(), at="node")
    h_init = float(src["h_init"])
    grid.add_field("surface_water__depth", np.full(grid.number_of_nodes, h_init), at="node")
    grid.set_closed_boundaries_at_grid_edges(True, True, True, True)
    of = OverlandFlow(
        grid, mannings_n=float(src["mannings_n"]), h_init=h_init, alpha=0.7, theta=0.8
    )
    steps = [0]
    calc = of.calc_time_step

    def counted() -> float:
        steps[0] += 1
        return calc()

    of.calc_time_step = counted  # type: ignore[method-assign]
    h = grid.at_node["surface_water__depth"]
    max_depth = h.copy()
    t, snapshot, duration = 0.0, float(src["snapshot_s"]), float(src["duration_s"])
    if "rain_times" in src:
        times, values = np.asarray(src["rain_times"], float), np.asarray(src["rain_values"], float)
    else:
        times, values = np.array([0.0, float(src["rain_s"])]), np.array([float(src["rain_m_s"]), 0])
    field = None
    if "rain_field" in src:
        f = np.zeros((rows + 2, cols + 2))
        f[1:-1, 1:-1] = src["rain_field"][::-1]
        field = f.ravel()
    start, cpu0 = time.perf_counter(), time.process_time()
    while t < duration - 1e-9:
        step = min(snapshot, duration - t)
        later = times[times > t + 1e-9]
        if len(later):  # rain changes at a snapshot boundary
            step = min(step, float(later[0]) - t)
        k = int(np.searchsorted(times, t + 1e-9, side="right")) - 1
        rate = float(values[k]) if 0 <= k < len(values) else 0.0
        of.rainfall_intensity = rate if field is None else rate * field
        of.run_one_step(dt=step)
        t += step
        np.maximum(max_depth, h, out=max_depth)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    to_dem = lambda a: a.reshape(rows + 2, cols + 2)[1:-1, 1:-1][::-1]  # noqa: E731
    np.savez(
        sys.argv[2], max_depth=to_dem(max_depth), depth=to_dem(h), steps=steps[0], wall_s=wall,
        cpu_s=cpu,
    )  # fmt: skip


if __name__ == "__main__":
    main()
