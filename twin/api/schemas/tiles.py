"""Models of ``/tiles``: TileJSON 3.0.0 and the MapLibre style (the tiles themselves are binary
Mapbox Vector Tiles, declared on the route)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class VectorLayer(BaseModel):
    id: str = Field(description="the layer id inside the tiles")
    fields: dict[str, str] = Field(description="property -> type (String, Number, Boolean)")
    description: str | None = None
    minzoom: int | None = None
    maxzoom: int | None = None


class TileJSON(BaseModel):
    """TileJSON 3.0.0 (https://github.com/mapbox/tilejson-spec/tree/master/3.0.0)."""

    tilejson: str = Field(description="the TileJSON version: 3.0.0")
    name: str | None = None
    description: str | None = None
    version: str | None = None
    attribution: str | None = None
    template: str | None = None
    legend: str | None = None
    scheme: str | None = Field(None, description="xyz (the default) or tms")
    tiles: list[str] = Field(description="tile URL templates with {z}, {x}, {y}")
    grids: list[str] | None = None
    data: list[str] | None = None
    minzoom: int | None = Field(None, description="lowest zoom with tiles")
    maxzoom: int | None = Field(None, description="highest zoom with tiles")
    bounds: list[float] | None = Field(None, description="west, south, east, north (degrees)")
    center: list[float | int] | None = Field(None, description="longitude, latitude, zoom")
    fillzoom: int | None = None
    vector_layers: list[VectorLayer]


class Style(BaseModel):
    """A MapLibre style (https://maplibre.org/maplibre-style-spec/): sources and layers are open
    objects, as the style specification defines them."""

    # Root members of the style spec beyond these (light, terrain, transition, ...) pass through.
    model_config = ConfigDict(extra="allow")
    version: int = Field(description="style specification version: 8")
    name: str | None = None
    metadata: dict[str, Any] | None = None
    center: list[float] | None = None
    zoom: float | None = None
    sprite: str | list[Any] | None = None
    glyphs: str | None = None
    sources: dict[str, dict[str, Any]] = Field(description="source id -> source (vector: url)")
    layers: list[dict[str, Any]] = Field(description="the style's layers, drawn in order")
