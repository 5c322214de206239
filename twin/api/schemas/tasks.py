"""Models of ``/api/tasks``."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from twin.api.schemas.common import AreaRef


class Transition(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    from_: str | None = Field(None, alias="from", description="state before (null: created)")
    to: str = Field(description="state after")
    actor: str | None = Field(None, description="who made the change")
    note: str | None = Field(None, description="the note given with the change")
    from_area: AreaRef | None = Field(None, description="area before a reassignment")
    to_area: AreaRef | None = Field(None, description="area after a reassignment")
    at: datetime = Field(description="when (UTC)")


class Task(BaseModel):
    id: int = Field(description="task id")
    title: str
    description: str | None = None
    state: str = Field(description="the task's state")
    priority: int = Field(description="1 urgent .. 4")
    area: AreaRef | None = Field(description="the admin area the task is dispatched to")
    cell: str | int | None = Field(None, description="H3 cell of the task, if any")
    alert_id: int | None = None
    event_id: int | None = None
    due_at: datetime | None = Field(None, description="due time (UTC)")
    created_at: datetime
    updated_at: datetime
    overdue: bool = Field(description="due time passed and not finished")
    next_states: list[str] = Field(description="states the task may move to")


class TaskDetail(Task):
    transitions: list[Transition] = Field(description="the task's history, oldest first")


class TaskList(BaseModel):
    total: int = Field(description="tasks matching, over all pages")
    count: int = Field(description="tasks in this page")
    limit: int | None = None
    offset: int | None = None
    area: AreaRef | None = Field(None, description="the area filter, if given")
    tasks: list[Task]
