"""Terrain and drainage rasters of the synthetic city.

The DEM is built from named parts so each feature the flood model needs is really there: a
gentle plain rising to the north, hills along the north edge, a river valley with a channel a few
metres below its banks, a lake bowl, and closed low-lying pockets in the built-up area where
rain collects.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from twin.city.synth.frame import CityFrame

MARGIN_M = 100.0  # the DEM reaches a little beyond the city so boundaries sit outside it


@dataclass
class Raster:
    """A north-up raster: ``data[row, col]``, ``transform`` as rasterio's (a, b, c, d, e, f)."""

    data: npt.NDArray[np.float32]
    transform: tuple[float, float, float, float, float, float]
    crs: str
    nodata: float | None
    unit: str

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.data.shape[0]), int(self.data.shape[1]))

    def centers(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Easting and northing (m) of every pixel centre, each of the raster's shape."""
        a, _, c, _, e, f = self.transform
        rows, cols = self.shape
        xs = c + a * (np.arange(cols) + 0.5)
        ys = f + e * (np.arange(rows) + 0.5)
        return np.meshgrid(xs, ys)


@dataclass(frozen=True)
class Pocket:
    """A closed depression: centre (m), depth (m) and radius scale sigma (m)."""

    x: float
    y: float
    depth_m: float
    sigma_m: float


def plan_pockets(frame: CityFrame, candidates_xy: npt.NDArray[np.float64]) -> list[Pocket]:
    """Choose low-lying pockets among candidate points of the built-up area (block centres of
    residential and old-town blocks), well apart from each other and from the water."""
    rng = np.random.default_rng([frame.seed, 2])
    area_km2 = frame.width * frame.height / 1e6
    n = max(3, round(area_km2 / 1.5))
    order = rng.permutation(len(candidates_xy))
    chosen: list[Pocket] = []
    min_gap = max(250.0, 0.12 * min(frame.width, frame.height))
    for i in order:
        x, y = candidates_xy[i]
        if any(np.hypot(x - p.x, y - p.y) < min_gap for p in chosen):
            continue
        chosen.append(
            Pocket(float(x), float(y), float(rng.uniform(1.2, 2.4)), float(rng.uniform(35, 70)))
        )
        if len(chosen) == n:
            break
    return chosen


def make_dem(frame: CityFrame, pockets: list[Pocket]) -> Raster:
    """Ground elevation (m above datum) at ``frame.spec.dem_res_m`` resolution."""
    res = frame.spec.dem_res_m
    cols = int(np.ceil((frame.width + 2 * MARGIN_M) / res))
    rows = int(np.ceil((frame.height + 2 * MARGIN_M) / res))
    west = frame.x0 - MARGIN_M
    north = frame.y0 + frame.height + MARGIN_M
    transform = (res, 0.0, west, 0.0, -res, north)
    rng = np.random.default_rng([frame.seed, 3])
    xs = west + res * (np.arange(cols) + 0.5)
    ys = north - res * (np.arange(rows) + 0.5)
    out = np.empty((rows, cols), dtype=np.float32)
    # Row bands keep memory bounded at the large size (one band of float64 at a time).
    band = max(1, 4_000_000 // max(cols, 1))
    phases = rng.uniform(0, 2 * np.pi, 6)
    for r0 in range(0, rows, band):
        x, y = np.meshgrid(xs, ys[r0 : r0 + band])
        out[r0 : r0 + band] = _elevation(frame, x, y, phases, pockets)
    return Raster(out, transform, frame.crs, None, "m")


def _elevation(
    frame: CityFrame,
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    phases: npt.NDArray[np.float64],
    pockets: list[Pocket],
) -> npt.NDArray[np.float64]:
    u = (x - frame.x0) / frame.width
    v = (y - frame.y0) / frame.height
    # Plain: 6 m at the river rising gently northward and southward, with soft undulation.
    z = 8.0 + 3.0 * v
    z += 0.6 * np.sin(2 * np.pi * (1.7 * u) + phases[0]) * np.sin(2 * np.pi * (1.3 * v) + phases[1])
    z += 0.3 * np.sin(2 * np.pi * (4.1 * u + 2.3 * v) + phases[2])
    # Hills along the north edge.
    hy = (y - frame.hills_y()) / (frame.y0 + frame.height + MARGIN_M - frame.hills_y())
    ramp = np.clip(hy, 0, None)
    hills = ramp**1.5 * (45 + 15 * np.sin(2 * np.pi * 3 * u + phases[3]))
    z += np.where(hy > 0, hills, 0.0)
    # River valley (broad, 3 m) and channel (parabolic, 4 m below the valley floor at its axis).
    d = np.abs(y - frame.river_y(x))
    w = frame.spec.river_width_m
    z -= 3.0 * np.exp(-((d / (4 * w)) ** 2))
    z -= np.where(d < w / 2, 4.0 * (1 - (2 * d / w) ** 2) + 0.5, 0.0)
    # Lake bowl.
    (lx, ly), (rx, ry) = frame.lake_center, frame.lake_radii
    r2 = ((x - lx) / rx) ** 2 + ((y - ly) / ry) ** 2
    z -= np.where(r2 < 1, 5.0 * (1 - r2) + 1.0, 1.0 * np.exp(-(r2 - 1) * 4))
    # Closed pockets: Gaussian dips far deeper than the plain's slope across them.
    for p in pockets:
        z -= p.depth_m * np.exp(-((x - p.x) ** 2 + (y - p.y) ** 2) / (2 * p.sigma_m**2))
    return z


def make_drainage(frame: CityFrame, dem: Raster) -> Raster:
    """Drainage capacity (mm/h the pipes can take): best in the centre, weaker at the edges and
    in the old town."""
    x, y = dem.centers()
    cx, cy = frame.cbd
    scale = 0.45 * max(frame.width, frame.height)
    cap = 22.0 + 28.0 * np.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / scale**2))
    ot = frame.old_town()
    minx, miny, maxx, maxy = shapely.bounds(ot)
    in_old = (x >= minx) & (x <= maxx) & (y >= miny) & (y <= maxy)
    cap = np.where(in_old, cap * 0.55, cap)
    return Raster(np.clip(cap, 10.0, 60.0).astype(np.float32), dem.transform, dem.crs, None, "mm/h")
