"""``/tiles``: Mapbox Vector Tiles per layer, TileJSON 3.0.0 and the MapLibre style.

Responses: 200 with the tile (gzip when the client accepts it); 204 for an empty tile or a zoom
outside the layer's range; 304 when ``If-None-Match`` matches; 404 for an unknown layer; 400
for tile coordinates that do not exist.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from psycopg import AsyncConnection

from twin import cql2
from twin.access.principal import CALLER_SQL, Principal, caller_params
from twin.api.deps import (
    Conn,
    PoolDep,
    PrincipalDep,
    SettingsDep,
    bearer_token,
    client_address,
    ensure_cleared,
    open_session,
    public_principal,
)
from twin.api.errors import InvalidParameterError, NotFoundError
from twin.api.hosts import public_base
from twin.api.reads import ReadRouter, ReplicaLostError, primary_lsn
from twin.api.schemas.tiles import Style, TileJSON
from twin.db.models import ROW_SECURED
from twin.risk.layers import risk_tiles
from twin.settings import Settings, project_root
from twin.tiles.catalog import LAYERS, TileLayer
from twin.tiles.runs import run_tile_layer
from twin.tiles.service import MAX_ZOOM, etag_for, get_tile, layer_version
from twin.tiles.versions import VersionReader

router = APIRouter(prefix="/tiles", tags=["tiles"])
Connect = Callable[[], AbstractAsyncContextManager[Any]]
MVT = "application/vnd.mapbox-vector-tile"
# Clients may keep tiles but must revalidate: the ETag makes that a cheap 304.
CACHE_CONTROL = "public, no-cache"


def scope_key(who: Principal) -> str:
    return hashlib.sha256(who.scope_setting.encode()).hexdigest()[:16]


def _catalog_layer(name: str, settings: Settings) -> TileLayer | None:
    """A layer of the catalog or of the risk one map (no database needed), else None."""
    layer = LAYERS.get(name)
    if layer is None and name.startswith("risk_"):
        layer = risk_tiles(settings).get(name)
    return layer


def _unknown(name: str) -> str:
    return (
        f"no tile layer {name!r}; layers: {', '.join(LAYERS)}, risk_<id> for each "
        "layer of /api/layers, and flood_<run>, flood_roads_<run>, traffic_<run> for "
        "simulation runs"
    )


async def _layer(name: str, conn: AsyncConnection, settings: Settings, who: Principal) -> TileLayer:
    layer = _catalog_layer(name, settings)
    if layer is None and (run := run_tile_layer(name)) is not None:
        kind, run_id, layer = run
        cur = await conn.execute("SELECT kind FROM twin.sim_run WHERE id = %s", (run_id,))
        row = await cur.fetchone()
        if row is None or row[0] != kind:
            raise NotFoundError(f"no {kind} run {run_id} (see /api/simulations?kind={kind})")
    if layer is None:
        raise NotFoundError(_unknown(name))
    ensure_cleared(who, layer.label, f"tile layer {name!r}")
    return layer


#: The style file is served as written (its own key order and spacing): the model documents it
#: and the fuzz test checks the answer against it.
@router.get("/style.json", summary="MapLibre style combining the layers", response_model=Style)
async def style(request: Request) -> Response:
    text = (project_root() / "tiles" / "style.json").read_text()
    base = public_base(request)
    return Response(text.replace("{base}", base), media_type="application/json")


@router.get(
    "/{layer}.json", summary="TileJSON 3.0.0 of a layer", response_model=TileJSON,
    response_model_exclude_unset=True,  # the optional TileJSON members it lacks: absent, not null
)  # fmt: skip
async def tilejson(
    layer: str, request: Request, conn: Conn, settings: SettingsDep, who: PrincipalDep
) -> dict[str, Any]:
    lyr = await _layer(layer, conn, settings, who)
    cur = await conn.execute(
        "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
        " (SELECT ST_Extent(geom) AS e FROM twin.admin_area WHERE level = 'city') x"
    )
    row = await cur.fetchone()
    bounds = list(row) if row and row[0] is not None else [-180.0, -85.0511, 180.0, 85.0511]
    base = public_base(request)
    return {
        "tilejson": "3.0.0",
        "name": lyr.title,
        "description": lyr.description,
        "tiles": [f"{base}/tiles/{lyr.id}/{{z}}/{{x}}/{{y}}.mvt"],
        "minzoom": lyr.minzoom,
        "maxzoom": lyr.maxzoom,
        "bounds": bounds,
        "center": [(bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2, max(lyr.minzoom, 13)],
        "vector_layers": [
            {"id": lyr.id, "fields": lyr.fields, "minzoom": lyr.minzoom, "maxzoom": lyr.maxzoom}
        ],
    }


@router.get(
    "/{layer}/{z}/{x}/{y}.mvt",
    summary="A vector tile",
    response_class=Response,
    responses={
        200: {
            "content": {MVT: {"schema": {"type": "string", "format": "binary"}}},
            "description": "the tile (Mapbox Vector Tile 2.1; gzip if accepted)",
        },
        204: {"description": "empty or out of zoom range"},
        304: {"description": "not modified"},
    },
)
async def tile(
    layer: str, z: int, x: int, y: int, request: Request, settings: SettingsDep, pool: PoolDep,
    filter_: Annotated[str | None, Query(
        alias="filter", description="CQL2 filter on a feature layer's queryables")] = None,
    filter_lang: Annotated[str | None, Query(
        alias="filter-lang", description="cql2-text (default) or cql2-json",
        json_schema_extra={"enum": list(cql2.LANGS)})] = None,
) -> Response:  # fmt: skip
    versions: VersionReader | None = request.app.state.versions
    if versions is not None and bearer_token(request) is None and run_tile_layer(layer) is None:
        # The public reading a catalog or risk layer (most map traffic): who it is and what
        # the layer is need no database, the version comes from the shared reader, and a
        # connection of the public pool (role, scope and actor fixed at connect) is checked
        # out only when the tile is not cached.
        who = public_principal(settings)
        lyr = _catalog_layer(layer, settings)
        if lyr is None:
            raise NotFoundError(_unknown(layer))
        ensure_cleared(who, lyr.label, f"tile layer {layer!r}")
        condition = _filter(lyr, filter_, filter_lang)
        headers = _headers(lyr, z, x, y, who)
        if "X-Tile-Reason" in headers:
            return Response(status_code=204, headers=headers)
        reads: ReadRouter | None = request.app.state.reads
        public_pool = request.app.state.public_pool
        if reads is None:
            version = await versions.version_of(lyr.version_keys)
            connect: Connect = public_pool.connection
        else:
            # Built on a replica only once it has replayed past where the version was read.
            version, lsn = await versions.version_and_lsn(lyr.version_keys)
            connect = partial(reads.connection, public_pool.connection, public=True, min_lsn=lsn)
        return await _respond(
            request, settings, lyr, z, x, y, who, version, headers, connect, condition,
        )  # fmt: skip
    async with open_session(request, pool) as session:
        who = session.principal
        lyr = await _layer(layer, session.conn, settings, who)
        condition = _filter(lyr, filter_, filter_lang)
        headers = _headers(lyr, z, x, y, who)
        if lyr.label == "core":  # audited in batches: no round trip per tile
            request.app.state.audit.add(
                who, "layer.read", f"tiles/{lyr.id}", client=client_address(request),
                detail={"z": z, "x": x, "y": y},
            )  # fmt: skip
        if "X-Tile-Reason" in headers:
            return Response(status_code=204, headers=headers)
        version = await layer_version(session.conn, lyr)
        reads = request.app.state.reads
        connect = lambda: nullcontext(session.conn)  # noqa: E731
        if reads is not None:
            connect = _on_replica(reads, session.conn, who, settings, request)
        return await _respond(
            request, settings, lyr, z, x, y, who, version, headers, connect, condition,
        )  # fmt: skip


def _on_replica(
    reads: ReadRouter, conn: AsyncConnection, who: Principal, settings: Settings, request: Request
) -> Connect:
    """Where a caller's tile is built on a miss: a replica that has replayed past the WAL
    position read (on the request's primary connection, after the version) just then, with
    the caller's role and scope set there as here; else the request's own connection."""
    params = caller_params(who, settings.api_db_role, client_address(request))

    async def setup(c: AsyncConnection) -> None:
        await c.execute(CALLER_SQL, params)

    @asynccontextmanager
    async def connect() -> AsyncIterator[AsyncConnection]:
        lsn = await primary_lsn(conn)  # only on a miss; later than the version: conservative
        async with reads.connection(
            lambda: nullcontext(conn), public=False, setup=setup, min_lsn=lsn
        ) as c:
            yield c

    return connect


def _filter(
    lyr: TileLayer, text: str | None, lang: str | None
) -> tuple[Any, dict[str, Any], str] | None:
    """The compiled CQL2 filter of a tile request, on a feature layer's queryables."""
    if text is None:
        if lang is not None:
            cql2.parse("TRUE", lang)  # an unknown filter-lang is a 400 even without a filter
        return None
    if not lyr.feature_collection:
        raise InvalidParameterError("filter", f"layer {lyr.id} takes no filter (feature "
                                    "collections do: see /collections)")  # fmt: skip
    f = cql2.compile_filter(lyr, text, lang)
    return f.condition, f.params, f.key


def _headers(lyr: TileLayer, z: int, x: int, y: int, who: Principal) -> dict[str, str]:
    """Validate the tile address; the response headers (``X-Tile-Reason``: out of zoom)."""
    if not 0 <= z <= MAX_ZOOM:
        raise InvalidParameterError("z", f"zoom must be 0..{MAX_ZOOM}")
    if not (0 <= x < 2**z and 0 <= y < 2**z):
        raise InvalidParameterError("x/y", f"tile {z}/{x}/{y} does not exist (0 <= x, y < 2^{z})")
    headers = {"Cache-Control": CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if not who.anonymous:  # what a user sees depends on its token: no shared caches
        headers = {"Cache-Control": "private, no-cache", "Vary": "Accept-Encoding, Authorization"}
    if not lyr.minzoom <= z <= lyr.maxzoom:
        headers["X-Tile-Reason"] = f"zoom outside {lyr.minzoom}..{lyr.maxzoom}"
    return headers


async def _respond(
    request: Request,
    settings: Settings,
    lyr: TileLayer,
    z: int,
    x: int,
    y: int,
    who: Principal,
    version: int,
    headers: dict[str, str],
    connect: Connect,
    condition: tuple[Any, dict[str, Any], str] | None = None,
) -> Response:
    k = settings.suppression_k
    extra = f"-k{k}" if lyr.id == "cells" else ""
    if condition is not None:  # a filtered tile is its own cache entry and ETag
        extra += f"-f{condition[2]}"
    if (lyr.table in ROW_SECURED or lyr.scope_filter) and who.scoped:
        # Row security (or the layer's scope filter) hands a scoped caller fewer rows: its
        # tiles are its own cache entries.
        extra += f"-s{scope_key(who)}"
    etag = etag_for(lyr, version, z, x, y, extra)
    headers["ETag"] = etag
    if request.headers.get("if-none-match") in (etag, f"W/{etag}"):
        return Response(status_code=304, headers=headers)
    for attempt in (1, 2):
        try:
            t = await get_tile(
                connect, request.app.state.tiles, lyr, z, x, y, version=version, k=k,
                resolutions=settings.h3_resolutions, extra=extra, condition=condition,
            )  # fmt: skip
            break
        except ReplicaLostError:  # the replica is left out now: the retry goes elsewhere
            if attempt == 2:
                raise
    if t.empty:
        return Response(status_code=204, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(t.data, media_type=MVT, headers=headers)
    return Response(gzip.decompress(t.data), media_type=MVT, headers=headers)
