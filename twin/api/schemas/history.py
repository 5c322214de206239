"""Models of ``/api/history``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class PastAlert(BaseModel):
    id: int
    rule_id: str
    subject: str | None = None
    level: str | None = None
    status: str = Field(description="active or acknowledged at that instant")
    cell: str | None = Field(None, description="H3 cell (hex), if the alert is of a cell")
    value: float | None = Field(None, description="the indicator's latest value (rule's unit)")
    message: str | None = None
    area_id: int | None = None
    area_code: str | None = None
    area_name: str | None = None
    first_seen: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = Field(None, description="later than the instant, or null")
    lon: float | None = Field(None, description="where to show it (degrees)")
    lat: float | None = None


class PastTask(BaseModel):
    id: int
    title: str
    priority: int
    alert_id: int | None = None
    area_id: int
    area_code: str | None = None
    area_name: str | None = None
    state: str = Field(description="the state of its last transition at or before the instant")
    since: datetime = Field(description="when it entered that state")
    due_at: datetime | None = None
    overdue: bool = Field(description="past due at the instant and not done, closed or rejected")


class PastReading(BaseModel):
    datastream: int = Field(description="SensorThings Datastream (sensor) id")
    code: str
    kind: str
    unit: str | None = None
    value: float = Field(description="the latest reading in the hour before (sensor's unit)")
    observed_at: datetime


class Span(BaseModel):
    first: datetime | None = Field(None, description="the first recorded change")
    last: datetime | None = Field(None, description="the last recorded change")


class History(BaseModel):
    at: datetime = Field(description="the instant shown (UTC)")
    area_id: int | None = Field(None, description="the admin area (subtree) asked for")
    alerts: list[PastAlert]
    tasks: list[PastTask]
    readings: list[PastReading]
    span: Span
