"""Models of ``/api/nowcast``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class DepthCount(BaseModel):
    depth_m: float = Field(description="the depth (m)")
    now: int = Field(description="cells holding at least this depth now")
    horizon: int = Field(description="cells holding at least this depth at the horizon")


class Skill(BaseModel):
    sensors: int = Field(description="water-level sensors that read in the step's window")
    mean_abs_difference_m: float | None = Field(None, description="mean |observed - modelled| (m)")
    max_abs_difference_m: float | None = Field(None, description="largest |difference| (m)")
    mean_difference_m: float | None = Field(None, description="mean observed - modelled (m): bias")


class NowcastLatest(BaseModel):
    step_id: int
    nowcast_id: int
    as_of: datetime = Field(description="end of the step's window: the time of the depths 'now'")
    stored_at: datetime = Field(description="when the step was stored")
    window_s: float = Field(description="the window the step covered (s)")
    horizon_s: float = Field(description="how far ahead the forecast looks (s)")
    restarted: str | None = Field(None, description="why the step started a new nowcast, if it did")
    gauges_used: list[str] = Field(description="rain gauges of the rain field (codes)")
    gauges_stale: list[str] = Field(description="gauges left out: their latest reading too old")
    rain_mean_mm_h: float = Field(description="mean rain over the grid in the window (mm/h)")
    rain_max_mm_h: float = Field(description="largest rain in the window (mm/h)")
    forecast_rain_mean_mm_h: float = Field(description="mean persisted rain of the forecast (mm/h)")
    max_depth_now_m: float = Field(description="deepest water on land now (m)")
    max_depth_horizon_m: float = Field(description="deepest water on land at the horizon (m)")
    res: int = Field(description="H3 resolution of the cell counts")
    cells_over: list[DepthCount] = Field(description="cells holding 0.15 m and 0.3 m or more")
    skill: Skill | None = Field(
        None,
        description="the model against the water-level sensors; null for callers not cleared "
        "for the sensor readings (important data)",
    )
    links: dict[str, str]


class NowcastCell(BaseModel):
    h3: str = Field(description="H3 cell (hex)")
    depth_m: float = Field(description="depth (m) at the asked horizon: the deepest land pixel")
    depth_now_m: float
    depth_horizon_m: float
    max_depth_horizon_m: float = Field(description="deepest over the horizon (m)")


class NowcastCells(BaseModel):
    step_id: int
    as_of: datetime
    horizon: str = Field(description="now, or +60 (the step's horizon)")
    horizon_s: float = Field(description="the time ahead of as_of the depths are at (s)")
    res: int
    count: int
    cells: list[NowcastCell]
