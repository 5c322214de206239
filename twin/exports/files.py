"""Files the twin publishes as they lie on disk: the GeoTIFFs of flood runs, the registered
rasters (DEM, roughness, drainage) and PMTiles archives put under ``<data_dir>/published/``.

Each is described from the file itself (size, modification time, footprint in CRS84 from the
GeoTIFF's bounds or the archive's header) for the catalogues (:mod:`twin.exports.catalog`,
:mod:`twin.exports.stac`), and resolved here for the download routes, which only ever serve
paths built from these fixed names, never a path from the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twin.access.classification import LEVELS
from twin.settings import Settings
from twin.tiles.catalog import LAYERS

GEOTIFF = "image/tiff; application=geotiff"
PMTILES = "application/vnd.pmtiles"

#: The rasters a flood run writes (twin.runs.flood) and what they hold.
RUN_RASTERS: dict[str, str] = {
    "max_depth.tif": "Maximum water depth (m)",
    "time_of_max.tif": "Time of the maximum depth since the storm's start (s)",
}
#: Names of published archives: plain file names, nothing that could climb out of the folder.
ARCHIVE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.pmtiles$")

Bbox = tuple[float, float, float, float]


@dataclass(frozen=True)
class FileInfo:
    """A published file: where it is, its size (bytes), when it changed, its footprint."""

    path: Path
    size: int
    modified: datetime
    bbox: Bbox | None


def stat(path: Path, bbox: Bbox | None = None) -> FileInfo | None:
    """The file's size and modification time (UTC), None when it is not there."""
    try:
        st = path.stat()
    except OSError:
        return None
    if not path.is_file():
        return None
    return FileInfo(path, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC), bbox)


def geotiff_bbox(path: Path) -> Bbox | None:
    """The GeoTIFF's bounds in CRS84 (lon/lat), None if it cannot be read."""
    import rasterio
    from rasterio.errors import RasterioError
    from rasterio.warp import transform_bounds

    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                return None
            w, s, e, n = transform_bounds(src.crs, "OGC:CRS84", *src.bounds)
    except (RasterioError, OSError):
        return None
    return (float(w), float(s), float(e), float(n))


def run_dir(settings: Settings, run_id: int) -> Path:
    return settings.data_dir / "runs" / str(run_id)


def run_rasters(settings: Settings, run_id: int) -> dict[str, FileInfo]:
    """The flood run's GeoTIFFs that are on disk (file name -> info)."""
    out = {}
    for name in RUN_RASTERS:
        path = run_dir(settings, run_id) / name
        info = stat(path)
        if info is not None:
            out[name] = FileInfo(info.path, info.size, info.modified, geotiff_bbox(path))
    return out


def published_dir(settings: Settings) -> Path:
    return settings.data_dir / "published"


@dataclass(frozen=True)
class Archive:
    """A PMTiles archive under ``<data_dir>/published/``."""

    name: str
    file: FileInfo
    layers: tuple[str, ...]
    minzoom: int
    maxzoom: int
    label: str  # the most sensitive data class of its layers (unknown layers: core)
    description: str

    @property
    def stem(self) -> str:
        return self.name.removesuffix(".pmtiles")


def read_archive(path: Path) -> Archive | None:
    """The archive's header and metadata (its layers, zooms, bounds), None if unreadable."""
    from pmtiles.reader import MmapSource, Reader

    info = stat(path)
    if info is None or not ARCHIVE_NAME.match(path.name):
        return None
    try:
        with path.open("rb") as f:
            reader = Reader(MmapSource(f))
            header = reader.header()
            meta: Any = reader.metadata()
    except Exception:  # not an archive (bad magic, truncated, not JSON): not published
        return None
    layers = tuple(
        str(v.get("id")) for v in (meta.get("vector_layers") or []) if isinstance(v, dict)
    )
    rank = max((LEVELS.index(LAYERS[x].label) if x in LAYERS else 2 for x in layers), default=2)
    bbox = (
        header["min_lon_e7"] / 1e7,
        header["min_lat_e7"] / 1e7,
        header["max_lon_e7"] / 1e7,
        header["max_lat_e7"] / 1e7,
    )
    return Archive(
        name=path.name,
        file=FileInfo(info.path, info.size, info.modified, bbox),
        layers=layers,
        minzoom=int(header["min_zoom"]),
        maxzoom=int(header["max_zoom"]),
        label=LEVELS[rank],
        description=str(meta.get("description") or ""),
    )


def archives(settings: Settings) -> list[Archive]:
    """Every readable PMTiles archive published under ``<data_dir>/published/``, by name."""
    folder = published_dir(settings)
    if not folder.is_dir():
        return []
    found = (read_archive(p) for p in sorted(folder.glob("*.pmtiles")))
    return [a for a in found if a is not None]


def archive(settings: Settings, name: str) -> Archive | None:
    """The published archive called ``name`` (a plain file name), None if there is none."""
    if not ARCHIVE_NAME.match(name):
        return None
    return read_archive(published_dir(settings) / name)
