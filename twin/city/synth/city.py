"""Generate a whole synthetic city: every layer, consistent with the others, fixed by a seed.

``generate_city(size, seed)`` is pure (no database, no files): frames with EPSG:4326 geometries
and H3 cells, the DEM and drainage rasters, and a lazy iterator of residents (chunked, since the
large city has about 12 million).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from twin import grid
from twin.city.synth.buildings import make_addresses, place_buildings
from twin.city.synth.frame import SIZES, CityFrame, to_wgs84, xy_to_lonlat
from twin.city.synth.layout import make_admin, make_blocks, make_lines, make_network, zone_blocks
from twin.city.synth.people import iter_people, make_enterprises, residents_per_building
from twin.city.synth.sites import make_events, make_hazard_sites, make_sensors
from twin.city.synth.terrain import Pocket, Raster, make_dem, make_drainage, plan_pockets

Progress = Callable[[str], None]


@dataclass
class SyntheticCity:
    """A generated city. Frames carry ``geometry`` (shapely, EPSG:4326) and, for point-like
    entities, ``cell`` (H3 at ``res``)."""

    frame: CityFrame
    res: int
    admin: pd.DataFrame
    nodes: pd.DataFrame
    links: pd.DataFrame
    parcels: pd.DataFrame
    buildings: pd.DataFrame
    addresses: pd.DataFrame
    enterprises: pd.DataFrame
    hazard_sites: pd.DataFrame
    sensors: pd.DataFrame
    events: pd.DataFrame
    residents: np.ndarray
    dem: Raster
    drainage: Raster
    pockets: list[Pocket]
    _people: Callable[[], Iterator[pd.DataFrame]] = field(repr=False)

    @property
    def population(self) -> int:
        return int(self.residents.sum())

    def people(self) -> Iterator[pd.DataFrame]:
        """Residents in chunks, with ``home_cell`` and ``work_cell`` from their buildings."""
        return self._people()

    def counts(self) -> dict[str, int]:
        return {
            "admin_area": len(self.admin),
            "road_node": len(self.nodes),
            "road_link": len(self.links),
            "parcel": len(self.parcels),
            "building": len(self.buildings),
            "address": len(self.addresses),
            "person": self.population,
            "enterprise": len(self.enterprises),
            "hazard_site": len(self.hazard_sites),
            "sensor": len(self.sensors),
            "event": len(self.events),
        }


def generate_city(
    size: str = "small",
    seed: int = 1,
    *,
    center: tuple[float, float] = (120.16, 30.27),
    crs: str = "EPSG:32651",
    res: int = 10,
    progress: Progress | None = None,
) -> SyntheticCity:
    """Generate the city of ``size`` (tiny, small, medium, large) for ``seed``."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    say = progress or (lambda _msg: None)
    frame = CityFrame(SIZES[size], seed, center, crs)

    say("roads")
    lines = make_lines(frame)
    net = make_network(frame, lines)
    say("blocks and land use")
    blocks = make_blocks(frame, lines)
    parcels = zone_blocks(frame, blocks)
    parcels.insert(0, "id", np.arange(1, len(parcels) + 1))

    say("administration")
    admin = make_admin(frame)
    patch_id, patch_district = _patch_lookup(admin)
    xs, ys = admin.attrs["patch_xs"], admin.attrs["patch_ys"]

    def locate(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        gx = np.clip(np.searchsorted(xs, x, side="right") - 1, 0, len(xs) - 2)
        gy = np.clip(np.searchsorted(ys, y, side="right") - 1, 0, len(ys) - 2)
        return patch_id[gx, gy], patch_district[gx, gy]

    parcels["area_id"], _ = locate(parcels.cx.to_numpy(), parcels.cy.to_numpy())
    parcels["code"] = [f"P{i:06d}" for i in parcels.id]

    say("terrain")
    built = parcels[
        parcels.zone.isin(["residential", "old_town"]) & parcels.land_use.str.startswith("R")
    ]
    pockets = plan_pockets(frame, built[["cx", "cy"]].to_numpy())
    dem = make_dem(frame, pockets)
    drainage = make_drainage(frame, dem)

    say("buildings and addresses")
    buildings = place_buildings(frame, parcels)
    buildings["area_id"], district_of = locate(buildings.cx.to_numpy(), buildings.cy.to_numpy())
    district_names = dict(zip(admin.id, admin.name, strict=True))
    addresses = make_addresses(frame, buildings, parcels, lines, district_of, district_names)
    addresses["area_id"] = buildings.area_id.to_numpy()

    say("people and enterprises")
    residents = residents_per_building(frame, buildings)
    enterprises = make_enterprises(frame, buildings)

    say("hazard sites, sensors and events")
    hazard_sites = make_hazard_sites(frame, buildings, parcels, enterprises, net.nodes, net.links)
    sensors = make_sensors(frame, pockets, net.links)
    events = make_events(
        frame,
        int(residents.sum()),
        _event_anchors(buildings, residents, hazard_sites, net.links, pockets),
    )
    events["area_id"], _ = locate(events.x.to_numpy(), events.y.to_numpy())

    say("to WGS 84 and H3 cells")
    admin["geometry"] = _admin_geometries(admin, frame)
    for df in (net.nodes, buildings, addresses, enterprises, hazard_sites, sensors, events):
        x = df.cx if "cx" in df else df.x
        y = df.cy if "cy" in df else df.y
        lon, lat = xy_to_lonlat(x.to_numpy(), y.to_numpy(), crs)
        df["lon"], df["lat"] = lon, lat
        df["cell"] = grid.points_to_cells(lon, lat, res)
    for df in (net.links, parcels, buildings):
        df["geometry"] = to_wgs84(df.geometry.to_numpy(), crs)
    mids = shapely.line_interpolate_point(net.links.geometry.to_numpy(), 0.5, normalized=True)
    net.links["cell"] = grid.points_to_cells(shapely.get_x(mids), shapely.get_y(mids), res)

    b_cell = buildings.cell.to_numpy()
    b_index = pd.Index(buildings.id.to_numpy())

    def people() -> Iterator[pd.DataFrame]:
        for chunk in iter_people(frame, buildings, residents, district_of):
            h = b_index.get_indexer(chunk.home_building_id.to_numpy())
            chunk["home_cell"] = b_cell[h]
            w = chunk.workplace_building_id.to_numpy(dtype="float64", na_value=np.nan)
            has = ~np.isnan(w)
            wc = pd.Series(pd.NA, index=chunk.index, dtype="Int64")
            wc[has] = b_cell[b_index.get_indexer(w[has].astype(np.int64))]
            chunk["work_cell"] = wc.array
            chunk["home_address_id"] = chunk.home_building_id  # address ids equal building ids
            chunk["district_id"] = district_of[h]  # the partition key of twin.person
            yield chunk

    return SyntheticCity(
        frame=frame,
        res=res,
        admin=admin,
        nodes=net.nodes,
        links=net.links,
        parcels=parcels,
        buildings=buildings,
        addresses=addresses,
        enterprises=enterprises,
        hazard_sites=hazard_sites,
        sensors=sensors,
        events=events,
        residents=residents,
        dem=dem,
        drainage=drainage,
        pockets=pockets,
        _people=people,
    )


def _patch_lookup(admin: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Arrays [gx, gy] -> grid patch id and district id."""
    nx = len(admin.attrs["patch_xs"]) - 1
    ny = len(admin.attrs["patch_ys"]) - 1
    pid = np.zeros((nx, ny), dtype=np.int64)
    did = np.zeros((nx, ny), dtype=np.int64)
    parent = dict(zip(admin.id, admin.parent_id, strict=True))
    level = dict(zip(admin.id, admin.level, strict=True))
    for row in admin[admin.level == "grid"].itertuples():
        gx, gy = row.ix[0], row.iy[0]
        pid[gx, gy] = row.id
        d = row.id
        while level[d] != "district":
            d = int(parent[d])
        did[gx, gy] = d
    return pid, did


def _admin_geometries(admin: pd.DataFrame, frame: CityFrame) -> list[shapely.Geometry]:
    """Patches are rectangles cut in the projected CRS and moved to EPSG:4326 vertex by vertex;
    every coarser area is the exact union of its children, so nesting holds without tolerance."""
    xs, ys = admin.attrs["patch_xs"], admin.attrs["patch_ys"]
    geoms: dict[int, shapely.Geometry] = {}
    patches = admin[admin.level == "grid"]
    boxes = []
    for row in patches.itertuples():
        gx, gy = row.ix[0], row.iy[0]
        # Corners of neighbouring patches are the same numbers, so they stay shared after
        # reprojection; densify edges with the neighbours' corners (none on a regular lattice).
        boxes.append(shapely.box(xs[gx], ys[gy], xs[gx + 1], ys[gy + 1]))
    for pid, g in zip(patches.id, to_wgs84(boxes, frame.crs), strict=True):
        geoms[int(pid)] = g
    children: dict[int, list[int]] = {}
    for row in admin.itertuples():
        if row.parent_id is not None and not pd.isna(row.parent_id):
            children.setdefault(int(row.parent_id), []).append(int(row.id))
    for level in ("community", "street", "district", "city"):
        for aid in admin[admin.level == level].id:
            kids = [geoms[k] for k in children[int(aid)]]
            geoms[int(aid)] = shapely.coverage_union_all(kids)
    return [geoms[int(i)] for i in admin.id]


def _event_anchors(
    buildings: pd.DataFrame,
    residents: np.ndarray,
    hazard_sites: pd.DataFrame,
    links: pd.DataFrame,
    pockets: list[Pocket],
) -> dict[str, np.ndarray]:
    def pts(
        df: pd.DataFrame, w: np.ndarray | None = None, x: str = "cx", y: str = "cy"
    ) -> np.ndarray:
        weight = np.ones(len(df)) if w is None else np.asarray(w, dtype=np.float64)
        return np.column_stack([df[x].to_numpy(), df[y].to_numpy(), weight])

    homes = buildings.assign(r=residents)[residents > 0]
    shops = buildings[buildings.use.isin(["commercial", "office"])]
    factories = buildings[buildings.use.isin(["industrial", "warehouse"])]
    cons = hazard_sites[hazard_sites.category == "construction_site"]
    mids = shapely.line_interpolate_point(links.geometry.to_numpy(), 0.5, normalized=True)
    road_w = links.road_class.map({"expressway": 4.0, "primary": 3.0, "secondary": 2.0}).fillna(1.0)
    roads = np.column_stack([shapely.get_x(mids), shapely.get_y(mids), road_w.to_numpy()])
    pk = np.array([[p.x, p.y, p.depth_m] for p in pockets]) if pockets else np.empty((0, 3))
    return {
        "homes": pts(homes, homes.r.to_numpy()),
        "shops": pts(shops, shops.floor_area_m2.to_numpy()),
        "factories": pts(factories, factories.floor_area_m2.to_numpy()),
        "construction": pts(cons, None, "x", "y"),
        "roads": roads,
        "buildings": pts(buildings, buildings.floor_area_m2.to_numpy()),
        "pockets": pk,
    }
