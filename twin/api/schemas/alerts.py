"""Models of ``/api/alerts``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Alert(BaseModel):
    # The row of twin.alert with its area; further columns pass through unchanged.
    model_config = ConfigDict(extra="allow")
    id: int
    rule_id: str
    subject: str | None = None
    level: str | None = None
    status: str = Field(description="pending, active, acknowledged or resolved")
    cell: str | None = Field(None, description="H3 cell (hex), if the alert is of a cell")
    value: float | None = Field(None, description="the indicator's value (rule's unit)")
    threshold: float | None = Field(None, description="the rule's threshold (rule's unit)")
    message: str | None = None
    hits: int | None = None
    escalation: int | None = None
    sim_run_id: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    area_id: int | None = None
    area_code: str | None = None
    area_name: str | None = None
    area_level: str | None = None
    lon: float | None = Field(None, description="longitude to map the alert (degrees)")
    lat: float | None = Field(None, description="latitude to map the alert (degrees)")


class AlertList(BaseModel):
    count: int
    alerts: list[Alert]


class Rule(BaseModel):
    id: str
    title: str
    title_zh: str = Field(description="title in Chinese")
    indicator: str = Field(description="the indicator the rule watches")
    unit: str | None = Field(None, description="the indicator's unit")
    op: str
    threshold: float = Field(description="threshold (indicator's unit)")
    area_level: str = Field(description="the admin level the rule evaluates at")
    level: str = Field(description="the alert level raised (risk level)")
    sensitivity: int = Field(description="the rule's classification rank")
    cooldown_s: float = Field(description="cooldown (s)")
    escalate_after: int | None = Field(None, description="hits before escalating (none: never)")
    auto_resolve: bool = Field(description="resolve when the condition clears")
    params: dict[str, Any] = Field(description="rule parameters (open: depend on the indicator)")
    dispatch: str = Field(
        "none", description="auto: a task is dispatched for each alert raised; none: by people"
    )


class RuleError(BaseModel):
    file: str
    field: str | None = None


class Rules(BaseModel):
    rules: list[Rule]
    errors: list[RuleError]


class Evaluation(BaseModel):
    rules: dict[str, dict[str, int]] = Field(
        description="per rule id, counts of raised, escalated, resolved ... alerts (open map)"
    )
