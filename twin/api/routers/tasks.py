"""``/api/tasks``: dispatch a task to an admin area, track it, move it through its states."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StrictInt,
    model_validator,
)

from twin.access import audit
from twin.access.principal import Principal
from twin.api.deps import Conn, PrincipalDep, SettingsDep, require
from twin.api.errors import ForbiddenError
from twin.api.params import Text, Timestamp, json_integer
from twin.api.schemas.tasks import TaskDetail, TaskList
from twin.city.areas import MAX_ID
from twin.settings import Settings
from twin.tasks import service as tasks
from twin.tasks import states

# Tasks are important data (twin.access.classification), as alerts are.
router = APIRouter(
    prefix="/api/tasks", tags=["tasks"], dependencies=[require("important", "tasks")]
)

TaskId = Annotated[int, Path(ge=1, le=MAX_ID, description="task id")]
AreaRef = StrictInt | Annotated[Text, Field(min_length=1, max_length=200)]
Level = Literal["city", "district", "street", "community", "grid"]
#: Ids in JSON bodies: integers JSON numbers carry exactly (2**53 - 1); above that, clients
#: and schema validators read them as floats, and a different id would be sent.
BODY_MAX_ID = 2**53 - 1
BodyId = Annotated[int, Field(ge=1, le=BODY_MAX_ID), BeforeValidator(json_integer)]
Priority = Annotated[int, Field(ge=1, le=4), BeforeValidator(json_integer)]
#: A change must change something (the model's check, in the schema too).
SOME_CHANGE: list[JsonValue] = [
    {"required": [k], "properties": {k: {"not": {"type": "null"}}}}
    for k in ("state", "area", "priority", "due_at")
]
SOME_CHANGE.append({"required": ["escalate"], "properties": {"escalate": {"const": True}}})


class TaskCreate(BaseModel):
    """A task to dispatch: to ``area``, to the patch (or ``level`` ancestor) of ``cell``, or
    from ``alert_id`` (its area and cell; the alert is acknowledged)."""

    model_config = ConfigDict(extra="forbid")
    title: Text = Field(min_length=1, max_length=states.MAX_TITLE)
    description: Text | None = Field(None, max_length=states.MAX_TEXT)
    priority: Priority = Field(2, description="1 urgent (due in 2 h) .. 4 (7 days)")
    due_at: Timestamp | None = Field(None, description="default: now + time for priority")
    area: AreaRef | None = Field(None, description="admin area id or code")
    cell: str | None = Field(None, min_length=1, max_length=16, description="H3 cell (hex)")
    level: Level | None = Field(None, description="lift the area to this level (cell: grid)")
    alert_id: BodyId | None = None
    event_id: BodyId | None = None
    note: Text | None = Field(None, max_length=states.MAX_TEXT)


class TaskUpdate(BaseModel):
    """A change: a new state, a reassignment (``area`` or ``escalate``), priority, due time."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": SOME_CHANGE})
    state: states.TaskState | None = None
    area: AreaRef | None = Field(None, description="target of a reassignment (id or code)")
    escalate: StrictBool = Field(False, description="reassign to the parent of the current area")
    note: Text | None = Field(None, max_length=states.MAX_TEXT, description="needed to reject")
    priority: Priority | None = None
    due_at: Timestamp | None = None

    @model_validator(mode="after")
    def _something(self) -> TaskUpdate:
        if not (self.state or self.area is not None or self.escalate
                or self.priority is not None or self.due_at is not None):  # fmt: skip
            raise ValueError("give at least one of state, area, escalate, priority, due_at")
        return self


def _may_operate(who: Principal, settings: Settings) -> None:
    if not who.may_operate(settings.open_operations):
        raise ForbiddenError("dispatching and updating tasks needs the operator role")


@router.get("", response_model=TaskList, summary="Tasks, newest first")
async def list_tasks(
    conn: Conn,
    state: Annotated[
        list[str] | None, Query(description="state(s); repeat or comma-separate")
    ] = None,
    area: Annotated[
        Text | None, Query(description="admin area id or code: tasks of its whole subtree")
    ] = None,
    overdue: Annotated[bool | None, Query(description="true: only late; false: none late")] = None,
    alert: Annotated[int | None, Query(ge=1, le=MAX_ID, description="alert id")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> dict[str, Any]:
    """Tasks with their area, cell, due time and whether they are overdue."""
    states = [s.strip() for v in state or () for s in v.split(",") if s.strip()]
    return await tasks.list_tasks(
        conn, states=states or None, area=area, overdue=overdue, alert_id=alert,
        limit=limit, offset=offset,
    )  # fmt: skip


@router.get("/{task_id}", response_model=TaskDetail, summary="A task and its full history")
async def get_task(task_id: TaskId, conn: Conn) -> dict[str, Any]:
    return await tasks.get_task(conn, task_id)


@router.post("", status_code=201, response_model=TaskDetail, summary="Dispatch a task")
async def dispatch_task(
    body: TaskCreate, response: Response, conn: Conn, settings: SettingsDep, who: PrincipalDep
) -> dict[str, Any]:
    """Create an ``open`` task for an area; ``Location`` is the task's URL."""
    _may_operate(who, settings)
    task = await tasks.dispatch(
        conn, title=body.title, description=body.description, priority=body.priority,
        due_at=body.due_at, area=body.area, cell=body.cell, level=body.level,
        alert_id=body.alert_id, event_id=body.event_id, note=body.note, actor=who.name,
        user_id=who.user_id,
    )  # fmt: skip
    response.headers["Location"] = f"/api/tasks/{task['id']}"
    await audit.record(conn, who, "task.dispatch", f"task/{task['id']}",
                       area_id=(task.get("area") or {}).get("id"))  # fmt: skip
    return task


@router.patch(
    "/{task_id}",
    response_model=TaskDetail,
    summary="Move, reassign, escalate or reprioritise a task",
)
async def update_task(
    task_id: TaskId, body: TaskUpdate, conn: Conn, settings: SettingsDep, who: PrincipalDep
) -> dict[str, Any]:
    """Illegal transitions are 409 and change nothing; the answer is the task with history."""
    _may_operate(who, settings)
    task = await tasks.update_task(
        conn, task_id, state=body.state, area=body.area, escalate=body.escalate,
        note=body.note, priority=body.priority, due_at=body.due_at, actor=who.name,
        user_id=who.user_id,
    )  # fmt: skip
    await audit.record(conn, who, "task.update", f"task/{task_id}",
                       area_id=(task.get("area") or {}).get("id"),
                       detail=body.model_dump(exclude_none=True, mode="json"))  # fmt: skip
    return task
