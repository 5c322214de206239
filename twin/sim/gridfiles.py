"""The solver's grids as files: vectors burnt onto a grid, results written as GeoTIFFs.

Shared by raw-file scenarios (:mod:`twin.runs.scenario`) and runs on the twin
(:mod:`twin.runs.flood`), which both describe a grid by rasterio's ``(a, b, c, d, e, f)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import rasterio
import rasterio.features


def burn(
    shapes: Iterable[tuple[Any, float]], shape: tuple[int, int], transform: Sequence[float]
) -> npt.NDArray[np.float64]:
    """``(geometry, value)`` pairs burnt onto the grid (pixel centres inside; later pairs win);
    0 elsewhere. Missing and empty geometries are passed over."""
    kept = [(g, float(v)) for g, v in shapes if g is not None and not g.is_empty]
    if not kept:
        return np.zeros(shape)
    out: npt.NDArray[np.float64] = rasterio.features.rasterize(
        kept, out_shape=shape, transform=rasterio.Affine(*tuple(transform)[:6]), fill=0.0,
        dtype="float64",
    )  # fmt: skip
    return out


def write_geotiffs(
    out_dir: Path, arrays: Mapping[str, npt.ArrayLike], crs: Any, transform: Sequence[float]
) -> None:
    """Each array as ``out_dir/NAME`` (float32, NaN as nodata, deflate)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        data = np.asarray(arr, dtype=np.float32)
        rows, cols = data.shape
        with rasterio.open(
            out_dir / name, "w", driver="GTiff", width=cols, height=rows, count=1,
            dtype="float32", crs=crs, transform=rasterio.Affine(*tuple(transform)[:6]),
            nodata=np.nan, compress="deflate",
        ) as dst:  # fmt: skip
            dst.write(data, 1)
