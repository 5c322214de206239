"""Buildings inside parcels, and a standard address for each.

Footprints are laid on a lattice inside each parcel (set back from its edge) with a jitter of at
most a quarter of the gap between neighbours, so they never overlap and always lie inside their
parcel. Floors follow the parcel's plot ratio within the range of the building type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import shapely

from twin.city.address import normalize
from twin.city.synth.frame import CITY_NAME, CityFrame
from twin.city.synth.layout import Lines

SETBACK_M = 5.0


@dataclass(frozen=True)
class Typology:
    """A building type: footprint (m), lattice pitch (m), floor range, storey height (m), use."""

    use: str
    size: tuple[float, float]
    pitch: tuple[float, float]
    floors: tuple[int, int]
    storey_m: float
    single: bool = False  # one building per parcel (stations, utilities)


def typology(land_use: str, zone: str) -> Typology | None:
    """The building type for a parcel's land use (GB 50137) and zone; None for unbuilt land."""
    major = land_use[0]
    if major == "R":
        if zone == "cbd":
            return Typology("residential", (28, 14), (40, 34), (18, 32), 3.0)
        if land_use == "R1" or zone == "hills":
            return Typology("residential", (12, 10), (20, 18), (2, 3), 3.2)
        if zone == "old_town" or land_use == "R3":
            return Typology("residential", (16, 10), (22, 16), (2, 6), 3.0)
        return Typology("residential", (24, 12), (32, 24), (5, 18), 3.0)
    if land_use == "B2":
        return Typology("office", (32, 32), (46, 46), (12, 48), 4.0)
    if major == "B":
        if zone == "cbd":
            return Typology("commercial", (30, 30), (44, 44), (8, 40), 4.5)
        return Typology("commercial", (28, 16), (38, 26), (2, 8), 4.5)
    if land_use == "A3":
        return Typology("education", (44, 16), (56, 36), (3, 6), 3.8)
    if land_use == "A5":
        return Typology("health", (36, 26), (50, 40), (4, 14), 4.0)
    if major == "A":
        return Typology("public", (36, 24), (50, 36), (3, 12), 4.0)
    if major == "M":
        return Typology("industrial", (48, 28), (62, 40), (1, 3), 6.0)
    if major == "W":
        return Typology("warehouse", (60, 36), (74, 48), (1, 2), 8.0)
    if major == "S":
        return Typology("transport", (40, 30), (0, 0), (1, 3), 5.0, single=True)
    if major == "U":
        return Typology("other", (30, 20), (0, 0), (1, 2), 5.0, single=True)
    return None  # G, E: parks and ecological land stay unbuilt


def place_buildings(frame: CityFrame, parcels: pd.DataFrame) -> pd.DataFrame:
    """Footprints for every parcel.

    Returns columns: id, parcel_id, use, floors, height_m, footprint_m2, geometry (projected),
    cx, cy.
    """
    rng = np.random.default_rng([frame.seed, 6])
    out_geoms: list[np.ndarray] = []
    out_parcel: list[np.ndarray] = []
    out_use: list[str] = []
    out_floors: list[np.ndarray] = []
    out_storey: list[np.ndarray] = []
    for p in parcels.itertuples():
        t = typology(p.land_use, p.zone)
        if t is None:
            continue
        inner = shapely.buffer(p.geometry, -SETBACK_M)
        if inner.is_empty:
            continue
        boxes = _lattice(inner, t, rng, pitch_scale=frame.spec.building_pitch)
        if len(boxes) == 0:
            continue
        footprint = shapely.area(boxes).sum()
        want = p.plot_ratio * p.area_m2 / footprint
        lo, hi = t.floors
        base = int(np.clip(round(want), lo, hi))
        floors = np.clip(base + rng.integers(-2, 3, len(boxes)), lo, hi)
        out_geoms.append(boxes)
        out_parcel.append(np.full(len(boxes), p.id))
        out_use += [t.use] * len(boxes)
        out_floors.append(floors)
        out_storey.append(np.full(len(boxes), t.storey_m))
    geoms = np.concatenate(out_geoms)
    floors = np.concatenate(out_floors).astype(np.int16)
    storey = np.concatenate(out_storey)
    # Roof and parapet: up to 2 m above the top storey.
    height = np.round(floors * storey + rng.uniform(0.3, 2.0, len(floors)), 1)
    centroids = shapely.centroid(geoms)
    df = pd.DataFrame(
        {
            "id": np.arange(1, len(geoms) + 1),
            "parcel_id": np.concatenate(out_parcel),
            "use": out_use,
            "floors": floors,
            "height_m": height,
            "footprint_m2": np.round(shapely.area(geoms), 1),
            "geometry": geoms,
            "cx": shapely.get_x(centroids),
            "cy": shapely.get_y(centroids),
        }
    )
    df["floor_area_m2"] = df.footprint_m2 * df.floors
    return df


def _lattice(
    inner: shapely.Geometry, t: Typology, rng: np.random.Generator, *, pitch_scale: float = 1.0
) -> np.ndarray:
    w, d = t.size
    minx, miny, maxx, maxy = shapely.bounds(inner)
    if t.single:
        c = shapely.point_on_surface(inner)
        box = shapely.box(c.x - w / 2, c.y - d / 2, c.x + w / 2, c.y + d / 2)
        inside = bool(shapely.contains(inner, box))
        return np.array([box], dtype=object) if inside else np.empty(0, dtype=object)
    # A 2 m gap at least, so a tighter lattice never makes footprints touch.
    px, py = max(t.pitch[0] * pitch_scale, w + 2.0), max(t.pitch[1] * pitch_scale, d + 2.0)
    nx = int((maxx - minx - w) // px) + 1
    ny = int((maxy - miny - d) // py) + 1
    if nx <= 0 or ny <= 0:
        return np.empty(0, dtype=object)
    # Centre the lattice in the parcel, then jitter each footprint by under a quarter of the gap.
    ox = minx + (maxx - minx - (w + (nx - 1) * px)) / 2
    oy = miny + (maxy - miny - (d + (ny - 1) * py)) / 2
    gx, gy = np.meshgrid(ox + px * np.arange(nx), oy + py * np.arange(ny))
    jx = rng.uniform(-1, 1, gx.shape) * (px - w) / 4.01
    jy = rng.uniform(-1, 1, gy.shape) * (py - d) / 4.01
    x0 = (gx + jx).ravel()
    y0 = (gy + jy).ravel()
    boxes = shapely.box(x0, y0, x0 + w, y0 + d)
    shapely.prepare(inner)
    return np.asarray(boxes[shapely.contains(inner, boxes)], dtype=object)


def make_addresses(
    frame: CityFrame,
    buildings: pd.DataFrame,
    parcels: pd.DataFrame,
    lines: Lines,
    district_of: np.ndarray,
    district_names: dict[int, str],
) -> pd.DataFrame:
    """One standard address per building on its nearest bounding road.

    Numbers run along the road: odd on the west or south side, even on the east or north side,
    in order of position, so (road, number) is unique and numbers grow along the road.
    ``district_of`` gives each building's district id (aligned with ``buildings``).
    """
    blk = parcels.set_index("id").loc[buildings.parcel_id, ["i", "j"]].to_numpy()
    i, j = blk[:, 0].astype(int), blk[:, 1].astype(int)
    cx, cy = buildings.cx.to_numpy(), buildings.cy.to_numpy()
    cand = np.column_stack(
        [
            np.abs(cx - lines.xs[i]),
            np.abs(cx - lines.xs[i + 1]),
            np.abs(cy - lines.ys[j]),
            np.abs(cy - lines.ys[j + 1]),
        ]
    )
    pick = cand.argmin(axis=1)
    is_x = pick < 2
    line_idx = np.where(pick == 0, i, np.where(pick == 1, i + 1, np.where(pick == 2, j, j + 1)))
    road = np.where(
        is_x,
        np.array(lines.x_names, dtype=object)[np.minimum(line_idx, len(lines.xs) - 1)],
        np.array(lines.y_names, dtype=object)[np.minimum(line_idx, len(lines.ys) - 1)],
    )
    # Side: west/south of the line is odd; along: position along the road.
    line_pos = np.where(
        is_x,
        lines.xs[np.minimum(line_idx, len(lines.xs) - 1)],
        lines.ys[np.minimum(line_idx, len(lines.ys) - 1)],
    )
    across = np.where(is_x, cx, cy)
    odd = across < line_pos
    along = np.where(is_x, cy, cx)
    df = pd.DataFrame({"road": road, "odd": odd, "along": along, "b": np.arange(len(buildings))})
    df = df.sort_values(["road", "odd", "along", "b"], kind="mergesort")
    rank = df.groupby(["road", "odd"], sort=False).cumcount().to_numpy()
    number = np.empty(len(df), dtype=np.int64)
    number[df.b.to_numpy()] = np.where(df.odd.to_numpy(), 2 * rank + 1, 2 * rank + 2)
    texts = [
        f"{CITY_NAME}{district_names[int(d)]}{r}{n}号"
        for d, r, n in zip(district_of, road, number, strict=True)
    ]
    return pd.DataFrame(
        {
            "id": buildings.id.to_numpy(),
            "building_id": buildings.id.to_numpy(),
            "text": texts,
            "normalized": [normalize(t) for t in texts],
            "road": road,
            "number": number,
            "x": cx,
            "y": cy,
        }
    )
