"""Manning's n from polygons: by cell centre, or by the share of each cell's area they cover.

By centre a polygon sets a cell's n when it holds the cell's centre, else not at all: a 2 m
road on a 5 m grid is rough grass in one place and a 5 m strip of asphalt in the next,
depending on where it falls against the grid. By area share a cell's n is the area mean of
n² over what covers it (``sqrt(sum f_i n_i²)``, f_i the covered shares): the friction term of
the momentum equation is ``g n² |q| q / h^(7/3)``, so at one depth and discharge the mean of n²
is what gives the cell the mean of its friction. The solver averages n² across a face for the
same reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.features


def manning_by_area(
    base: npt.NDArray[np.floating],
    layers: Iterable[tuple[Sequence[Any], float]],
    transform: Sequence[float],
    *,
    subcells: int = 8,
    block_rows: int = 256,
) -> npt.NDArray[np.float64]:
    """Manning's n (s/m^(1/3)) per cell from ``base`` with polygon layers laid over it.

    Parameters
    ----------
    base
        n of the ground under the polygons, per cell (2D).
    layers
        ``(geometries, n)`` in order; a later layer wins where layers overlap (as with centres).
    transform
        rasterio's ``(a, b, c, d, e, f)`` of the north-up grid.
    subcells
        Each cell is sampled at ``subcells`` x ``subcells`` points (8: shares to 1/64 of a
        cell); the mean of n² over the samples is the cell's n².
    block_rows
        Rows rasterised at a time, to keep the sample grid small on large rasters.

    Returns
    -------
    numpy.ndarray
        n per cell, float64, ``base``'s shape.
    """
    n0 = np.asarray(base, dtype=np.float64)
    ny, nx = n0.shape
    kept = []
    for geoms, n in layers:
        shapes = [g for g in geoms if g is not None and not g.is_empty]
        if shapes:
            kept.append((shapes, float(n)))
    if not kept:
        return n0.copy()
    a, b, c0, d, e, f0 = (float(v) for v in tuple(transform)[:6])
    k = int(subcells)
    out = np.empty_like(n0)
    for r0 in range(0, ny, block_rows):
        r1 = min(ny, r0 + block_rows)
        fine_t = rasterio.Affine(a / k, b, c0, d, e / k, f0 + e * r0)
        shape = ((r1 - r0) * k, nx * k)
        fine = np.repeat(np.repeat(n0[r0:r1], k, axis=0), k, axis=1)
        for geoms, n in kept:
            mask = rasterio.features.geometry_mask(
                geoms, out_shape=shape, transform=fine_t, invert=True
            )
            fine[mask] = n
        n2 = (fine * fine).reshape(r1 - r0, k, nx, k).mean(axis=(1, 3))
        out[r0:r1] = np.sqrt(n2)
    return out
