"""``/catalog`` (DCAT-AP 3 in JSON-LD) and ``/stac`` (STAC 1.1): the open-data catalogue of
what the caller may obtain (twin/exports/inventory.py, catalog.py, stac.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from psycopg import AsyncConnection
from pydantic import BaseModel, ConfigDict, Field

from twin.access.principal import Principal
from twin.api.deps import Conn, PrincipalDep, SettingsDep
from twin.api.errors import NotFoundError
from twin.api.hosts import public_base
from twin.exports import catalog as dcat
from twin.exports import stac
from twin.exports.inventory import Inventory, inventory
from twin.settings import Settings

router = APIRouter(tags=["catalog"])


class JSONLD(JSONResponse):
    media_type = "application/ld+json"


class GeoJSON(JSONResponse):
    media_type = "application/geo+json"


class Node(BaseModel):
    """A JSON-LD node: its IRI and class (the terms are those of the document's @context)."""

    model_config = ConfigDict(extra="allow")
    id: str
    type: str | None = None


class Location(BaseModel):
    type: str
    bbox: str = Field(description="WKT polygon, CRS84 (dcat:bbox, gsp:wktLiteral)")
    geometry: str = Field(description="the same polygon as GeoJSON text (locn:geometry)")


class Period(BaseModel):
    type: str
    startDate: str | None = None
    endDate: str | None = None


class DcatDistribution(BaseModel):
    id: str
    type: str
    title: dict[str, str]
    accessURL: str
    downloadURL: str | None = None
    mediaType: str
    license: str
    byteSize: int | None = None
    conformsTo: str | None = None
    accessService: str | None = None


class DcatDataset(BaseModel):
    id: str
    type: str
    identifier: str
    title: dict[str, str] = Field(description="by language (en, zh)")
    description: dict[str, str]
    keyword: list[str]
    publisher: Node
    license: str
    accessRights: str
    classification: str = Field(description="general, important or core")
    obtainableBy: str
    distribution: list[DcatDistribution]
    spatial: Location | None = None
    temporal: Period | None = None
    modified: str | None = None
    records: int | None = Field(default=None, description="rows the caller may obtain")
    landingPage: str | None = None
    provenance: dict[str, Any] | None = None


class DcatService(BaseModel):
    id: str
    type: str
    title: dict[str, str]
    endpointURL: str
    endpointDescription: str
    conformsTo: str
    license: str
    servesDataset: list[str]


class DcatCatalog(BaseModel):
    """A dcat:Catalog in compact JSON-LD (the context is inline)."""

    context: dict[str, Any] = Field(alias="@context")
    id: str
    type: str
    conformsTo: str
    title: dict[str, str]
    description: dict[str, str]
    publisher: Node
    license: str
    landingPage: str
    modified: str | None = None
    service: list[DcatService]
    dataset: list[DcatDataset]


class StacLink(BaseModel):
    rel: str
    href: str
    type: str | None = None
    title: str | None = None


class StacCatalog(BaseModel):
    type: str
    stac_version: str
    stac_extensions: list[str]
    id: str
    title: str
    description: str
    links: list[StacLink]


class StacProvider(BaseModel):
    name: str
    roles: list[str]


class StacCollection(StacCatalog):
    license: str
    keywords: list[str]
    providers: list[StacProvider]
    extent: dict[str, Any]


class StacAsset(BaseModel):
    href: str
    type: str
    title: str
    roles: list[str]


class StacItem(BaseModel):
    type: str
    stac_version: str
    stac_extensions: list[str]
    id: str
    geometry: dict[str, Any]
    bbox: list[float]
    properties: dict[str, Any]
    links: list[StacLink]
    assets: dict[str, StacAsset]
    collection: str


async def _inventory(
    request: Request,
    conn: AsyncConnection,
    who: Principal,
    settings: Settings,
    kinds: frozenset[str] | None = None,
) -> tuple[Inventory, str]:
    base = public_base(request)
    return await inventory(conn, who, settings, base, kinds=kinds), base


@router.get(
    "/catalog", summary="Open-data catalogue (DCAT-AP 3, JSON-LD)", response_model=DcatCatalog,
    response_class=JSONLD, response_model_exclude_none=True,
)  # fmt: skip
async def get_catalog(
    request: Request, conn: Conn, who: PrincipalDep, settings: SettingsDep
) -> dict[str, Any]:
    """Every dataset the caller may obtain (feature collections, cell statistics, risk layers,
    flood runs, rasters, tile archives) with licence, publisher, access rights, extents,
    modified dates from the data, row counts and a distribution per format."""
    inv, base = await _inventory(request, conn, who, settings)
    return dcat.dcat(inv, base, public_clearance=settings.public_clearance)


@router.get(
    "/stac", summary="STAC catalog of the twin's files", response_model=StacCatalog,
    response_model_exclude_none=True,
)  # fmt: skip
async def get_stac(
    request: Request, conn: Conn, who: PrincipalDep, settings: SettingsDep
) -> dict[str, Any]:
    inv, base = await _inventory(request, conn, who, settings, stac.KINDS)
    return stac.catalog(inv, base)


@router.get(
    "/stac/collections/{collection_id}", summary="A STAC collection",
    response_model=StacCollection, response_model_exclude_none=True,
)  # fmt: skip
async def get_stac_collection(
    collection_id: str, request: Request, conn: Conn, who: PrincipalDep, settings: SettingsDep
) -> dict[str, Any]:
    inv, base = await _inventory(request, conn, who, settings, stac.KINDS)
    out = stac.collection(inv, base, collection_id)
    if out is None:
        raise NotFoundError(f"no STAC collection {collection_id!r} (see /stac)")
    return out


@router.get(
    "/stac/collections/{collection_id}/items/{item_id}", summary="A STAC item",
    response_model=StacItem, response_class=GeoJSON, response_model_exclude_none=True,
)  # fmt: skip
async def get_stac_item(
    collection_id: str, item_id: str, request: Request, conn: Conn, who: PrincipalDep,
    settings: SettingsDep,
) -> dict[str, Any]:  # fmt: skip
    inv, base = await _inventory(request, conn, who, settings, stac.KINDS)
    out = stac.item(inv, base, collection_id, item_id)
    if out is None:
        raise NotFoundError(f"no STAC item {item_id!r} in {collection_id!r}")
    return out
