"""What the UK Environment Agency cases (Néelz & Pender 2010, 2013) share: gauges at points,
first arrival, an independent quasi-static fill-and-spill of a volume over a DEM, and landlab's
OverlandFlow side by side (run in its own virtualenv through ``benchmarks/landlab_inflow_runner``,
so the project does not depend on it).

The fill-and-spill (:func:`pour`) is the expectation for the final state of a slow flood on a
closed DEM: water poured at a cell fills the basin it lies in up to the basin's lowest saddle,
then the excess runs down from the saddle into the next basin, and so on; a basin that fills up
to a saddle with a full neighbour merges with it. It knows nothing of the flood model: a
priority-flood over the bed (Barnes et al. 2014) with the volume counted per basin.
"""

from __future__ import annotations

import heapq
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from twin.sim.flood import FloodResult

HERE = Path(__file__).resolve().parent
LANDLAB_RUNNER = HERE.parent / "landlab_inflow_runner.py"
#: Where the landlab virtualenv lives (see BENCHMARKS.md); ``TWIN_LANDLAB_PYTHON`` overrides it.
LANDLAB_PYTHON_DEFAULT = "/tmp/flood-venv/bin/python"


def gauge_cells(x: float, y: float, dx: float, shape: tuple[int, int]) -> list[tuple[int, int]]:
    """The cells whose centres are nearest to the point ``(x, y)`` (m, origin at the grid's
    south-west corner, y north): one cell, or the two or four that share it when the point
    lies on cell edges (EA gauges often do, e.g. y = 1000 m on a 5 m grid)."""
    ny, nx = shape
    fx, fy = x / dx - 0.5, (ny * dx - y) / dx - 0.5  # fractional column and row of the point
    cols = sorted({int(np.floor(fx + 1e-9)), int(np.ceil(fx - 1e-9))})
    rows = sorted({int(np.floor(fy + 1e-9)), int(np.ceil(fy - 1e-9))})
    cells = [(r, c) for r in rows for c in cols if 0 <= r < ny and 0 <= c < nx]
    if not cells:
        raise ValueError(f"gauge ({x}, {y}) is outside the grid")
    return cells


def probes_for(
    points: dict[str, tuple[float, float]], dx: float, shape: tuple[int, int]
) -> tuple[list[tuple[int, int]], dict[str, list[int]]]:
    """Probe cells for :func:`twin.sim.flood.simulate` and, per gauge, the probe indices whose
    mean is the gauge's value."""
    probes: list[tuple[int, int]] = []
    index: dict[str, list[int]] = {}
    for name, (x, y) in points.items():
        cells = gauge_cells(x, y, dx, shape)
        index[name] = list(range(len(probes), len(probes) + len(cells)))
        probes += cells
    return probes, index


def gauge_series(res: FloodResult, index: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Depth (m) at each gauge at every output time: the mean over its cells."""
    return {k: res.probe_depth[:, ix].mean(axis=1) for k, ix in index.items()}


def arrival_s(t: np.ndarray, depth: np.ndarray, threshold_m: float) -> float:
    """First time (s) the depth reaches ``threshold_m``, linearly interpolated between samples
    (NaN if it never does)."""
    above = np.nonzero(depth >= threshold_m)[0]
    if len(above) == 0:
        return float("nan")
    k = int(above[0])
    if k == 0:
        return float(t[0])
    d0, d1 = depth[k - 1], depth[k]
    return float(t[k - 1] + (threshold_m - d0) / (d1 - d0) * (t[k] - t[k - 1]))


def _level_for(volume: float, surface: np.ndarray, area: float) -> float:
    """The flat level L over ``surface`` (m) holding ``volume`` (m³): sum max(L - s, 0) a = V."""
    s = np.sort(surface)
    cum = np.cumsum(s)
    n = np.arange(1, len(s) + 1)
    need = (n * s - cum) * area  # volume to bring the n lowest cells up to s[n-1]
    k = int(np.searchsorted(need, volume, side="right"))  # cells under the level: k
    return float((volume / area + cum[k - 1]) / k)


def pour(bed: np.ndarray, start: tuple[int, int], volume_m3: float, dx: float) -> np.ndarray:
    """Quasi-static fill-and-spill of ``volume_m3`` poured at cell ``start`` over ``bed`` (m,
    closed edges, 4-connected like the model's faces). Returns the water level (m) per cell,
    NaN where dry.

    A priority-flood from the pour cell visits cells in rising order of their surface (bed, or
    the level of a lake already filled) until it first steps down: the cells visited before
    that step form the basin, full at the highest surface visited (its saddle). If the volume
    left fits, the basin's level is solved for; else the basin is filled to the saddle, the rest
    runs down the steepest descent from the step into the next basin, and the flood starts over
    from there (a full upstream lake then counts as a flat surface, so basins merge where a lake
    rises to a saddle it shares with one)."""
    surf = np.asarray(bed, dtype=np.float64).copy()
    ny, nx = surf.shape
    area = dx * dx
    left = float(volume_m3)
    cell = start
    for _ in range(ny * nx):
        seen = np.zeros(surf.shape, dtype=bool)
        heap = [(surf[cell], cell)]
        seen[cell] = True
        visited: list[tuple[int, int]] = []
        top = -np.inf
        step: tuple[int, int] | None = None
        while heap:
            z, (r, c) = heapq.heappop(heap)
            if z < top - 1e-12:  # the first step down: over the saddle at ``top``
                step = (r, c)
                break
            top = max(top, z)
            visited.append((r, c))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
                if 0 <= rr < ny and 0 <= cc < nx and not seen[rr, cc]:
                    seen[rr, cc] = True
                    heapq.heappush(heap, (surf[rr, cc], (rr, cc)))
        vr, vc = np.array(visited).T
        basin = surf[vr, vc]
        full = float(np.sum(top - basin)) * area
        if step is None or left <= full:
            level = _level_for(left, basin, area)
            surf[vr, vc] = np.maximum(basin, level)
            break
        surf[vr, vc] = top
        left -= full
        cell = _descend(surf, step)  # to the next basin's bottom
    level = np.where(surf > bed + 1e-9, surf, np.nan)
    return level


def _descend(surf: np.ndarray, cell: tuple[int, int]) -> tuple[int, int]:
    """Steepest descent (4 neighbours) from ``cell`` to a local minimum of ``surf``."""
    ny, nx = surf.shape
    while True:
        r, c = cell
        nb = [
            (surf[rr, cc], (rr, cc))
            for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1))
            if 0 <= rr < ny and 0 <= cc < nx
        ]
        low, nxt = min(nb)
        if low >= surf[cell]:
            return cell
        cell = nxt


def spill_level(bed: np.ndarray, cell: tuple[int, int]) -> float:
    """The level (m) at which the basin draining to ``cell`` spills: a priority-flood from the
    basin's bottom up to its first step down (the whole grid's top if it never spills)."""
    surf = np.asarray(bed, dtype=np.float64)
    ny, nx = surf.shape
    start = _descend(surf, cell)
    seen = np.zeros(surf.shape, dtype=bool)
    seen[start] = True
    heap = [(surf[start], start)]
    top = -np.inf
    while heap:
        z, (r, c) = heapq.heappop(heap)
        if z < top - 1e-12:
            return float(top)
        top = max(top, z)
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < ny and 0 <= cc < nx and not seen[rr, cc]:
                seen[rr, cc] = True
                heapq.heappush(heap, (surf[rr, cc], (rr, cc)))
    return float(top)


def landlab_python() -> str | None:
    """The landlab virtualenv's python, or None where there is none (its numbers are skipped)."""
    py = os.environ.get("TWIN_LANDLAB_PYTHON", LANDLAB_PYTHON_DEFAULT)
    return py if py and Path(py).is_file() else None


def run_landlab(
    bed: np.ndarray,
    *,
    dx: float,
    duration_s: float,
    manning: float,
    inflow_cells: tuple[np.ndarray, np.ndarray],
    q_times_s: np.ndarray,
    q_m3s: np.ndarray,
    probes: list[tuple[int, int]],
    output_s: float,
    chunk_s: float = 5.0,
) -> dict[str, np.ndarray] | None:
    """landlab's OverlandFlow on the same case (alpha 0.7, theta 0.8, closed edges), the inflow
    added to its cells every ``chunk_s`` (see the runner); None without a landlab python."""
    py = landlab_python()
    if py is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        np.savez(
            src, bed=bed, dx=dx, duration_s=duration_s, mannings_n=manning,
            inflow_rows=inflow_cells[0], inflow_cols=inflow_cells[1], q_times=q_times_s,
            q_values=q_m3s, probes=np.array(probes, dtype=np.int64).reshape(-1, 2),
            output_s=output_s, chunk_s=chunk_s,
        )  # fmt: skip
        subprocess.run([py, str(LANDLAB_RUNNER), str(src), str(dst)], check=True)
        return dict(np.load(dst))


def print_result(res: Any) -> None:
    """Each metric with its bound, then the run's settings, steps and wall time (the cases' CLI)."""
    for k, m in res.metrics.items():
        bound = f"{m.tolerance:.3g}" if np.isfinite(m.tolerance) else "-"
        print(f"{k}: {m.value:+.4g} {m.unit} (bound {bound}) {'ok' if m.passed else ''}")
    print(res.settings, f"{res.steps} steps, {res.wall_s:.2f} s")
