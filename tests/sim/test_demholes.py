"""DEM nodata rules: closed cells are walls, small holes are filled harmonically, else refused."""

from __future__ import annotations

import numpy as np
import pytest

from twin.sim.demholes import NodataError, treat_nodata
from twin.sim.flood import simulate
from twin.sim.rain import Series


def plane(rows: int = 12, cols: int = 15) -> np.ndarray:
    y, x = np.mgrid[0:rows, 0:cols]
    return 5.0 + 0.1 * x - 0.05 * y


def test_fill_reproduces_a_plane_exactly_and_counts_the_cells() -> None:
    # A plane is harmonic: the interpolation gives it back inside. On the grid's edge a cell
    # has no outer neighbour (a mean of those it has): bounded by its rim, not exact.
    bed = plane()
    holes = np.zeros(bed.shape, dtype=bool)
    holes[4:6, 6:9] = True  # 6 cells inside
    holes[0, 0:3] = True  # 3 on the edge
    t = treat_nodata(np.where(holes, np.nan, bed), holes, rule="fill", max_hole_cells=6)
    assert np.abs(t.bed - bed)[4:6, 6:9].max() < 1e-9
    assert bed[1, 0:4].min() <= t.bed[0, 0:3].min() and t.bed[0, 0:3].max() <= bed[0:2, 3].max()
    assert (t.nodata_cells, t.filled_cells, t.closed_cells, t.holes) == (9, 9, 0, 2)
    assert t.active.all()
    assert t.summary("fill") == {"rule": "fill", "cells": 9, "holes": 2, "closed": 0, "filled": 9}


def test_fill_adds_no_pit_or_peak() -> None:
    # The maximum principle: a filled value lies between the rim's lowest and highest values.
    rng = np.random.default_rng(3)
    bed = rng.uniform(0, 1, (20, 20))
    holes = np.zeros(bed.shape, dtype=bool)
    holes[5:8, 5:9] = True
    t = treat_nodata(bed, holes, rule="fill")
    rim = np.zeros_like(holes)
    rim[4:9, 4:10] = True
    rim &= ~holes
    assert bed[rim].min() <= t.bed[holes].min() and t.bed[holes].max() <= bed[rim].max()


def test_fill_refuses_a_large_hole_and_error_refuses_any() -> None:
    bed = plane()
    holes = np.zeros(bed.shape, dtype=bool)
    holes[2:7, 2:7] = True  # 25 cells
    with pytest.raises(NodataError, match=r"25 cells.*nodata_max_hole_cells = 16"):
        treat_nodata(bed, holes, rule="fill")
    with pytest.raises(NodataError, match=r"25 nodata cells.*row 2, col 2"):
        treat_nodata(bed, holes, rule="error")
    with pytest.raises(NodataError, match="every cell"):
        treat_nodata(bed, np.ones(bed.shape, dtype=bool))


def test_closed_cells_are_walls_to_the_flow() -> None:
    """A closed ring of nodata around a survey and a hole in the middle: no water in them, none
    across their faces, and the rain on the rest all kept (closed edges)."""
    bed = np.zeros((20, 20))
    holes = np.zeros(bed.shape, dtype=bool)
    holes[:, :3] = True
    holes[9:11, 9:11] = True
    t = treat_nodata(np.where(holes, np.nan, bed), holes)  # closed is the default
    assert (t.closed_cells, t.filled_cells) == (64, 0)
    assert not t.active[holes].any() and t.active[~holes].all()
    assert np.isfinite(t.bed).all()
    r = simulate(t.bed, dx=1.0, duration_s=300, rain=Series.constant(1e-5), active=t.active)
    assert np.all(r.depth[holes] == 0) and np.isnan(r.max_depth[holes]).all()
    assert abs(r.mass_error_rel) < 1e-12
    assert r.depth[~holes] == pytest.approx(np.full(int((~holes).sum()), 3e-3), abs=1e-9)
