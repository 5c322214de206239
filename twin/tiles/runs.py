"""Tile layers of one simulation run: ``flood_<run>``, ``flood_roads_<run>``, ``traffic_<run>``.

A run's results never change once stored, so each run is its own layer (the run id is part of
the layer id, hence of every cache key and ETag). The version keys still name the result
tables, so rebuilding the demo (which truncates runs and reuses ids) refreshes the tiles.
"""

from __future__ import annotations

import re
from functools import lru_cache

from twin.tiles.catalog import TileLayer

RUN_LAYER = re.compile(r"^(flood|flood_roads|traffic)_([1-9][0-9]{0,17})$")
#: Run kind that each family of run layers reads.
RUN_KIND = {"flood": "flood", "flood_roads": "flood", "traffic": "traffic"}
#: Water shallower than this (m) is a film on the ground, not a flood: left out of the tiles.
MIN_DEPTH_M = 0.01
#: The run's cells deeper than that (a catalog constant: MIN_DEPTH_M is ours, the run bound).
_FLOOD_JOIN = (
    "JOIN twin.flood_cell_result f ON f.run_id = %(run)s AND f.res = t.res"
    " AND f.cell = t.cell AND f.max_depth_m >= " + repr(MIN_DEPTH_M)
)

#: Travel-time index bands of Chinese traffic reports (same cut points as twin.sim.traffic).
_BAND = (
    "CASE WHEN r.tti < 1.5 THEN 'free-flowing' WHEN r.tti < 2.0 THEN 'slow'"
    " WHEN r.tti < 4.0 THEN 'congested' ELSE 'severely congested' END"
)


def _flood(run_id: int) -> TileLayer:
    return TileLayer(
        f"flood_{run_id}", f"Flood depth, run {run_id}", "cell_stats",
        {"h3": "twin.h3_to_hex(t.cell)", "res": "t.res",
         "max_depth_m": "round(f.max_depth_m::numeric, 3)::float8",
         "time_of_max_s": "round(f.time_of_max_s::numeric)::float8",
         "flooded_share": "round(f.flooded_share::numeric, 3)::float8",
         "max_hazard": "round(f.max_hazard::numeric, 2)::float8",
         "affected_buildings": "f.affected_buildings"},
        join=_FLOOD_JOIN,
        run_id=run_id, minzoom=8, id_expr="t.cell", order="t.cell",
        versions=("flood", "cell_stats"), res_by_zoom=True, feature_collection=False,
        fields={"h3": "String", "res": "Number", "max_depth_m": "Number",
                "time_of_max_s": "Number", "flooded_share": "Number", "max_hazard": "Number",
                "affected_buildings": "Number"},
        description="Maximum water depth (m) per H3 cell of one storm run, cells deeper than "
        f"{MIN_DEPTH_M} m.",
    )  # fmt: skip


def _flood_roads(run_id: int) -> TileLayer:
    return TileLayer(
        f"flood_roads_{run_id}", f"Roads reached by water, run {run_id}", "road_link",
        {"road_class": "t.road_class", "name": "t.name", "state": "f.state",
         "max_depth_m": "round(f.max_depth_m::numeric, 3)::float8"},
        join="JOIN twin.flood_link_result f ON f.run_id = %(run)s AND f.link_id = t.id",
        run_id=run_id, minzoom=9, geometry="line", simplify_below=14,
        versions=("flood", "road_link"), feature_collection=False,
        fields={"road_class": "String", "name": "String", "state": "String",
                "max_depth_m": "Number"},
        description="Road links with water on them: passable, slowed (>= 15 cm) or closed "
        "(>= 30 cm).",
    )  # fmt: skip


def _traffic(run_id: int) -> TileLayer:
    return TileLayer(
        f"traffic_{run_id}", f"Traffic, run {run_id}", "road_link",
        {"road_class": "t.road_class", "name": "t.name",
         "flow_vph": "round(r.flow_vph::numeric)::float8",
         "vc_ratio": "round(r.vc_ratio::numeric, 2)::float8",
         "tti": "round(r.tti::numeric, 2)::float8", "closed": "r.closed", "band": _BAND},
        join="JOIN twin.traffic_link_result r ON r.run_id = %(run)s AND r.link_id = t.id",
        run_id=run_id, minzoom=9, geometry="line", simplify_below=14,
        versions=("traffic", "road_link"), feature_collection=False,
        fields={"road_class": "String", "name": "String", "flow_vph": "Number",
                "vc_ratio": "Number", "tti": "Number", "closed": "Boolean", "band": "String"},
        description="Peak-hour flow (veh/h), v/c, travel-time index and its band, closures.",
    )  # fmt: skip


_BUILD = {"flood": _flood, "flood_roads": _flood_roads, "traffic": _traffic}


@lru_cache(maxsize=512)
def run_tile_layer(name: str) -> tuple[str, int, TileLayer] | None:
    """``(run kind, run id, layer)`` for a run layer name, or None if ``name`` is not one."""
    m = RUN_LAYER.match(name)
    if m is None:
        return None
    family, run_id = m.group(1), int(m.group(2))
    return RUN_KIND[family], run_id, _BUILD[family](run_id)
