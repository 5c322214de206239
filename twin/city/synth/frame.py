"""The frame every generator shares: size presets, extent in the projected CRS, river and lake.

All generation happens in metres in the city's projected CRS (UTM), with the city's south-west
corner at ``(x0, y0)``; geometries go to EPSG:4326 only at the end (:func:`to_wgs84`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from pyproj import Transformer

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class SizeSpec:
    """A preset of the synthetic city.

    Attributes
    ----------
    width_m, height_m
        Extent of the city (m).
    dem_res_m
        DEM pixel size (m).
    districts
        Districts along x and y; each district splits 2 x 2 into streets, each street 2 x 2 into
        communities, each community 2 x 2 into grid patches.
    local_spacing_m
        Spacing of the street grid (m); every ``collector_every``-th line is a collector and
        every ``arterial_every``-th an arterial.
    target_people
        Residents aimed at; people per residential floor area stays within a realistic band.
    building_pitch
        Scale of the lattice pitch between footprints (1: each building type's own pitch).
        Below 1 packs more, lower buildings into the same parcels (the floor area follows the
        plot ratio either way), as in a dense Chinese core city.
    """

    name: str
    width_m: float
    height_m: float
    dem_res_m: float
    districts: tuple[int, int]
    local_spacing_m: float
    collector_every: int
    arterial_every: int
    target_people: int
    river_width_m: float
    events_per_1000_people: float = 10.0
    building_pitch: float = 1.0


SIZES: dict[str, SizeSpec] = {
    # For tests: the smallest city that still has every feature.
    "tiny": SizeSpec("tiny", 1600, 1400, 10, (2, 1), 100, 2, 4, 12_000, 50),
    "small": SizeSpec("small", 3000, 3000, 5, (2, 2), 120, 2, 6, 60_000, 70),
    "medium": SizeSpec("medium", 12_000, 10_000, 10, (4, 3), 110, 3, 9, 1_000_000, 120),
    # Hangzhou-sized: 12 M residents and, with the denser lattice, over 0.8 M buildings.
    "large": SizeSpec(
        "large", 42_000, 36_000, 10, (12, 10), 110, 3, 9, 12_000_000, 200, building_pitch=0.92
    ),
}

CITY_NAME = "临江市"
CITY_NAME_EN = "Linjiang"


@dataclass
class CityFrame:
    """Extent, CRS and water of one synthetic city."""

    spec: SizeSpec
    seed: int
    center_lonlat: tuple[float, float]
    crs: str
    x0: float = field(init=False)
    y0: float = field(init=False)
    river_phase: float = field(init=False)
    lake_center: tuple[float, float] = field(init=False)
    lake_radii: tuple[float, float] = field(init=False)

    def __post_init__(self) -> None:
        to_utm = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        cx, cy = to_utm.transform(*self.center_lonlat)
        self.x0 = float(round(cx - self.spec.width_m / 2))
        self.y0 = float(round(cy - self.spec.height_m / 2))
        rng = np.random.default_rng([self.seed, 1])
        self.river_phase = float(rng.uniform(0, 2 * np.pi))
        w, h = self.spec.width_m, self.spec.height_m
        # The lake sits north-east of the river, away from the ring road and the CBD.
        self.lake_center = (
            float(self.x0 + w * rng.uniform(0.74, 0.80)),
            float(self.y0 + h * rng.uniform(0.68, 0.74)),
        )
        self.lake_radii = (w * 0.07, h * 0.06)

    @property
    def width(self) -> float:
        return self.spec.width_m

    @property
    def height(self) -> float:
        return self.spec.height_m

    @property
    def cbd(self) -> tuple[float, float]:
        """Centre of the business district: on the north bank, near the middle."""
        return (
            self.x0 + 0.5 * self.width,
            self.river_y(self.x0 + 0.5 * self.width) + 0.14 * self.height,
        )

    def river_y(self, x: npt.ArrayLike) -> Any:
        """Northing (m) of the river centreline at easting ``x`` (m): a west-east meander."""
        xr = (np.asarray(x, dtype=np.float64) - self.x0) / self.width
        return self.y0 + self.height * (
            0.42 + 0.06 * np.sin(2 * np.pi * 1.25 * xr + self.river_phase)
        )

    def river_line(self) -> shapely.LineString:
        xs = np.linspace(self.x0 - 500, self.x0 + self.width + 500, 400)
        return shapely.LineString(np.column_stack([xs, self.river_y(xs)]))

    def river_polygon(self) -> shapely.Geometry:
        return shapely.buffer(self.river_line(), self.spec.river_width_m / 2, cap_style="flat")

    def lake_polygon(self) -> shapely.Geometry:
        (cx, cy), (rx, ry) = self.lake_center, self.lake_radii
        t = np.linspace(0, 2 * np.pi, 73)[:-1]
        return shapely.Polygon(np.column_stack([cx + rx * np.cos(t), cy + ry * np.sin(t)]))

    def water(self) -> shapely.Geometry:
        return shapely.union(self.river_polygon(), self.lake_polygon())

    def old_town(self) -> shapely.Geometry:
        """The old district: west of the CBD on the north bank (low buildings, weak drains)."""
        return shapely.box(
            self.x0 + 0.08 * self.width,
            self.y0 + 0.50 * self.height,
            self.x0 + 0.36 * self.width,
            self.y0 + 0.76 * self.height,
        )

    def industrial_park(self) -> shapely.Geometry:
        return shapely.box(
            self.x0 + 0.68 * self.width,
            self.y0 + 0.02 * self.height,
            self.x0 + 0.98 * self.width,
            self.y0 + 0.28 * self.height,
        )

    def hills_y(self) -> float:
        """Northing (m) above which the hills rise."""
        return self.y0 + 0.86 * self.height


def to_wgs84(geoms: Any, crs: str) -> npt.NDArray[Any]:
    """Projected geometries -> EPSG:4326 (vertex-wise; shared vertices stay shared)."""
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    def move(x: Any, y: Any) -> Any:
        return tr.transform(x, y)

    arr = np.asarray(geoms, dtype=object)
    return np.asarray(shapely.transform(arr, move, interleaved=False), dtype=object)  # type: ignore[arg-type]


def xy_to_lonlat(x: npt.ArrayLike, y: npt.ArrayLike, crs: str) -> tuple[FloatArray, FloatArray]:
    tr = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = tr.transform(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    return np.asarray(lon), np.asarray(lat)
