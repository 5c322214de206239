"""The map layers served as vector tiles (and as OGC API Features collections).

Each layer names its table, the properties it carries, its zoom range, a feature cap, and how it
generalises at low zoom. The SQL is built here from these constants (identifiers quoted, values
bound), filtering on the stored EPSG:3857 column with the tile envelope so the GiST index
answers, and never transforming the column per request.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from psycopg import sql

from twin.access.classification import table_level
from twin.access.scope import CELL_IN_SCOPE

EXTENT = 4096
BUFFER = 64  # pixels of the tile extent drawn beyond its edge, so lines and labels join up
WEB_MERCATOR_HALF = 20037508.342789244


def tile_transform(z: int, x: int, y: int) -> dict[str, float]:
    """Scale and offsets taking EPSG:3857 metres to tile (z, x, y)'s extent units, y down:
    ``px = s * X + xo``, ``py = -s * Y + yo`` (parameters of unclipped layers' queries)."""
    size = 2 * WEB_MERCATOR_HALF / 2**z
    s = EXTENT / size
    west, north = x * size - WEB_MERCATOR_HALF, WEB_MERCATOR_HALF - y * size
    # Snapping to the unit grid moves each vertex by at most half a diagonal (0.71 units); no
    # vertex-edge distance closes if all moves stay below half the minimum clearance.
    return {"s": s, "xo": -west * s, "yo": north * s, "snap_m": math.sqrt(2) / s}


def pixel_m(z: int) -> float:
    """Size of one tile-extent unit (m) at zoom z."""
    return 2 * WEB_MERCATOR_HALF / (2**z) / EXTENT


@dataclass(frozen=True)
class TileLayer:
    """A served layer. ``props`` maps property name -> SQL expression over table alias ``t``."""

    id: str
    title: str
    table: str
    props: dict[str, str]
    minzoom: int
    maxzoom: int = 22
    cap: int = 20_000
    # False: features go into tiles whole (moved to tile coordinates, snapped to the grid, rings
    # oriented for MVT) instead of through ST_AsMVTGeom, whose clipping is most of a tile's
    # cost. Only for small polygons: a feature spills at most its own size past the buffer,
    # which clients clip anyway (and a 3D extrusion is then not cut at the tile edge). The
    # table needs ``clearance_m`` (ST_MinimumClearance): features that snapping could make
    # invalid (slivers, spikes) still go through ST_AsMVTGeom.
    clip: bool = True
    # Version keys in layer_version whose change must refresh this layer's tiles.
    versions: tuple[str, ...] = ()
    # Simplify polygons/lines below this zoom (tolerance: one extent unit).
    simplify_below: int | None = None
    order: str = "t.id"
    geometry: str = "polygon"  # polygon, line, point (for clients and the Features API)
    datetime_column: str | None = None
    # Per-zoom filter: [(max zoom, SQL condition)], first match applies.
    zoom_filters: tuple[tuple[int, str], ...] = ()
    id_expr: str = "t.id"
    description: str = ""
    feature_collection: bool = True
    fields: dict[str, str] = field(default_factory=dict)  # property -> TileJSON/JSON type
    # H3 layers: rows per resolution, the one shown chosen by zoom (up to max_res).
    res_by_zoom: bool = False
    max_res: int | None = None
    # Rows of a shared table that belong to this layer (bound as a parameter, e.g. risk layers).
    layer_key: str | None = None
    # Data class (twin.access.classification); empty: the label of the layer's table.
    classification: str = ""
    # Results of one simulation run: a join onto the run's result table (bound ``%(run)s``).
    join: str = ""
    run_id: int | None = None
    # A condition limiting the features to the caller's scope (core layers placed by cells);
    # such a layer's tiles are cached per scope.
    scope_filter: str = ""

    @property
    def label(self) -> str:
        """general, important or core: who may read this layer (twin.access.classification)."""
        return self.classification or table_level(self.table)

    @property
    def version_keys(self) -> tuple[str, ...]:
        return self.versions or (self.table,)


def _suppressed(col: str) -> str:
    # People counts from 1 to k-1 are hidden (NULL) in tiles: tiles are public. So are those the
    # cell refresh marked (complementary suppression: a count a reader could work out).
    return (f"CASE WHEN t.{col} BETWEEN 1 AND %(k)s - 1 OR '{col}' = ANY(t.hidden) THEN NULL "
            f"ELSE t.{col} END")  # fmt: skip


LAYERS: dict[str, TileLayer] = {
    layer.id: layer
    for layer in (
        TileLayer(
            "buildings", "Buildings", "building",
            {"use": "t.use", "height_m": "t.height_m", "floors": "t.floors",
             "footprint_m2": "t.footprint_m2", "h3": "twin.h3_to_hex(t.cell)"},
            minzoom=13, cap=30_000, clip=False,
            fields={"use": "String", "height_m": "Number", "floors": "Number",
                    "footprint_m2": "Number", "h3": "String"},
            description="Footprints with height and floors for 3D extrusion, and use.",
        ),
        TileLayer(
            "parcels", "Land parcels", "parcel",
            {"land_use": "t.land_use", "class": "left(t.land_use, 1)", "plot_ratio": "t.plot_ratio",
             "code": "t.code"},
            # From z12: a z11 tile spans some 20 k parcels of a Hangzhou-sized city (945 KB at
            # the large demo city); below that the cells layer is the overview.
            minzoom=12, simplify_below=15,
            fields={"land_use": "String", "class": "String", "plot_ratio": "Number",
                    "code": "String"},
            description="Parcels with their GB 50137 land-use class.",
        ),
        TileLayer(
            "roads", "Roads", "road_link",
            {"road_class": "t.road_class", "name": "t.name", "lanes": "t.lanes",
             "free_speed_kmh": "t.free_speed_kmh", "bridge": "t.bridge"},
            minzoom=9, geometry="line", simplify_below=14,
            # By z10 a tile spans a Hangzhou-sized city's 54 k primary links (600 KB at the
            # large demo city): the overview keeps the through roads, primary roads from z11.
            zoom_filters=(
                (10, "t.road_class IN ('motorway', 'expressway', 'trunk')"),
                (11, "t.road_class IN ('motorway', 'expressway', 'trunk', 'primary')"),
                (13, "t.road_class NOT IN ('residential', 'service')"),
            ),
            fields={"road_class": "String", "name": "String", "lanes": "Number",
                    "free_speed_kmh": "Number", "bridge": "Boolean"},
            description="Directed road links by class (one feature per direction).",
        ),
        TileLayer(
            "events", "Events", "event",
            {"type": "t.type", "severity": "t.severity", "status": "t.status",
             "source": "t.source", "occurred_at": "to_char(t.occurred_at AT TIME ZONE 'UTC', "
             "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"},
            minzoom=12, cap=10_000, geometry="point", order="t.occurred_at DESC, t.id",
            datetime_column="occurred_at",
            fields={"type": "String", "severity": "Number", "status": "String", "source": "String",
                    "occurred_at": "String"},
            description="Hotline complaints, accidents, fires, waterlogging reports, ...",
        ),
        TileLayer(
            "hazard_sites", "Hazard sites", "hazard_site",
            {"category": "t.category", "name": "t.name", "hazard_class": "t.hazard_class"},
            minzoom=11, geometry="point",
            fields={"category": "String", "name": "String", "hazard_class": "Number"},
            description="Fuel stations, chemical storage, construction sites, underground spaces.",
        ),
        TileLayer(
            "admin_areas", "Administrative areas", "admin_area",
            {"level": "t.level", "code": "t.code", "name": "t.name", "name_en": "t.name_en"},
            minzoom=8, simplify_below=13, cap=5_000,
            zoom_filters=(
                (9, "t.level IN ('city', 'district')"),
                (11, "t.level IN ('city', 'district', 'street')"),
                (13, "t.level IN ('district', 'street', 'community')"),
            ),
            fields={"level": "String", "code": "String", "name": "String", "name_en": "String"},
            description="City, districts, streets, communities and grid patches.",
        ),
        TileLayer(
            "cells", "H3 cells", "cell_stats",
            {"h3": "twin.h3_to_hex(t.cell)", "res": "t.res",
             "population": _suppressed("population"), "elderly": _suppressed("elderly"),
             "jobs": _suppressed("jobs"), "buildings": "t.buildings",
             "floor_area_m2": "t.floor_area_m2", "height_mean_m": "t.height_mean_m",
             "events_open": "t.events_open", "events_30d": "t.events_30d",
             "hazard_sites": "t.hazard_sites"},
            minzoom=8, id_expr="t.cell", order="t.cell", cap=20_000,
            fields={"h3": "String", "res": "Number", "population": "Number", "elderly": "Number",
                    "jobs": "Number", "buildings": "Number", "floor_area_m2": "Number",
                    "height_mean_m": "Number", "events_open": "Number", "events_30d": "Number",
                    "hazard_sites": "Number"},
            description="Cell statistics, resolution by zoom; people counts below k hidden.",
            feature_collection=False, res_by_zoom=True,
        ),
    )
}  # fmt: skip


def risk_tile_layer(
    layer_id: str, title: str, description: str, *, res: int, classification: str
) -> TileLayer:
    """The tile layer of a risk layer of the one-map catalog (rows of ``risk_score``).

    The score is hidden where it would reveal a people count below k (tiles are public)."""
    return TileLayer(
        f"risk_{layer_id}", title, "risk_score",
        {"h3": "twin.h3_to_hex(t.cell)", "res": "t.res", "level": "t.level",
         "score": "CASE WHEN t.small_count THEN NULL ELSE round(t.score::numeric, 1)::float8 END"},
        minzoom=8, id_expr="t.cell", order="t.cell", versions=("risk_score",),
        fields={"h3": "String", "res": "Number", "level": "String", "score": "Number"},
        description=description, feature_collection=False, res_by_zoom=True, max_res=res,
        layer_key=layer_id, classification=classification,
        scope_filter=CELL_IN_SCOPE if classification == "core" else "",
    )  # fmt: skip


def cell_resolution(z: int, resolutions: list[int]) -> int:
    """H3 resolution shown at zoom z: 7 to z10, 8 to z12, 9 to z14, 10 above (within those kept)."""
    want = 7 if z <= 10 else 8 if z <= 12 else 9 if z <= 14 else 10
    kept = sorted(resolutions)
    return min(kept, key=lambda r: (abs(r - want), r))


def tile_query(layer: TileLayer, z: int, extra: sql.Composable | None = None) -> sql.Composed:
    """ST_AsMVT over the layer's features in tile (z, x, y); parameters z, x, y, k, res.

    ``extra``: one more condition over alias ``t`` (a compiled CQL2 filter, twin/cql2.py).

    The layer's SQL snippets (property and id expressions, order, join, zoom and scope filters)
    are constants declared in this catalog, in twin/tiles/runs.py and twin/risk/layers.py, never
    request text: sql.SQL() is safe for them. Property names are quoted as identifiers, numbers
    of ours are literals, and every request value is a bound parameter."""
    geom: sql.Composable = sql.SQL("t.geom_3857")
    if layer.simplify_below is not None and z < layer.simplify_below:
        # The tolerance is one extent unit (m), a number of ours written to the micrometre.
        tolerance = sql.SQL(format(pixel_m(z), ".6f"))
        geom = sql.SQL("ST_SimplifyPreserveTopology(t.geom_3857, {})").format(tolerance)
    where: list[sql.Composable] = [
        sql.SQL("t.geom_3857 && ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => %(margin)s)")
    ]
    for max_z, cond in layer.zoom_filters:
        if z <= max_z:
            where.append(sql.SQL(cond))
            break
    if layer.res_by_zoom:
        where.append(sql.SQL("t.res = %(res)s"))
    if layer.layer_key is not None:
        where.append(sql.SQL("t.layer_id = %(layer_key)s"))
    if layer.scope_filter:
        where.append(sql.SQL(layer.scope_filter))
    if extra is not None:
        where.append(extra)
    props = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.SQL(expr), sql.Identifier(name))
        for name, expr in layer.props.items()
    )
    size = {"geom": geom, "extent": sql.Literal(EXTENT), "buffer": sql.Literal(BUFFER)}
    clipped = sql.SQL(
        "ST_AsMVTGeom({geom}, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), {extent}, {buffer}, true)"
    ).format(**size)
    if layer.clip:
        mvt_geom = clipped
    else:
        # Positive area in tile coordinates (y down) marks an exterior ring in MVT: PostGIS's
        # "counter-clockwise" once the y axis is flipped.
        mvt_geom = sql.SQL(
            "CASE WHEN t.clearance_m > %(snap_m)s THEN ST_ForcePolygonCCW(ST_SnapToGrid("
            "ST_Affine({geom}, %(s)s, 0, 0, -%(s)s, %(xo)s, %(yo)s), 1)) ELSE {clipped} END"
        ).format(geom=geom, clipped=clipped)
    return sql.SQL(
        "SELECT ST_AsMVT(q, {name}, {extent}, 'geom', 'fid') FROM ("
        " SELECT {mvt_geom} AS geom, {fid} AS fid, {props}"
        " FROM {table} t{join}"
        " WHERE {where}"
        " ORDER BY {order} LIMIT {cap}"
        ") q WHERE q.geom IS NOT NULL AND NOT ST_IsEmpty(q.geom)"
    ).format(
        name=sql.Literal(layer.id),
        extent=sql.Literal(EXTENT),
        mvt_geom=mvt_geom,
        fid=sql.SQL(layer.id_expr),
        props=props,
        table=sql.Identifier("twin", layer.table),
        join=sql.SQL(" ") + sql.SQL(layer.join) if layer.join else sql.SQL(""),
        where=sql.SQL(" AND ").join(where),
        order=sql.SQL(layer.order),
        cap=sql.Literal(layer.cap),
    )
