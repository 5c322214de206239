"""Models of ``/api/simulations``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, RootModel


class Run(BaseModel):
    """A row of ``twin.sim_run`` as the public may see it."""

    id: int
    kind: str = Field(description="flood, traffic or flood_ensemble")
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    progress: float = Field(description="0 .. 1")
    params: dict[str, Any] = Field(description="the run's parameters (depend on the kind)")
    summary: dict[str, Any] = Field(
        description="the run in numbers (depends on the kind); affected_people is null where "
        "it would reveal a count below k to a caller without the right"
    )
    error: str | None = Field(description="why it failed")
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    links: dict[str, str] = Field(
        description="self and cells, with roads (flood) or links (traffic); self and risk "
        "(flood_ensemble)"
    )


class RunList(BaseModel):
    runs: list[Run] = Field(description="newest first")


class FloodCell(BaseModel):
    h3: str = Field(description="the cell (H3 hex)")
    max_depth_m: float = Field(description="deepest water in the cell (m)")
    mean_max_depth_m: float | None = Field(description="mean of the maximum depths (m)")
    time_of_max_s: float | None = Field(description="when the deepest water came (s)")
    flooded_share: float | None = Field(description="share of the cell flooded (0 .. 1)")
    time_to_15cm_s: float | None = Field(description="when water first reached 15 cm (s)")
    max_hazard: float | None = Field(description="highest flood hazard rating")
    affected_buildings: int | None
    affected_people: int | None = Field(
        description="people count (persons); null: hidden from callers without the right"
    )


class TrafficCell(BaseModel):
    h3: str = Field(description="the cell (H3 hex)")
    vkt: float = Field(description="vehicle-km travelled in the cell (veh·km)")
    tti: float = Field(description="VKT-weighted travel-time index")
    band: str = Field(description="the delay band of the index")


class FloodCells(BaseModel):
    run_id: int
    kind: Literal["flood"]
    res: int = Field(description="H3 resolution")
    count: int
    cells: list[FloodCell]


class TrafficCells(BaseModel):
    run_id: int
    kind: Literal["traffic"]
    res: int = Field(description="H3 resolution")
    count: int
    cells: list[TrafficCell]


class RunCells(RootModel[Annotated[FloodCells | TrafficCells, Field(discriminator="kind")]]):
    """Per-cell results of a run: flood or traffic cells, by the run's ``kind``."""


class TrafficLink(BaseModel):
    link_id: int
    name: str | None
    road_class: str
    flow_vph: float = Field(description="flow (veh/h)")
    time_min: float = Field(description="travel time (min)")
    vc_ratio: float = Field(description="volume / capacity")
    tti: float = Field(description="travel-time index (congested / free-flow time)")
    closed: bool


class TrafficLinks(BaseModel):
    run_id: int
    count: int
    links: list[TrafficLink] = Field(description="closed first, then most congested")


class FloodRoad(BaseModel):
    link_id: int
    name: str | None
    road_class: str
    max_depth_m: float = Field(description="deepest water on the link (m)")
    state: str = Field(description="passable, slowed or closed")


class FloodRoads(BaseModel):
    run_id: int
    count: int
    links: list[FloodRoad] = Field(description="deepest first")
