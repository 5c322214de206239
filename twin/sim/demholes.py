"""Nodata cells of a DEM: made walls (``closed``), filled by interpolation (``fill``), or refused.

Real survey DEMs nearly always have nodata: a ring around the surveyed area, water surfaces
the lidar did not return from, building footprints cut out. The model needs a bed everywhere,
so each nodata cell is treated by one documented rule:

- ``closed``: the cell is a wall. It takes no part (no rain, no water) and no water crosses
  its faces, exactly like a blocked building. Right for the ring around a survey and for cut-out
  buildings; a nodata hole in a street becomes a small pillar.
- ``fill``: every hole (4-connected nodata cells) of at most ``max_hole_cells`` cells gets the
  harmonic interpolation of its rim: each filled cell is the mean of its four neighbours (edge
  cells of the grid the mean of those they have), solved exactly as one sparse linear system.
  That is the smoothest surface through the rim, with no new pits or peaks inside the hole, so
  it neither stores nor sheds water that the surveyed ground would not. Larger holes are
  refused: a guess over more than a few cells would decide where water goes.
- ``error``: refuse any nodata (the old behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
import scipy.ndimage
import scipy.sparse
import scipy.sparse.linalg

NodataRule = Literal["closed", "fill", "error"]


class NodataError(ValueError):
    """Nodata the chosen rule cannot treat."""


@dataclass(frozen=True)
class Treated:
    """A DEM after its nodata rule: a finite bed, the cells that take part, and the counts."""

    bed: npt.NDArray[np.float64]
    active: npt.NDArray[np.bool_]
    nodata_cells: int
    closed_cells: int
    filled_cells: int
    holes: int

    def summary(self, rule: NodataRule) -> dict[str, int | str]:
        return {
            "rule": rule, "cells": self.nodata_cells, "holes": self.holes,
            "closed": self.closed_cells, "filled": self.filled_cells,
        }  # fmt: skip


def treat_nodata(
    bed: npt.NDArray[np.floating],
    nodata: npt.NDArray[np.bool_],
    *,
    rule: NodataRule = "closed",
    max_hole_cells: int = 16,
) -> Treated:
    """Apply ``rule`` to the ``nodata`` cells of ``bed`` (m).

    Parameters
    ----------
    bed
        Bed elevation (m), 2D; values under ``nodata`` are ignored.
    nodata
        True where the DEM has no value.
    rule
        ``closed``, ``fill`` or ``error`` (see the module).
    max_hole_cells
        ``fill`` only: the largest hole (cells, 4-connected) that is interpolated.

    Returns
    -------
    Treated
        ``bed`` finite everywhere (closed cells hold the highest valid bed, never read by the
        model), ``active`` False on closed cells.

    Raises
    ------
    NodataError
        Under ``error`` when there is any nodata, under ``fill`` when a hole is larger than
        ``max_hole_cells``, and when every cell is nodata.
    """
    z = np.array(bed, dtype=np.float64)
    holes_mask = np.asarray(nodata, dtype=bool) | ~np.isfinite(z)
    count = int(holes_mask.sum())
    active = np.ones(z.shape, dtype=bool)
    if count == 0:
        return Treated(z, active, 0, 0, 0, 0)
    if count == z.size:
        raise NodataError("every cell is nodata")
    labels, n_holes = scipy.ndimage.label(holes_mask)  # 4-connected
    if rule == "error":
        r, c = (int(v[0]) for v in np.nonzero(holes_mask))
        raise NodataError(
            f"{count} nodata cells (first at row {r}, col {c}); fill them, or set "
            "nodata: closed (walls) or nodata: fill (interpolate small holes)"
        )
    if rule == "closed":
        z[holes_mask] = float(z[~holes_mask].max())
        active[holes_mask] = False
        return Treated(z, active, count, count, 0, int(n_holes))
    if rule != "fill":
        raise ValueError(f"unknown nodata rule {rule!r} (closed, fill, error)")
    sizes = np.bincount(labels.ravel())[1:]
    if sizes.max() > max_hole_cells:
        k = int(np.argmax(sizes)) + 1
        r, c = (int(v[0]) for v in np.nonzero(labels == k))
        raise NodataError(
            f"a nodata hole of {int(sizes.max())} cells (at row {r}, col {c}) is larger than "
            f"nodata_max_hole_cells = {max_hole_cells}; use nodata: closed, or fill it yourself"
        )
    z[holes_mask] = _harmonic(z, holes_mask)
    return Treated(z, active, count, 0, count, int(n_holes))


def _harmonic(z: npt.NDArray[np.float64], holes: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """Values on ``holes`` with each the mean of its in-grid neighbours (Laplace's equation with
    the rim as the boundary condition), in the order of ``z[holes]``."""
    ny, nx = z.shape
    index = np.full(z.shape, -1, dtype=np.int64)
    rr, cc = np.nonzero(holes)
    m = len(rr)
    index[rr, cc] = np.arange(m)
    rows: list[npt.NDArray[np.int64]] = []
    cols: list[npt.NDArray[np.int64]] = []
    vals: list[npt.NDArray[np.float64]] = []
    diag = np.zeros(m)
    rhs = np.zeros(m)
    eq = np.arange(m)
    for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        r2, c2 = rr + dr, cc + dc
        inside = (r2 >= 0) & (r2 < ny) & (c2 >= 0) & (c2 < nx)
        diag += inside
        r2, c2, e = r2[inside], c2[inside], eq[inside]
        j = index[r2, c2]
        unknown = j >= 0
        rows.append(e[unknown])
        cols.append(j[unknown])
        vals.append(-np.ones(int(unknown.sum())))
        np.add.at(rhs, e[~unknown], z[r2[~unknown], c2[~unknown]])
    a = scipy.sparse.csr_matrix(
        (np.concatenate([diag, *vals]), (np.concatenate([eq, *rows]), np.concatenate([eq, *cols]))),
        shape=(m, m),
    )
    out: npt.NDArray[np.float64] = scipy.sparse.linalg.spsolve(a.tocsc(), rhs)
    return np.atleast_1d(out)
