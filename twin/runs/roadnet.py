"""The twin's roads as an assignment network: ``road_link`` plus zone centroids on H3 cells.

Zones come first (nodes ``0 .. Z-1``, TNTP's convention) and are marked non-through, so a route
never cuts across a centroid; road nodes follow. Road links keep their order, so link ``a`` of
the network is road link ``a`` for ``a < n_road_links``; centroid connectors come after them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import psycopg
from pyproj import Transformer
from scipy.spatial import cKDTree

from twin.sim.traffic import Network

#: BPR parameters for every road link (Bureau of Public Roads, 1964).
BPR_ALPHA = 0.15
BPR_BETA = 4.0
#: Centroid connectors: straight-line distance x detour at a local-street speed; uncongested.
CONNECTOR_KMH = 20.0
CONNECTOR_DETOUR = 1.3
CONNECTORS_PER_ZONE = 3


@dataclass(frozen=True)
class RoadGraph:
    """Road links (database ids, node indices, capacity veh/h, free speed km/h, length m,
    finest H3 cell of the midpoint) and road nodes (database ids, metric x/y in m)."""

    link_id: npt.NDArray[np.int64]
    tail: npt.NDArray[np.int64]
    head: npt.NDArray[np.int64]
    capacity_vph: npt.NDArray[np.float64]
    free_speed_kmh: npt.NDArray[np.float64]
    length_m: npt.NDArray[np.float64]
    cell: npt.NDArray[np.int64]
    node_id: npt.NDArray[np.int64]
    node_x: npt.NDArray[np.float64]
    node_y: npt.NDArray[np.float64]

    @property
    def n_links(self) -> int:
        return int(self.link_id.shape[0])

    @property
    def free_flow_min(self) -> npt.NDArray[np.float64]:
        """Free-flow time (min) of each road link."""
        return self.length_m / (self.free_speed_kmh / 3.6) / 60.0


def load_roads(conn: psycopg.Connection, metric_crs: str) -> RoadGraph:
    """Read the road graph, nodes projected to the city's metric CRS."""
    nodes = conn.execute(
        "SELECT id, ST_X(geom), ST_Y(geom) FROM twin.road_node ORDER BY id"
    ).fetchall()
    links = conn.execute(
        "SELECT id, from_node, to_node, capacity_vph, free_speed_kmh, length_m,"
        " coalesce(cell, 0) FROM twin.road_link ORDER BY id"
    ).fetchall()
    n = np.array(nodes, dtype=np.float64).reshape(-1, 3)
    node_id = n[:, 0].astype(np.int64)
    to_m = Transformer.from_crs("EPSG:4326", metric_crs, always_xy=True)
    x, y = to_m.transform(n[:, 1], n[:, 2])
    lk = np.array([r[:6] for r in links], dtype=np.float64).reshape(-1, 6)
    index = np.searchsorted(node_id, lk[:, 1:3].astype(np.int64))
    return RoadGraph(
        link_id=lk[:, 0].astype(np.int64),
        tail=index[:, 0],
        head=index[:, 1],
        capacity_vph=lk[:, 3],
        free_speed_kmh=lk[:, 4],
        length_m=lk[:, 5],
        cell=np.array([r[6] for r in links], dtype=np.int64),
        node_id=node_id,
        node_x=np.asarray(x, dtype=np.float64),
        node_y=np.asarray(y, dtype=np.float64),
    )


def zone_network(
    roads: RoadGraph,
    zone_x: npt.NDArray[np.float64],
    zone_y: npt.NDArray[np.float64],
    *,
    capacity_vph: npt.NDArray[np.float64] | None = None,
    connectors: int = CONNECTORS_PER_ZONE,
) -> Network:
    """Roads plus one centroid per zone joined both ways to its nearest road nodes.

    ``capacity_vph`` overrides the road links' capacities (a flood cutting lanes).
    """
    z = zone_x.shape[0]
    used = np.unique(np.concatenate([roads.tail, roads.head]))
    k = min(connectors, used.shape[0])
    tree = cKDTree(np.column_stack([roads.node_x[used], roads.node_y[used]]))
    dist, idx = tree.query(np.column_stack([zone_x, zone_y]), k=k)
    dist = np.asarray(dist).reshape(z, k)
    near = used[np.asarray(idx).reshape(z, k)]
    zones = np.repeat(np.arange(z), k)
    road_nodes = near.ravel() + z
    c_fft = dist.ravel() * CONNECTOR_DETOUR / (CONNECTOR_KMH / 3.6) / 60.0
    nc = 2 * zones.shape[0]
    cap = roads.capacity_vph if capacity_vph is None else capacity_vph
    return Network(
        n_nodes=z + roads.node_id.shape[0],
        n_zones=z,
        first_thru=z,
        tail=np.concatenate([roads.tail + z, zones, road_nodes]).astype(np.int64),
        head=np.concatenate([roads.head + z, road_nodes, zones]).astype(np.int64),
        capacity=np.concatenate([cap, np.full(nc, 1e9)]),
        # A zero-length connector would tie paths exactly; a floor of 0.01 min breaks ties.
        fft=np.concatenate([roads.free_flow_min, np.maximum(np.tile(c_fft, 2), 0.01)]),
        alpha=np.concatenate([np.full(roads.n_links, BPR_ALPHA), np.zeros(nc)]),
        # alpha 0 makes connectors constant-time; beta 1 (not 0) keeps every BPR exponent >= 1
        # as other tools require when the same network is exported to them.
        beta=np.concatenate([np.full(roads.n_links, BPR_BETA), np.ones(nc)]),
        length=np.concatenate([roads.length_m, np.tile(dist.ravel(), 2)]),
        toll=np.zeros(roads.n_links + nc),
    )
