"""Models of ``/api/cells``: the cell card and the cells of an area."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from twin.api.schemas.common import AreaRef, Number
from twin.api.schemas.tasks import Task

PEOPLE = "people count (persons); null: hidden from callers without the right (below k)"


class CellStats(BaseModel):
    """A row of ``twin.cell_stats`` with people counts suppressed for callers without the
    right (the fields hidden are listed in ``suppressed``)."""

    res: int = Field(description="H3 resolution")
    parent: str | None = Field(description="parent cell (H3 hex), null at the coarsest")
    population: int | None = Field(description=f"residents: {PEOPLE}")
    population_by_age: dict[str, int | None] = Field(
        description=f"residents per age band: {PEOPLE}"
    )
    elderly: int | None = Field(description=f"residents aged 60 and over: {PEOPLE}")
    jobs: int | None = Field(description=f"workplaces: {PEOPLE}")
    buildings: int
    floor_area_m2: float = Field(description="floor area (m²)")
    height_mean_m: float | None = Field(description="mean building height (m)")
    height_max_m: float | None = Field(description="tallest building (m)")
    enterprises: int
    hazard_sites: int
    hazard_sites_by_category: dict[str, int] = Field(description="hazard sites per category")
    events_open: int
    events_open_by_type: dict[str, int] = Field(description="open events per type")
    events_30d: int = Field(description="events in the 30 days before the refresh")
    events_30d_by_type: dict[str, int] = Field(description="those events per type")
    road_length_m: float = Field(description="length of road links with their midpoint here (m)")
    land_use_mix: dict[str, float] = Field(description="share of the cell's area per land use")
    updated_at: datetime
    suppressed: list[str] = Field(description="fields (or field.key) hidden from the caller")
    h3: str = Field(description="the cell (H3 hex)")


class CardArea(BaseModel):
    """An admin area holding the cell."""

    id: int = Field(description="admin area id")
    level: str = Field(description="city, district, street, community or grid")
    code: str = Field(description="admin area code")
    name: str = Field(description="admin area name")
    name_en: str | None = Field(description="admin area name in English")


class CellEvent(BaseModel):
    id: int
    type: str
    severity: int = Field(description="1 .. 4")
    status: str
    source: str
    occurred_at: datetime


class CellHazardSite(BaseModel):
    id: int
    category: str
    name: str | None
    hazard_class: int = Field(description="0 .. 3")
    lon: float = Field(description="longitude (degrees)")
    lat: float = Field(description="latitude (degrees)")


class CellBuilding(BaseModel):
    id: int
    use: str
    height_m: float | None = Field(description="height (m)")
    floors: int | None
    footprint_m2: float | None = Field(description="footprint (m²)")


class CellRisk(BaseModel):
    layer: str = Field(description="risk layer id ('onemap': combined)")
    title: str
    family: str
    level: str = Field(description="blue, yellow, orange or red")
    score: float | None = Field(description="0-100; null: it would reveal a people count below k")
    suppressed: bool = Field(description="the score is hidden")
    computed_at: datetime


class CardTasks(BaseModel):
    """The unfinished tasks of the grid patch holding the cell (as ``/api/tasks`` lists them);
    for callers not cleared for tasks none, without ``limit`` and ``offset``."""

    total: int = Field(description="tasks matching, over all pages")
    count: int = Field(description="tasks in this page")
    limit: int | None = None
    offset: int | None = None
    # Two shapes: the task list's area, or (tasks withheld) the card's patch with name_en.
    area: AreaRef | CardArea | None = Field(description="the grid patch holding the cell")
    tasks: list[Task]


class CellCard(BaseModel):
    cell: CellStats
    areas: list[CardArea] = Field(description="admin areas holding the cell, finest first")
    open_events: list[CellEvent] = Field(description="empty when withheld")
    hazard_sites: list[CellHazardSite] = Field(description="empty when withheld")
    buildings: list[CellBuilding] = Field(description="buildings in the cell, tallest first")
    center: tuple[float, float] = Field(description="the cell's centre [lon, lat] (degrees)")
    risks: list[CellRisk] = Field(description="the cell in each layer the caller may see")
    tasks: CardTasks
    withheld: list[str] = Field(description="the lists withheld from the caller (important)")


class CellValue(BaseModel):
    h3: str = Field(description="the cell (H3 hex)")
    value: Number | None = Field(description="the metric; null: a people count hidden (below k)")


class CellList(BaseModel):
    res: int = Field(description="H3 resolution")
    metric: str
    count: int
    cells: list[CellValue]
