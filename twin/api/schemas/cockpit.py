"""Model of ``/api/cockpit``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from twin.api.schemas.common import Number

#: An instant as the cockpit writes it (ISO 8601 text with its offset).
IsoText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class AreaNamed(BaseModel):
    """An admin area with its English name."""

    id: int = Field(description="admin area id")
    code: str = Field(description="admin area code")
    name: str = Field(description="admin area name")
    name_en: str | None = Field(description="admin area name in English")
    level: str = Field(description="city, district, street, community or grid")


class CockpitArea(AreaNamed):
    parent: AreaNamed | None = Field(description="the area above (null: the city)")


class Period(BaseModel):
    days: int = Field(description="length of the period (days)")
    start: IsoText
    end: IsoText = Field(description="the instant described (as_of)")
    previous_start: IsoText = Field(description="start of the period before, for the trends")


class Indicator(BaseModel):
    id: str = Field(description="the indicator (twin.reporting.cockpit.INDICATORS)")
    title: str
    title_zh: str = Field(description="title in Chinese")
    unit: str
    value: Number | None = Field(description="the value (unit); null: no data, or hidden")
    previous: Number | None = Field(description="the value of the period before, or before it")
    change: Number | None = Field(description="value - previous")
    trend: Literal["up", "down", "flat"] | None


class ChildFigures(BaseModel):
    population: int | None = Field(description="residents, rounded to k; null: below k")
    buildings: int
    events_open: int
    events_reported: int = Field(description="events reported in the period")
    tasks_open: int
    tasks_overdue: int
    response_h: float | None = Field(description="mean task response time (h)")
    risk_red_cells: int | None = Field(description="red one-map cells; null: not computed")
    alerts_active: int
    flooded_area_m2: float | None = Field(description="flooded area, latest storm run (m²)")
    roads_closed: int | None = Field(description="road links closed by water, latest storm run")
    delay_index: float | None = Field(description="traffic delay index, latest traffic run")


class Child(AreaNamed):
    figures: ChildFigures
    cockpit: str = Field(description="URL of the child's own cockpit")


class Sources(BaseModel):
    flood_run: int | None = Field(description="the latest storm run by as_of")
    flood_previous_run: int | None
    traffic_run: int | None = Field(description="the latest traffic run by as_of")
    traffic_previous_run: int | None
    risk_layer: str
    risk_res: int = Field(description="H3 resolution of the risk cells counted")
    risk_previous_snapshot_at: IsoText | None


class Cockpit(BaseModel):
    area: CockpitArea
    as_of: IsoText
    period: Period
    indicators: list[Indicator]
    children: list[Child] = Field(description="the areas one level down, with headline figures")
    sources: Sources = Field(description="the runs and the risk snapshot compared")
    suppressed: list[str] = Field(description="indicator ids hidden from the caller")
