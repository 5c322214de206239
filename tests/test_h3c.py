"""twin.h3c against h3-py itself: the same cells, point by point, for any number of workers."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from twin import grid, h3c

SEED = 20261206


def _h3py(lat: np.ndarray, lng: np.ndarray, res: int) -> np.ndarray:
    return np.array(
        [int(h3.latlng_to_cell(a, b, res), 16) for a, b in zip(lat, lng, strict=True)],
        dtype=np.uint64,
    )


def _globe(n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lng = rng.uniform(-180, 180, n)
    # The poles, the antimeridian and the equator exactly.
    lat = np.concatenate([lat, [90.0, -90.0, 0.0, 0.0, 45.0, -45.0]])
    lng = np.concatenate([lng, [0.0, 0.0, 180.0, -180.0, 180.0, -180.0]])
    return lat, lng


def _on_edges(res: int, cells: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Vertices, points along edges and points a hair either side of them, of ``cells``."""
    lat: list[float] = []
    lng: list[float] = []
    for c in cells:
        ring = h3.cell_to_boundary(c)
        for (a0, b0), (a1, b1) in zip(ring, ring[1:] + ring[:1], strict=True):
            for t in (0.0, 0.25, 0.5, 0.9):
                a, b = a0 + t * (a1 - a0), b0 + t * (b1 - b0)
                for eps in (0.0, 1e-12, -1e-12, 1e-9, -1e-9):
                    lat.append(a + eps)
                    lng.append(b - eps)
    return np.array(lat), np.array(lng)


@pytest.mark.parametrize("res", [0, 3, 7, 9, 10, 15])
def test_random_points_on_the_globe_match_h3(res: int) -> None:
    lat, lng = _globe(20_000)
    got = h3c.latlng_to_cell(lat, lng, res, workers=1)
    np.testing.assert_array_equal(got, _h3py(lat, lng, res))


@pytest.mark.parametrize("res", [5, 9])
def test_cell_edges_vertices_and_pentagons_match_h3(res: int) -> None:
    rng = np.random.default_rng(SEED + res)
    city = [h3.latlng_to_cell(30.27 + d, 120.16 + d, res) for d in rng.uniform(-0.1, 0.1, 40)]
    lat, lng = _on_edges(res, city + list(h3.get_pentagons(res)))
    for cell in h3.get_pentagons(res):  # pentagon centres too
        a, b = h3.cell_to_latlng(cell)
        lat, lng = np.append(lat, a), np.append(lng, b)
    got = h3c.latlng_to_cell(lat, lng, res, workers=2)
    np.testing.assert_array_equal(got, _h3py(lat, lng, res))


def test_result_does_not_depend_on_workers() -> None:
    rng = np.random.default_rng(SEED)
    n = 400_003  # not a multiple of any worker count
    lat = rng.uniform(30.18, 30.36, n)
    lng = rng.uniform(120.06, 120.26, n)
    one = h3c.latlng_to_cell(lat, lng, 9, workers=1)
    for w in (2, 3, 7):
        np.testing.assert_array_equal(h3c.latlng_to_cell(lat, lng, 9, workers=w), one)
    sample = rng.choice(n, 2_000, replace=False)
    np.testing.assert_array_equal(one[sample], _h3py(lat[sample], lng[sample], 9))


def test_grid_uses_the_same_cells_above_and_below_its_threshold() -> None:
    rng = np.random.default_rng(SEED)
    n = 150_000
    lon = rng.uniform(-180, 180, n)
    lat = rng.uniform(-90, 90, n)
    big = grid.points_to_cells(lon, lat, 9, workers=2)
    small = np.concatenate(
        [
            grid.points_to_cells(lon[i : i + 50_000], lat[i : i + 50_000], 9)
            for i in range(0, n, 50_000)
        ]
    )
    np.testing.assert_array_equal(big, small)
    assert big.dtype == np.int64
    assert grid.points_to_cells(lon.reshape(3, -1), lat.reshape(3, -1), 9).shape == (3, n // 3)


def test_refused_points_and_bad_workers_are_named() -> None:
    lat = np.array([30.0, 30.1, np.nan, 30.2])
    lng = np.array([120.0, 120.1, 120.2, 120.3])
    with pytest.raises(ValueError, match="point 2"):
        h3c.latlng_to_cell(lat, lng, 9, workers=1)
    with pytest.raises(ValueError, match="workers"):
        h3c.latlng_to_cell(lat, lng, 9, workers=0)
    with pytest.raises(ValueError, match="workers"):
        grid.points_to_cells([120.0], [30.0], 9, workers=0)


@pytest.mark.parametrize("res", [0, 2, 7, 10, 15])
def test_cell_boundaries_match_h3_vertex_for_vertex(res: int) -> None:
    # Random cells over the globe, the pentagons, and res-0 cells (whose edges cross
    # icosahedron faces: up to 10 vertices).
    lat, lng = _globe(3_000)
    cells = [h3.latlng_to_cell(a, b, res) for a, b in zip(lat, lng, strict=True)]
    cells += list(h3.get_pentagons(res)) + list(h3.get_res0_cells())
    ints = np.array([int(c, 16) for c in cells], dtype=np.uint64)
    nverts, verts = h3c.cell_boundaries(ints)
    assert {5, 6} <= set(nverts.tolist()) and nverts.max() <= h3c.MAX_VERTS
    for c, n, v in zip(cells, nverts.tolist(), verts, strict=True):
        assert tuple(map(tuple, v[:n].tolist())) == h3.cell_to_boundary(c)
    # grid.boundaries builds the same polygons as grid.boundary, one at a time.
    polys = grid.boundaries(ints.astype(np.int64))
    one = [grid.boundary(int(c)) for c in ints.astype(np.int64)]
    assert [p.wkb for p in polys] == [p.wkb for p in one]


def test_a_refused_cell_is_named() -> None:
    with pytest.raises(ValueError, match="cell 1"):
        h3c.cell_boundaries(np.array([int(h3.latlng_to_cell(0, 0, 5), 16), 7], dtype=np.uint64))
