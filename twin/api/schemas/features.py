"""Models of the OGC API Features routes (Part 1 Core, GeoJSON): landing page, conformance,
collections, items.

The shapes follow the OGC API Features 1.0 schemas (``landingPage``, ``confClasses``,
``collections``, ``collection``, ``extent``, ``link``, ``featureCollectionGeoJSON``,
``featureGeoJSON``). A feature's ``properties`` depend on its collection (open object); the
queryables of a collection (``/collections/{id}/queryables``) list them with their types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Link(BaseModel):
    href: str = Field(description="the link's target (absolute URL)")
    rel: str = Field(description="relation type (self, items, next, prev, data, ...)")
    type: str | None = Field(None, description="media type of the target")
    title: str | None = None
    hreflang: str | None = None
    length: int | None = None


class LandingPage(BaseModel):
    title: str | None = None
    description: str | None = None
    links: list[Link]


class Conformance(BaseModel):
    conformsTo: list[str] = Field(description="URIs of the conformance classes implemented")


class SpatialExtent(BaseModel):
    bbox: list[list[float]] = Field(description="minlon, minlat, maxlon, maxlat (degrees)")
    crs: str = Field(description="CRS of the bbox (CRS84)")


class TemporalExtent(BaseModel):
    interval: list[list[str | None]] = Field(description="[start, end] (RFC 3339; null: open)")
    trs: str | None = Field(None, description="temporal reference system (Gregorian)")


class Extent(BaseModel):
    spatial: SpatialExtent
    temporal: TemporalExtent | None = Field(None, description="only on collections with a time")


class Collection(BaseModel):
    id: str = Field(description="the collection id (a tile layer id)")
    title: str | None = None
    description: str | None = None
    itemType: str = Field("feature", description="always feature")
    crs: list[str] = Field(description="CRSs the features can be returned in (CRS84)")
    extent: Extent
    links: list[Link]


class Collections(BaseModel):
    links: list[Link]
    collections: list[Collection] = Field(description="the collections the caller may read")


class Geometry(BaseModel):
    """A GeoJSON geometry (RFC 7946), coordinates in CRS84."""

    # GeoJSON members beyond these (bbox, foreign members) pass through.
    model_config = ConfigDict(extra="allow")
    type: str = Field(description="Point, LineString, Polygon, Multi*, GeometryCollection")
    coordinates: list[Any] | None = Field(None, description="absent in a GeometryCollection")
    geometries: list[dict[str, Any]] | None = Field(None, description="of a GeometryCollection")


class Feature(BaseModel):
    type: Literal["Feature"]
    id: int | str = Field(description="the feature id (its row id, or its cell)")
    geometry: Geometry | None
    properties: dict[str, Any] | None = Field(
        description="the collection's properties (open: see /collections/{id}/queryables)"
    )
    links: list[Link] | None = Field(None, description="on /items/{featureId} only")


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[Feature]
    numberMatched: int | None = Field(None, description="features matching the filters")
    numberReturned: int | None = Field(None, description="features in this page")
    timeStamp: str | None = Field(None, description="when the answer was made (RFC 3339)")
    links: list[Link] | None = Field(None, description="self, next and prev pages")
