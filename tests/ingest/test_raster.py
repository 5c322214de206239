"""Raster ingest: reprojection to the city CRS, nodata holes, bad rasters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
import rasterio
from rasterio.transform import from_origin

from tests.ingest.conftest import state
from twin.ingest.raster import NODATA, ingest_raster
from twin.ingest.report import IngestError
from twin.settings import Settings


def _dem(path: Path, crs: str | None, *, holes: bool = True) -> np.ndarray:
    z = np.linspace(5, 25, 60 * 80, dtype="float32").reshape(60, 80)
    if holes:
        z[10:15, 20:30] = -32768  # nodata holes
    # A Web Mercator DEM over Hangzhou: another CRS than the city's (UTM 51N).
    with rasterio.open(path, "w", driver="GTiff", width=80, height=60, count=1, dtype="float32",
                       crs=crs, transform=from_origin(13375000, 3539000, 10, 10), nodata=-32768) as dst:  # fmt: skip
        dst.write(z, 1)
    return z


def test_dem_in_another_crs_with_holes_is_reprojected(empty: Settings, tmp_path: Path) -> None:
    path = tmp_path / "dem.tif"
    z = _dem(path, "EPSG:3857")
    report = ingest_raster(path, empty, kind="dem")
    assert report.details["nodata_pixels"] > 0
    with psycopg.connect(empty.database_url) as c:
        stored, crs = c.execute(
            "SELECT path, crs FROM twin.raster_asset WHERE kind = 'dem'"
        ).fetchone()  # type: ignore[misc]
    assert crs == "EPSG:32651"
    with rasterio.open(stored) as src:
        out = src.read(1)
        assert src.crs.to_epsg() == 32651 and src.nodata == NODATA
    valid = out[out != NODATA]
    assert valid.min() >= z[z > 0].min() - 0.01 and valid.max() <= z.max() + 0.01
    assert (out == NODATA).any()  # the holes survive as nodata, never as -32768 elevations
    assert (out > -1000).sum() == valid.size


@pytest.mark.parametrize("case", ["no crs", "corrupt", "empty", "all nodata"])
def test_bad_rasters_change_nothing(empty: Settings, tmp_path: Path, case: str) -> None:
    path = tmp_path / "dem.tif"
    if case == "no crs":
        _dem(path, None)
        msg = "declares no CRS"
    elif case == "corrupt":
        path.write_bytes(b"II*\x00garbage" * 50)
        msg = "cannot read the raster"
    elif case == "empty":
        path.write_bytes(b"")
        msg = "file is empty"
    else:
        with rasterio.open(path, "w", driver="GTiff", width=4, height=4, count=1, dtype="float32",
                           crs="EPSG:32651", transform=from_origin(0, 4, 1, 1), nodata=-1) as dst:  # fmt: skip
            dst.write(np.full((4, 4), -1, dtype="float32"), 1)
        msg = "no valid pixels"
    before = state(empty.database_url or "")
    with pytest.raises(IngestError, match=msg):
        ingest_raster(path, empty)
    assert state(empty.database_url or "") == before
