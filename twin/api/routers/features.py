"""OGC API Features - Part 1: Core, GeoJSON: landing page, conformance, collections, items;
Part 3: queryables and CQL2 filters (compiled in twin/cql2.py)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from twin import cql2, exports, features
from twin.access.principal import Principal
from twin.api.deps import (
    PoolDep,
    ReadConn,
    ReadPrincipalDep,
    SettingsDep,
    ensure_cleared,
    open_session,
)
from twin.api.errors import InvalidParameterError, NotFoundError
from twin.api.hosts import public_base
from twin.api.routers.downloads import download
from twin.api.routers.processes import CONFORMANCE as PROCESSES_CONFORMANCE
from twin.api.schemas.features import (
    Collection,
    Collections,
    Conformance,
    Feature,
    FeatureCollection,
    LandingPage,
)
from twin.exports.cityjson import FORMATS as CITY_FORMATS
from twin.tiles.catalog import LAYERS, TileLayer

router = APIRouter(tags=["features"])
GEOJSON = "application/geo+json"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    # Part 3 (filtering) and the CQL2 classes twin/cql2.py implements.
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/case-insensitive-comparison",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    # OGC API - Processes - Part 1 (twin/api/routers/processes.py).
    *PROCESSES_CONFORMANCE,
]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
#: OpenAPI schema of a file download (GeoParquet, FlatGeobuf, GeoPackage, CSV).
BINARY = {"type": "string", "format": "binary"}


def _base(request: Request) -> str:
    return public_base(request)


def _collection(name: str, who: Principal) -> TileLayer:
    layer = LAYERS.get(name)
    if layer is None or not layer.feature_collection:
        ids = ", ".join(c.id for c in features.collections())
        raise NotFoundError(f"no collection {name!r}; collections: {ids}")
    ensure_cleared(who, layer.label, f"collection {name!r}")
    return layer


FORMATS = ["json", "geojson", "application/geo+json", "application/json"]
#: ``f``: the output format; only JSON is offered (anything else: 400 naming ``f``).
Format = Annotated[
    str | None, Query(description="output format (JSON only)", json_schema_extra={"enum": FORMATS})
]
#: The items route also offers the whole collection as a file (twin.exports).
ItemsFormat = Annotated[
    str | None,
    Query(description="output format: GeoJSON pages, or the whole collection as a download",
          json_schema_extra={"enum": FORMATS + list(exports.FORMATS) + list(CITY_FORMATS)}),
]  # fmt: skip


#: ``filter``, ``filter-lang`` and ``filter-crs`` (OGC API Features Part 3).
FilterText = Annotated[
    str | None, Query(alias="filter", description="CQL2 filter on the queryables")
]
FilterLang = Annotated[
    str | None,
    Query(alias="filter-lang", description="cql2-text (default) or cql2-json",
          json_schema_extra={"enum": [*cql2.LANGS, *cql2.LEGACY_LANGS]}),
]  # fmt: skip
FilterCrs = Annotated[
    str | None,
    Query(alias="filter-crs", description="CRS of the filter's geometries (CRS84 only)",
          json_schema_extra={"enum": [cql2.CRS84]}),
]  # fmt: skip


class SchemaJSON(JSONResponse):
    media_type = "application/schema+json"


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


#: Declared keys only, as the handlers build them: optional members (a link's title, a
#: collection's temporal extent) are left out when absent, not sent as null.
OMIT_UNSET: dict[str, Any] = {"response_model_exclude_unset": True}


class Queryables(BaseModel):
    """The queryables of a collection as JSON Schema (OGC API Features Part 3)."""

    model_config = ConfigDict(populate_by_name=True)
    schema_: str = Field(alias="$schema")
    id_: str = Field(alias="$id")
    type: str
    title: str
    description: str
    properties: dict[str, dict[str, Any]]
    additionalProperties: bool
    queryables: list[dict[str, str]] = Field(
        description="the same properties as a list, in the form of the Part 3 drafts (GDAL)"
    )  # JSON Schema spells it so


def _check_f(f: str | None) -> None:
    if f is not None and f not in FORMATS:
        raise InvalidParameterError("f", "only JSON is offered (f=json)")


async def _describe(request: Request, conn: ReadConn, layer: TileLayer) -> dict[str, Any]:
    base = _base(request)
    return {
        "id": layer.id,
        "title": layer.title,
        "description": layer.description,
        "itemType": "feature",
        "crs": [CRS84],
        "extent": await features.extent(conn, layer),
        "links": [
            {"href": f"{base}/collections/{layer.id}", "rel": "self", "type": "application/json"},
            {"href": f"{base}/collections/{layer.id}/items", "rel": "items", "type": GEOJSON,
             "title": f"{layer.title} (GeoJSON)"},
            {"href": f"{base}/tiles/{layer.id}.json", "rel": "related", "type": "application/json",
             "title": "vector tiles (TileJSON)"},
            {"href": f"{base}/collections/{layer.id}/queryables",
             "rel": "http://www.opengis.net/def/rel/ogc/1.0/queryables",
             "type": "application/schema+json", "title": "queryables (CQL2 filters)"},
            {"href": f"{base}/collections/{layer.id}/queryables", "rel": "queryables",
             "type": "application/schema+json", "title": "queryables (for older clients)"},
        ],
    }  # fmt: skip


@router.get("/", summary="Landing page", response_model=LandingPage, **OMIT_UNSET)
async def landing(request: Request, f: Format = None) -> dict[str, Any]:
    _check_f(f)
    base = _base(request)
    return {
        "title": "City twin",
        "description": "City information model on H3 cells: OGC API Features and vector tiles.",
        "links": [
            {"href": f"{base}/", "rel": "self", "type": "application/json"},
            {"href": f"{base}/openapi.json", "rel": "service-desc",
             "type": "application/vnd.oai.openapi+json;version=3.0"},
            {"href": f"{base}/docs", "rel": "service-doc", "type": "text/html"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
            {"href": f"{base}/processes", "rel": "http://www.opengis.net/def/rel/ogc/1.0/processes",
             "type": "application/json", "title": "the simulations (OGC API Processes)"},
        ],
    }  # fmt: skip


@router.get("/conformance", summary="Conformance classes", response_model=Conformance)
async def conformance(f: Format = None) -> dict[str, Any]:
    _check_f(f)
    return {"conformsTo": CONFORMANCE}


@router.get("/collections", summary="Feature collections", response_model=Collections, **OMIT_UNSET)
async def list_collections(
    request: Request, conn: ReadConn, who: ReadPrincipalDep, f: Format = None
) -> dict[str, Any]:
    """The collections the caller is cleared for (their data class, twin.access.classification)."""
    _check_f(f)
    base = _base(request)
    return {
        "links": [{"href": f"{base}/collections", "rel": "self", "type": "application/json"}],
        "collections": [await _describe(request, conn, c) for c in features.collections()
                        if who.cleared_for(c.label)],
    }  # fmt: skip


@router.get(
    "/collections/{collection_id}", summary="A feature collection", response_model=Collection,
    **OMIT_UNSET,
)  # fmt: skip
async def get_collection(
    collection_id: str, request: Request, conn: ReadConn, who: ReadPrincipalDep, f: Format = None
) -> dict[str, Any]:
    _check_f(f)
    return await _describe(request, conn, _collection(collection_id, who))


#: ``{collectionId}`` as in the OGC OpenAPI building blocks: clients (GDAL) look the items
#: path up by that name to learn the query parameters (``filter-lang``) it takes.
#: The handler answers with its own JSONResponse (pages of up to 10 000 features are not
#: validated again); the model documents it and the fuzz test checks answers against it.
@router.get(
    "/collections/{collectionId}/items", summary="Features of a collection",
    response_model=FeatureCollection, response_class=GeoJSONResponse,
    responses={200: {
        "content": {x.media_type: {"schema": BINARY}
                    for x in (*exports.FORMATS.values(), *CITY_FORMATS.values())},
        "description": "GeoJSON page, or the whole collection as a file (f=...)"}},
)  # fmt: skip
async def get_items(
    collection_id: Annotated[str, Path(alias="collectionId")],
    request: Request,
    conn: ReadConn,
    settings: SettingsDep,
    who: ReadPrincipalDep,
    pool: PoolDep,
    limit: Annotated[int, Query(ge=1, le=features.MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=features.MAX_OFFSET)] = 0,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (CRS84)")] = None,
    datetime: Annotated[str | None, Query(description="instant or interval (events)")] = None,
    filter_: FilterText = None,
    filter_lang: FilterLang = None,
    filter_crs: FilterCrs = None,
    f: ItemsFormat = None,
) -> Response:
    """Paged GeoJSON. ``filter`` takes CQL2 (see ``/queryables``); other query parameters
    filter by equality on a property (``use=office``). ``f=parquet|fgb|gpkg|csv``: the whole
    matching collection as one file (audited); ``f=cityjson|cityjsonseq``: the buildings as
    CityJSON 2.0 / CityJSONSeq LoD1 solids."""
    if f in exports.FORMATS or f in CITY_FORMATS:
        layer = _collection(collection_id, who)
        if request.app.state.reads is None:
            return await download(conn, who, layer, f, dict(request.query_params), settings)
        # A download is audited in its own transaction: on the primary, not a read replica.
        async with open_session(request, pool) as session:
            return await download(session.conn, who, layer, f, dict(request.query_params), settings)
    _check_f(f)
    layer = _collection(collection_id, who)
    params = dict(request.query_params)
    feats, matched = await features.items(
        conn, layer, params, limit=limit, offset=offset, k=settings.suppression_k
    )
    url = f"{_base(request)}/collections/{layer.id}/items"
    keep = {k: v for k, v in params.items() if k not in ("offset", "limit")}

    def link(rel: str, off: int) -> dict[str, str]:
        q = urlencode({**keep, "limit": limit, "offset": off})
        return {"href": f"{url}?{q}", "rel": rel, "type": GEOJSON}

    links = [link("self", offset)]
    if offset + len(feats) < matched:
        links.append(link("next", offset + limit))
    if offset > 0:
        links.append(link("prev", max(0, offset - limit)))
    body = {
        "type": "FeatureCollection",
        "features": feats,
        "numberMatched": matched,
        "numberReturned": len(feats),
        "links": links,
    }
    return JSONResponse(body, media_type=GEOJSON)


@router.get(
    "/collections/{collection_id}/queryables",
    summary="Queryables of a collection (JSON Schema)",
    response_model=Queryables,
    response_class=SchemaJSON,
    # The same document as plain JSON, to clients that ask for JSON but not JSON Schema (GDAL).
    responses={200: {"content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Queryables"}}}}},
)  # fmt: skip
async def get_queryables(
    collection_id: str, request: Request, who: ReadPrincipalDep, f: Format = None
) -> JSONResponse:
    """The properties a CQL2 ``filter`` on this collection may name, with their types.

    ``application/schema+json``, or ``application/json`` to a client that asks for JSON but not
    for JSON Schema (GDAL)."""
    _check_f(f)
    layer = _collection(collection_id, who)
    schema = cql2.queryables_schema(layer, f"{_base(request)}/collections/{layer.id}/queryables")
    body = Queryables.model_validate(schema).model_dump(by_alias=True)
    accept = request.headers.get("accept", "")
    plain = "application/json" in accept and "schema+json" not in accept
    return JSONResponse(body, media_type="application/json" if plain else SchemaJSON.media_type)


@router.get(
    "/collections/{collection_id}/items/{feature_id}", summary="One feature",
    response_model=Feature, response_class=GeoJSONResponse,
)  # fmt: skip
async def get_item(
    collection_id: str, feature_id: str, request: Request, conn: ReadConn, settings: SettingsDep,
    who: ReadPrincipalDep, f: Format = None,
) -> JSONResponse:  # fmt: skip
    _check_f(f)
    layer = _collection(collection_id, who)
    # ASCII digits of a BIGINT: int() fails on '²' and on texts of more than 4300 digits.
    if not (feature_id.isascii() and feature_id.isdigit() and len(feature_id) <= 19):
        raise NotFoundError(f"no feature {feature_id!r} in {layer.id}")
    feat = await features.item(conn, layer, int(feature_id), k=settings.suppression_k)
    if feat is None:
        raise NotFoundError(f"no feature {feature_id} in {layer.id}")
    base = f"{_base(request)}/collections/{layer.id}"
    feat["links"] = [
        {"href": f"{base}/items/{feature_id}", "rel": "self", "type": GEOJSON},
        {"href": base, "rel": "collection", "type": "application/json"},
    ]
    return JSONResponse(feat, media_type=GEOJSON)
