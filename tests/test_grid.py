"""twin.grid against independent answers: the h3 library itself, shapely and pyproj."""

from __future__ import annotations

import h3
import numpy as np
import pytest
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.transform import xy as rasterio_xy

from twin import grid

RNG_SEED = 20261121


def _random_points(n: int, seed: int = RNG_SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # The whole globe, poles and antimeridian included: parents are pure bit arithmetic.
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    lon = rng.uniform(-180, 180, n)
    return lon, lat


def test_points_to_cells_match_h3() -> None:
    lon, lat = _random_points(500)
    for res in (0, 5, 9, 10, 15):
        cells = grid.points_to_cells(lon, lat, res)
        assert cells.dtype == np.int64
        expected = [h3.latlng_to_cell(la, lo, res) for lo, la in zip(lon, lat, strict=True)]
        assert grid.to_hex(cells) == expected


def test_points_to_cells_keeps_shape_and_rejects_bad_points() -> None:
    lon = np.full((3, 4), 120.16)
    lat = np.full((3, 4), 30.27)
    assert grid.points_to_cells(lon, lat, 9).shape == (3, 4)
    with pytest.raises(ValueError, match="point 1"):
        grid.points_to_cells([120.0, np.nan], [30.0, 30.0], 9)
    with pytest.raises(ValueError, match="point 0"):
        grid.points_to_cells([120.0], [95.0], 9)
    with pytest.raises(ValueError, match="res"):
        grid.points_to_cells([120.0], [30.0], 16)
    with pytest.raises(ValueError, match="shape"):
        grid.points_to_cells([120.0, 1.0], [30.0], 9)


def test_parents_agree_with_h3_at_every_resolution_pair() -> None:
    lon, lat = _random_points(40)
    for child_res in range(16):
        cells = grid.points_to_cells(lon, lat, child_res)
        hexes = grid.to_hex(cells)
        for parent_res in range(child_res + 1):
            got = grid.to_hex(grid.parent(cells, parent_res))
            want = [h3.cell_to_parent(c, parent_res) for c in hexes]
            assert got == want, (child_res, parent_res)


def test_parent_refuses_finer_resolution() -> None:
    cells = grid.points_to_cells([120.16], [30.27], 7)
    with pytest.raises(ValueError, match="coarser than the requested"):
        grid.parent(cells, 8)


def test_resolution_from_bits() -> None:
    lon, lat = _random_points(20)
    for res in range(16):
        assert set(grid.resolution(grid.points_to_cells(lon, lat, res)).tolist()) == {res}


def test_hex_int_round_trip_and_signed_storage() -> None:
    lon, lat = _random_points(300)
    cells = grid.points_to_cells(lon, lat, 10)
    assert (cells > 0).all()  # top bit is reserved: ids fit a signed BIGINT
    hexes = grid.to_hex(cells)
    assert all(h3.is_valid_cell(h) for h in hexes)
    assert np.array_equal(grid.to_int(hexes), cells)
    assert grid.is_valid(cells).all()
    with pytest.raises(ValueError, match="entry 1"):
        grid.to_int([hexes[0], "not-a-cell"])


def _independent_overlaps(poly: shapely.Polygon, res: int) -> dict[str, float]:
    """Shares computed from scratch: every cell within 3 rings of any cell touching the polygon,
    boundaries from h3 directly, areas with shapely in EPSG:6933."""
    to_ea = Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)

    def proj(g: shapely.Geometry) -> shapely.Geometry:
        return shapely.transform(g, lambda x, y: to_ea.transform(x, y), interleaved=False)

    seeds = {h3.latlng_to_cell(y, x, res) for x, y in poly.exterior.coords}
    seeds.add(h3.latlng_to_cell(poly.centroid.y, poly.centroid.x, res))
    cand = set()
    for s in seeds:
        cand |= set(h3.grid_disk(s, 3))
    p = proj(poly)
    out = {}
    for c in cand:
        cell_poly = shapely.Polygon([(lng, lat) for lat, lng in h3.cell_to_boundary(c)])
        a = proj(cell_poly).intersection(p).area
        if a > 0:
            out[c] = a / p.area
    return out


@pytest.mark.parametrize("res", [8, 9])
def test_polygon_shares_sum_to_one_and_match_shapely(res: int) -> None:
    polys = [
        shapely.Polygon(
            [(120.150, 30.260), (120.162, 30.261), (120.158, 30.271), (120.149, 30.268)]
        ),
        shapely.box(120.20, 30.30, 120.205, 30.304),
        shapely.Polygon([(120.1, 30.2), (120.1012, 30.2), (120.1012, 30.2008)]),  # tiny triangle
    ]
    df = grid.polygons_to_cells(polys, res)
    for i, poly in enumerate(polys):
        mine = df[df.polygon == i]
        assert mine.share.sum() == pytest.approx(1.0, abs=1e-6)
        assert (mine.share > 0).all()
        expected = _independent_overlaps(poly, res)
        got = dict(zip(grid.to_hex(mine.cell.to_numpy()), mine.share, strict=True))
        assert set(got) == set(expected)
        for c, share in expected.items():
            assert got[c] == pytest.approx(share, rel=1e-6, abs=1e-9)


def test_polygon_mapping_handles_multipolygons_and_rejects_bad_geometry() -> None:
    import geopandas as gpd

    mp = shapely.MultiPolygon(
        [shapely.box(120.0, 30.0, 120.01, 30.01), shapely.box(120.05, 30.0, 120.06, 30.01)]
    )
    gs = gpd.GeoSeries([mp], index=["parcel-7"], crs="EPSG:4326")
    df = grid.polygons_to_cells(gs, 8)
    assert set(df.polygon) == {"parcel-7"}
    assert df.share.sum() == pytest.approx(1.0, abs=1e-6)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(ValueError, match="polygon 0: invalid"):
        grid.polygons_to_cells([bowtie], 5)
    with pytest.raises(ValueError, match="expected Polygon"):
        grid.polygons_to_cells([shapely.Point(0, 0)], 5)


def test_raster_mapping_agrees_with_h3_on_pixel_centres(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A 10 m UTM 51N grid over Hangzhou, rotated slightly to exercise the full affine.
    transform = Affine(10.0, 0.5, 210_000.0, 0.3, -10.0, 3_355_000.0)
    shape = (37, 53)
    grid.clear_raster_cache()
    cells = grid.raster_to_cells(tuple(transform)[:6], shape, "EPSG:32651", 10, cache_dir=tmp_path)
    assert cells.shape == shape
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    xs, ys = rasterio_xy(transform, rows.ravel(), cols.ravel(), offset="center")
    lon, lat = Transformer.from_crs("EPSG:32651", "EPSG:4326", always_xy=True).transform(xs, ys)
    expected = [h3.latlng_to_cell(la, lo, 10) for lo, la in zip(lon, lat, strict=True)]
    assert grid.to_hex(cells.ravel()) == expected
    # Cached: the same object in memory, and a file on disk that a cold cache reloads.
    assert grid.raster_to_cells(tuple(transform)[:6], shape, "EPSG:32651", 10) is cells
    assert len(list(tmp_path.glob("raster_cells_*.npy"))) == 1
    grid.clear_raster_cache()
    again = grid.raster_to_cells(tuple(transform)[:6], shape, "EPSG:32651", 10, cache_dir=tmp_path)
    assert np.array_equal(again, cells)


def test_cells_to_geodataframe_boundaries() -> None:
    cells = grid.points_to_cells([120.16, 120.3], [30.27, 30.1], 9)
    gdf = grid.cells_to_geodataframe(cells)
    assert gdf.crs.to_epsg() == 4326
    assert list(gdf.h3) == grid.to_hex(cells)
    for h, geom in zip(gdf.h3, gdf.geometry, strict=True):
        ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(h)]
        assert shapely.equals_exact(geom, shapely.Polygon(ring), tolerance=1e-12)
        lat, lng = h3.cell_to_latlng(h)
        assert geom.contains(shapely.Point(lng, lat))
