"""`twin ingest dem FILE.tif` (and roughness, drainage capacity): reprojected to the city CRS.

The raster is warped to the city's projected CRS (bilinear for continuous surfaces such as the
DEM, nearest for classed ones), nodata is carried through as -9999, and the file is registered
in ``raster_asset`` (replacing an earlier raster of the same kind and name) in one transaction.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import psycopg
import rasterio
from pyproj import CRS
from pyproj.exceptions import CRSError
from rasterio.errors import RasterioError
from rasterio.warp import Resampling, calculate_default_transform, reproject

from twin.city import rasters
from twin.city.meta import settings_for
from twin.db.engine import database_url
from twin.ingest.report import IngestError, Progress, Report, quiet
from twin.settings import Settings

NODATA = -9999.0
KINDS = {
    "dem": ("m", Resampling.bilinear),
    "roughness": ("s/m^(1/3)", Resampling.nearest),
    "drainage_capacity": ("mm/h", Resampling.nearest),
    "infiltration": ("mm/h", Resampling.nearest),
}


def ingest_raster(
    path: Path,
    settings: Settings,
    *,
    kind: str = "dem",
    name: str | None = None,
    crs: str | None = None,
    progress: Progress = quiet,
) -> Report:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}")
    t0 = time.perf_counter()
    path = Path(path)
    report = Report(str(path), kind)
    if not path.is_file():
        raise IngestError(path, "file not found")
    if path.stat().st_size == 0:
        raise IngestError(path, "file is empty")
    unit, resampling = KINDS[kind]
    settings = settings_for(settings, database_url(settings))  # the city's UTM zone
    progress(f"reprojecting {path.name} to {settings.metric_crs}")
    dst_crs = CRS.from_user_input(settings.metric_crs)
    try:
        with rasterio.open(path) as src:
            src_crs = src.crs
            if src_crs is None:
                if crs is None:
                    raise IngestError(path, "the raster declares no CRS; name it with --crs")
                try:
                    src_crs = rasterio.crs.CRS.from_user_input(crs)
                except (CRSError, rasterio.errors.CRSError) as exc:
                    raise IngestError(path, f"--crs {crs!r} is not a CRS ({exc})") from exc
            data = src.read(1, masked=True).astype("float32")
            report.read = int(data.size)
            transform, width, height = calculate_default_transform(
                src_crs, dst_crs, src.width, src.height, *src.bounds
            )
            out = np.full((height, width), NODATA, dtype="float32")
            reproject(
                source=data.filled(NODATA),
                destination=out,
                src_transform=src.transform,
                src_crs=src_crs,
                src_nodata=NODATA,
                dst_transform=transform,
                dst_crs=dst_crs,
                dst_nodata=NODATA,
                resampling=resampling,
            )
    except RasterioError as exc:
        raise IngestError(path, f"cannot read the raster ({exc})") from exc
    valid = out != NODATA
    if not valid.any():
        raise IngestError(path, "no valid pixels (all nodata)")
    report.details.update(
        nodata_pixels=int((~valid).sum()),
        width=width,
        height=height,
        crs=dst_crs.to_string(),
        min=float(out[valid].min()),
        max=float(out[valid].max()),
    )
    name = name or path.stem
    target = (settings.data_dir / "rasters" / f"{kind}-{name}.tif").resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.tif")
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=width,
        height=height,
        count=1,
        dtype="float32",
        crs=dst_crs.to_wkt(),
        transform=transform,
        nodata=NODATA,
        compress="deflate",
        tiled=True,
    ) as dst:
        dst.write(out, 1)
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        rasters.register(
            conn, kind=kind, name=name, path=target, crs=dst_crs.to_string(),
            transform=tuple(transform)[:6], width=width, height=height, nodata=NODATA, unit=unit,
        )  # fmt: skip
        # The file replaces the old one only once the row is in: a failure leaves both as they were.
        tmp.replace(target)
    report.loaded = int(valid.sum())
    report.seconds = time.perf_counter() - t0
    return report
