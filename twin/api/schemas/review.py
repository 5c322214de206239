"""Models of ``/api/review``: the after-action review of a period (durations in seconds)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReviewArea(BaseModel):
    id: int
    code: str
    name: str
    name_en: str | None = None
    level: str
    parent_id: int | None = None
    whole_city: bool = Field(description="no area given: the whole city")


class ReviewPeriod(BaseModel):
    from_: str = Field(alias="from", description="start (ISO 8601, included)")
    to: str = Field(description="end (ISO 8601, excluded)")
    hours: float


class Bucket(BaseModel):
    t: str = Field(description="start of the 5-minute bucket")
    value: float = Field(description="the largest reading in it (sensor's unit)")


class SensorSummary(BaseModel):
    id: int
    code: str
    unit: str
    readings: int
    max: float | None = None
    max_at: str | None = Field(None, description="first time of the maximum")
    rain_mm: float | None = Field(None, description="rain depth over the period (rain gauges)")
    buckets: list[Bucket]


class Sensors(BaseModel):
    rain: list[SensorSummary]
    water_level: list[SensorSummary]


class NowcastPair(BaseModel):
    sensor: str
    t: str = Field(description="time of the step whose skill row this is")
    observed_depth_m: float
    modelled_now_m: float | None = None
    predicted_at: str | None = Field(None, description="the step an hour before")
    predicted_depth_m: float | None = Field(None, description="its +60 min depth in the cell")
    error_m: float | None = Field(None, description="predicted - observed (m)")


class NowcastReview(BaseModel):
    steps: int
    first_step: str | None = None
    last_step: str | None = None
    skill_rows: int
    paired: int
    bias_m: float | None = None
    rmse_m: float | None = None
    pairs: list[NowcastPair]


class Durations(BaseModel):
    n: int
    median_s: float | None = None
    p90_s: float | None = None


class ReviewAlert(BaseModel):
    id: int
    rule_id: str
    subject: str | None = None
    level: str | None = None
    status: str
    area_code: str | None = None
    value: float | None = None
    threshold: float | None = None
    crossed_at: str | None = None
    first_seen: str
    acknowledged_at: str | None = None
    resolved_at: str | None = None
    crossing_derived: bool = Field(description="false: to_raise_s is 0 by definition")
    to_raise_s: float
    to_ack_s: float | None = None
    to_resolve_s: float | None = None


class AlertsReview(BaseModel):
    alerts: list[ReviewAlert]
    derived: int
    to_raise_s: Durations
    to_ack_s: Durations
    to_resolve_s: Durations


class ReviewTask(BaseModel):
    id: int
    title: str
    state: str
    priority: int
    area_code: str
    alert_id: int | None = None
    created_at: str
    due_at: str | None = None
    accepted_at: str | None = None
    done_at: str | None = None
    closed_at: str | None = None
    to_accept_s: float | None = None
    accept_to_done_s: float | None = None
    to_done_s: float | None = None
    overdue: bool


class TasksReview(BaseModel):
    tasks: list[ReviewTask]
    overdue: list[int]
    to_accept_s: Durations
    accept_to_done_s: Durations
    to_done_s: Durations


class ClosedLink(BaseModel):
    link_id: int
    name: str | None = None
    road_class: str | None = None
    max_depth_m: float | None = None


class FloodRunClosures(BaseModel):
    run_id: int
    finished_at: str
    closed: list[ClosedLink]


class NowcastClosure(ClosedLink):
    first_closed: str
    last_closed: str
    steps: int


class TrafficDelay(BaseModel):
    id: int
    finished_at: str
    baseline_run_id: int | None = None
    closed_links: int | None = None
    extra_veh_h: float | None = Field(None, description="closures' extra travel time (veh-h)")
    extra_pct: float | None = None
    baseline_veh_h: float | None = None
    tstt_veh_h: float | None = None
    flood_runs: list[int] = []


class RoadsReview(BaseModel):
    flood_runs: list[FloodRunClosures]
    closed_links: int
    nowcast: list[NowcastClosure]
    traffic: list[TrafficDelay]


class Review(BaseModel):
    area: ReviewArea
    period: ReviewPeriod
    generated_at: str
    sensors: Sensors
    nowcast: NowcastReview
    alerts: AlertsReview
    tasks: TasksReview
    roads: RoadsReview
