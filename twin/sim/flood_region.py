"""The active region of a flood step: the cells a step can change, as one box.

Why: a point inflow on a dry grid wets a small part of it for most of a run, and a full sweep
spends most of each step on dry cells whose faces are 0 (about 3 ms a step on a 416 x 321 grid,
whatever the wet area). Without rain, a cell changes in a step only through its faces, and a
face carries water only when one of its cells is wetter than ``min_flow_depth_m``; so a step
may skip every cell that is dry and has only dry neighbours.

The rule, which cannot miss a wetting front:

- The *extent* is the bounding box of every cell wet since it was last measured (deeper than
  ``wet_m``: ``min_flow_depth_m``, or 0 where drainage or infiltration act, since they change any
  cell that holds water), of the inflows' cells, and of the cells beside a face that still
  carries water.
- A step sweeps the extent grown by one cell on each side (clipped at the grid's edges). The
  ring it adds is dry and has never been wet, so every face on the box's border joins two dry
  cells: it was 0 and stays 0, and the cells outside cannot change.
- Water moves one cell per step at most, so after the step only the ring can have become wet:
  the extent grows by the ring's rows and columns that did (a scan of the ring, not the box).
- A step with rain changes every cell that gets rain (a rain factor above 0, and not blocked),
  and only those: the extent takes in the bounding box of those cells (the *rain box*) for the
  step. A storm over the whole grid so sweeps it all; a storm cell over part of it (a nowcast's
  field, see :mod:`twin.sim.nowcast`) sweeps its box and the runoff's, not the dry rest. Rain
  leaves a film everywhere it fell, some of which drains below ``wet_m``: the extent is
  measured afresh (over the whole grid, once) at the first step without rain.
- A step that records the maxima at output times only (``maxima_every_step=False``) sweeps the
  whole grid, which it must to see every cell, and the extent is measured afresh after it.

The result is the full sweep's, bit for bit (``tests/sim/test_flood_region.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

Box = tuple[int, int, int, int]  # r0, r1, c0, c1: rows r0..r1-1, columns c0..c1-1


class ActiveRegion:
    """The box to sweep each step (see the module).

    Parameters
    ----------
    shape
        ``(rows, cols)`` of the grid.
    wet_m
        Depth (m) above which a cell counts as wet.
    seeds
        ``(rows, cols)`` of cells always in the extent (the inflows' cells).
    rain_cells
        The cells a rain step changes (True: rain factor above 0 and not blocked); None: all.
    enabled
        False: every step sweeps the whole grid.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        *,
        wet_m: float,
        seeds: Sequence[tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]] = (),
        rain_cells: npt.NDArray[np.bool_] | None = None,
        enabled: bool = True,
    ) -> None:
        self.ny, self.nx = shape
        self.wet_m = wet_m
        self.enabled = enabled
        self._seed_rows = [np.asarray(r) for r, _ in seeds]
        self._seed_cols = [np.asarray(c) for _, c in seeds]
        self._extent: Box | None = None  # None: not measured (r0 == r1: nothing wet)
        self.full: Box = (0, self.ny, 0, self.nx)
        self._region = False  # whether the last box came from the extent
        self._rained = False  # whether the last step had rain (the extent then grew by its box)
        self.rain_box: Box = self.full if rain_cells is None else _bounds(rain_cells)
        self.swept_cells = 0  # cell-steps actually swept, for the run's numbers

    def box(
        self,
        h: npt.NDArray[np.floating],
        qx: npt.NDArray[np.floating],
        qy: npt.NDArray[np.floating],
        *,
        full: bool,
        rain: bool = False,
    ) -> Box:
        """The box for the next step; ``full``: this step must sweep the whole grid;
        ``rain``: rain falls in this step."""
        self._region = not full and self.enabled
        if not self._region:
            self._extent = None
            self._rained = False
            self.swept_cells += self.ny * self.nx
            return self.full
        if self._rained and not rain:
            self._extent = None  # the rain's film, some of it drained dry: measure afresh
        self._rained = rain
        if self._extent is None:
            self._extent = self._measure(h, qx, qy)
        if rain:
            self._extent = _union(self._extent, self.rain_box)
        r0, r1, c0, c1 = self._extent
        if r0 >= r1:
            return (0, 0, 0, 0)
        box = (max(r0 - 1, 0), min(r1 + 1, self.ny), max(c0 - 1, 0), min(c1 + 1, self.nx))
        self.swept_cells += (box[1] - box[0]) * (box[3] - box[2])
        return box

    def after(self, h: npt.NDArray[np.floating], box: Box) -> None:
        """Grow the extent by the ring of ``box`` where the step wetted it."""
        if not self._region or self._extent is None:
            return
        r0, r1, c0, c1 = self._extent
        if r0 >= r1:
            return
        b0, b1, d0, d1 = box
        w = self.wet_m
        if b0 < r0 and bool((h[b0, d0:d1] > w).any()):
            r0 = b0
        if b1 > r1 and bool((h[b1 - 1, d0:d1] > w).any()):
            r1 = b1
        if d0 < c0 and bool((h[b0:b1, d0] > w).any()):
            c0 = d0
        if d1 > c1 and bool((h[b0:b1, d1 - 1] > w).any()):
            c1 = d1
        self._extent = (r0, r1, c0, c1)

    def _measure(
        self,
        h: npt.NDArray[np.floating],
        qx: npt.NDArray[np.floating],
        qy: npt.NDArray[np.floating],
    ) -> Box:
        """The extent over the whole grid: wet cells, cells beside a face that carries water,
        and the seeds."""
        wet = h > self.wet_m
        wet |= (qx[:, :-1] != 0) | (qx[:, 1:] != 0) | (qy[:-1] != 0) | (qy[1:] != 0)
        for rows, cols in zip(self._seed_rows, self._seed_cols, strict=True):
            wet[rows, cols] = True
        return _bounds(wet)


def _bounds(mask: npt.NDArray[np.bool_]) -> Box:
    """The bounding box of the True cells of ``mask`` (``(0, 0, 0, 0)``: none)."""
    rows_any = np.flatnonzero(mask.any(axis=1))
    if len(rows_any) == 0:
        return (0, 0, 0, 0)
    cols_any = np.flatnonzero(mask.any(axis=0))
    return (int(rows_any[0]), int(rows_any[-1]) + 1, int(cols_any[0]), int(cols_any[-1]) + 1)


def _union(a: Box, b: Box) -> Box:
    """The bounding box of two boxes (an empty one, ``r0 >= r1``, adds nothing)."""
    if a[0] >= a[1]:
        return b
    if b[0] >= b[1]:
        return a
    return (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
