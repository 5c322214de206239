"""Models of ``/sta/v1.1`` (OGC SensorThings API 1.1).

What an entity holds depends on the path (``Things``, ``Datastreams(3)/Observations``, ...) and
on ``$select`` and ``$expand``, so an entity is an open object: the members every entity may
carry are declared (``@iot.id``, ``@iot.selfLink``), the rest (its properties, the
``<Nav>@iot.navigationLink`` links and expanded entities) pass through as
``twin/sense/entities.py`` renders them. A collection is the envelope of a page of entities.
The entity sets and their properties are those of the SensorThings 1.1 data model
(https://docs.ogc.org/is/18-088/18-088.html).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, RootModel


class Entity(BaseModel):
    """One SensorThings entity (open: its members depend on its entity set and ``$select``)."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    iot_id: int | None = Field(None, alias="@iot.id", description="the entity's id")
    iot_selfLink: str | None = Field(None, alias="@iot.selfLink", description="its URL")


class EntityCollection(BaseModel):
    """A page of an entity set or of a navigation path."""

    model_config = ConfigDict(populate_by_name=True)
    iot_count: int | None = Field(None, alias="@iot.count", description="all matching ($count)")
    iot_nextLink: str | None = Field(None, alias="@iot.nextLink", description="the next page")
    value: list[Entity] = Field(description="the entities of this page")


class ReadAnswer(RootModel[EntityCollection | Entity]):
    """``GET /sta/v1.1/{path}``: a collection for an entity set or a to-many navigation path
    (``Things``, ``Things(1)/Datastreams``), one entity for an entity or a to-one navigation
    path (``Things(1)``, ``Datastreams(1)/Thing``)."""


class EntitySetLink(BaseModel):
    name: str = Field(description="entity set (Things, Locations, Datastreams, ...)")
    url: str


class ServerSettings(BaseModel):
    conformance: list[str] = Field(description="URIs of the requirement classes implemented")


class ServiceRoot(BaseModel):
    value: list[EntitySetLink]
    serverSettings: ServerSettings


class CreatedLinks(RootModel[list[str]]):
    """One answer per dataArray row, in order: the new Observation's selfLink, or
    ``error: ...``."""
