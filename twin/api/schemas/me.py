"""Model of ``/api/me``."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Me(BaseModel):
    name: str = Field(description="the caller's name (public for no token)")
    role: str = Field(description="the caller's role")
    scope: list[str] = Field(description="scope roots as level:code; empty: the whole city")
    areas: int = Field(description="number of admin areas in the scope")
    clearance: str = Field(description="highest data classification the caller may read")
    can_see_people: bool = Field(description="may read unsuppressed people counts")
    can_run_simulations: bool = Field(description="may start simulation runs")
    can_operate: bool = Field(description="may dispatch tasks and change alerts")
    datastreams: list[int] | None = Field(
        default=None,
        description="a device's own datastreams, the only ones it may write; null: not a device",
    )
