"""Task dispatch: one-click dispatch to an admin area, online tracking, timely updates.

The state machine lives in :mod:`twin.tasks.states` (pure). The async functions here resolve
the responsible area, dispatch, move and list tasks on a ``psycopg.AsyncConnection``: the API
passes its request connection, the CLI opens one and runs them through ``asyncio.run``.

Every state change writes a row of ``task_transition`` (from, to, actor, note, from/to area) in
the same transaction as the task row, so the history and the current state never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.city.areas import (
    Area,
    area_by_id,
    check_id,
    check_level,
    find_area,
    lift,
    parse_cell,
    patch_of_cell,
)
from twin.errors import ConflictError, InvalidParameterError, NotFoundError
from twin.tasks.states import (
    FINISHED,
    MAX_TEXT,
    MAX_TITLE,
    TRANSITIONS,
    check_state,
    check_transition,
    due_delta,
    is_overdue,
)


def _utc(t: datetime | None) -> datetime | None:
    # A time without a zone is read as UTC rather than the server's local time, which would
    # shift it by the server's offset without anyone noticing.
    return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t


def _text(value: str | None, parameter: str, max_len: int = MAX_TEXT) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > max_len:
        raise InvalidParameterError(parameter, f"at most {max_len} characters")
    return value.strip()


@dataclass(frozen=True)
class Target:
    """Where a task goes: the responsible area, and the cell and alert it is about."""

    area: Area
    cell: int | None
    alert_id: int | None
    alert_status: str | None


async def resolve_target(
    conn: AsyncConnection,
    *,
    area: int | str | None = None,
    cell: str | None = None,
    level: str | None = None,
    alert_id: int | None = None,
) -> Target:
    """The area responsible for a task.

    The area is, by precedence: ``area`` (id or code); else the grid patch holding the centre
    of ``cell`` (an H3 hex string of any resolution); else the alert's area (or the patch of
    the alert's cell). ``level`` then lifts it to its ancestor at that level; a cell alone goes
    to its grid patch. The cell of the task is ``cell``, else the alert's.

    Raises
    ------
    InvalidParameterError
        naming the parameter: no target given, an unknown area or alert, a malformed cell or one
        outside every patch, a level with no ancestor.
    """
    if area is None and cell is None and alert_id is None:
        raise InvalidParameterError("area", "give an area (id or code), a cell or an alert_id")
    if level is not None:
        check_level(level)
    cell_id = parse_cell(cell) if cell is not None else None
    alert = None
    if alert_id is not None:
        check_id(alert_id, "alert_id")
        # Locked: dispatching acknowledges it, and a rule run must not resolve it meanwhile.
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT id, status, area_id, cell FROM twin.alert WHERE id = %s FOR UPDATE",
            (alert_id,),
        )
        alert = await cur.fetchone()
        if alert is None:
            raise InvalidParameterError("alert_id", f"no alert {alert_id}")
    if cell_id is None and alert is not None:
        cell_id = alert["cell"]

    found: Area | None
    if area is not None:
        found = await find_area(conn, area)
    elif cell is not None and cell_id is not None:
        found = await patch_of_cell(conn, cell_id)
    else:
        assert alert is not None
        found = await area_by_id(conn, alert["area_id"]) if alert["area_id"] else None
        if found is None and alert["cell"] is not None:
            found = await patch_of_cell(conn, alert["cell"], "alert_id")
        if found is None:
            raise InvalidParameterError(
                "alert_id", f"alert {alert_id} has no area or cell; give an area"
            )
    if level is not None:
        found = await lift(conn, found, level)
    return Target(found, cell_id, alert_id, alert["status"] if alert else None)


# ------------------------------------------------------------------------- dispatch
async def dispatch(
    conn: AsyncConnection,
    *,
    title: str,
    actor: str,
    description: str | None = None,
    priority: int = 2,
    due_at: datetime | None = None,
    area: int | str | None = None,
    cell: str | None = None,
    level: str | None = None,
    alert_id: int | None = None,
    event_id: int | None = None,
    note: str | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Create a task (state ``open``) for the area from :func:`resolve_target`.

    The task, its first transition (none -> open, to its area) and, when it comes from a
    pending or active alert, that alert's acknowledgement are written in one transaction.
    ``due_at`` defaults to now plus :data:`DUE_BY_PRIORITY`. Returns the task as
    :func:`get_task` does.
    """
    clean_title = _text(title, "title", MAX_TITLE)
    if clean_title is None:
        raise InvalidParameterError("title", "a task needs a title")
    allowed = due_delta(priority)
    check_id(event_id, "event_id")
    async with conn.transaction():
        target = await resolve_target(conn, area=area, cell=cell, level=level, alert_id=alert_id)
        if event_id is not None:
            cur = await conn.execute("SELECT 1 FROM twin.event WHERE id = %s", (event_id,))
            if await cur.fetchone() is None:
                raise InvalidParameterError("event_id", f"no event {event_id}")
        cur = await conn.execute(
            "INSERT INTO twin.task (title, description, state, priority, area_id, cell,"
            " alert_id, event_id, created_by, due_at)"
            " VALUES (%(title)s, %(description)s, 'open', %(priority)s, %(area)s, %(cell)s,"
            " %(alert)s, %(event)s, %(user)s,"
            " coalesce(%(due)s::timestamptz, now() + %(allowed)s::interval)) RETURNING id",
            {"title": clean_title, "description": _text(description, "description"),
             "priority": priority, "area": target.area.id, "cell": target.cell,
             "alert": target.alert_id, "event": event_id, "user": user_id,
             "due": _utc(due_at), "allowed": allowed},
        )  # fmt: skip
        row = await cur.fetchone()
        assert row is not None
        task_id: int = row[0]
        await _record(conn, task_id, None, "open", actor, user_id, None, target.area.id,
                      _text(note, "note"))  # fmt: skip
        if target.alert_status in ("pending", "active"):
            await conn.execute(
                "UPDATE twin.alert SET status = 'acknowledged', acknowledged_at = now()"
                " WHERE id = %s",
                (target.alert_id,),
            )
    return await get_task(conn, task_id)


async def _record(
    conn: AsyncConnection,
    task_id: int,
    from_state: str | None,
    to_state: str,
    actor: str,
    user_id: int | None,
    from_area: int | None,
    to_area: int | None,
    note: str | None,
) -> None:
    await conn.execute(
        "INSERT INTO twin.task_transition (task_id, from_state, to_state, by_user_id, actor,"
        " from_area_id, to_area_id, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        (task_id, from_state, to_state, user_id, actor, from_area, to_area, note),
    )


# --------------------------------------------------------------------------- updates
async def update_task(
    conn: AsyncConnection,
    task_id: int,
    *,
    actor: str,
    state: str | None = None,
    area: int | str | None = None,
    escalate: bool = False,
    note: str | None = None,
    priority: int | None = None,
    due_at: datetime | None = None,
    user_id: int | None = None,
) -> dict[str, Any]:
    """Move a task to ``state`` and/or change its priority or due time.

    ``area`` (id or code) is the target of a reassignment and implies ``state='reassigned'``;
    ``escalate`` reassigns to the parent of the current area (grid -> community -> street ->
    district -> city). ``rejected`` needs a ``note``. The task row is locked while it changes,
    so two concurrent updates cannot both pass the transition check on the same old state.

    Raises
    ------
    NotFoundError
        no such task.
    InvalidParameterError
        malformed or missing fields (a reassignment without an area, a rejection without a
        note, nothing to change).
    ConflictError
        an illegal transition (:class:`TaskTransitionError`), reassigning to the current area,
        escalating a city-level task, editing a closed task.
    """
    check_id(task_id, "task_id")
    clean_note = _text(note, "note")
    if escalate and area is not None:
        raise InvalidParameterError("area", "escalate picks the parent area; give one, not both")
    if escalate and state not in (None, "reassigned"):
        raise InvalidParameterError("state", "escalate is a reassignment; give no other state")
    if escalate or (area is not None and state is None):
        state = "reassigned"
    if state is not None:
        check_state(state)
        if area is not None and state != "reassigned":
            raise InvalidParameterError("area", "an area goes with state 'reassigned'")
    elif priority is None and due_at is None:
        if clean_note:
            raise InvalidParameterError("note", "a note goes with a state change")
        raise InvalidParameterError(
            "body", "nothing to change: give state, area, escalate, priority or due_at"
        )
    if priority is not None:
        due_delta(priority)  # validates 1..4

    async with conn.transaction():
        cur = await conn.execute(
            "SELECT state, area_id FROM twin.task WHERE id = %s FOR UPDATE", (task_id,)
        )
        row = await cur.fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id}")
        current, here = row
        new_area = here
        if state is not None:
            check_transition(current, state)
            if state == "reassigned":
                new_area = await _reassign_target(conn, task_id, here, area, escalate)
            if state == "rejected" and not clean_note:
                raise InvalidParameterError("note", "rejecting a task needs a note saying why")
            await _record(conn, task_id, current, state, actor, user_id, here, new_area,
                          clean_note)  # fmt: skip
        elif current == "closed":
            raise ConflictError(f"task {task_id} is closed: its priority and due time are final")
        await conn.execute(
            "UPDATE twin.task SET state = coalesce(%(state)s, state), area_id = %(area)s,"
            " priority = coalesce(%(priority)s, priority),"
            " due_at = coalesce(%(due)s::timestamptz, due_at), updated_at = now()"
            " WHERE id = %(id)s",
            {"state": state, "area": new_area, "priority": priority, "due": _utc(due_at),
             "id": task_id},
        )  # fmt: skip
    return await get_task(conn, task_id)


async def _reassign_target(
    conn: AsyncConnection, task_id: int, here: int, area: int | str | None, escalate: bool
) -> int:
    if escalate:
        current = await area_by_id(conn, here)
        if current is None or current.parent_id is None:
            where = f"{current.code} ({current.level})" if current else f"area {here}"
            raise ConflictError(f"task {task_id} is at {where}, the top: nothing to escalate to")
        return current.parent_id
    if area is None:
        raise InvalidParameterError("area", "a reassignment needs the target area (id or code)")
    target = await find_area(conn, area)
    if target.id == here:
        raise ConflictError(f"task {task_id} is already assigned to {target.code}")
    return target.id


# --------------------------------------------------------------------------- reading
_TASK_SELECT = (
    "SELECT t.id, t.title, t.description, t.state, t.priority, t.area_id, a.code AS area_code,"
    " a.name AS area_name, a.level AS area_level, twin.h3_to_hex(t.cell) AS cell, t.alert_id,"
    " t.event_id, t.due_at, t.created_at, t.updated_at, now() AS db_now"
    " FROM twin.task t JOIN twin.admin_area a ON a.id = t.area_id"
)
_TASK_FILTER = (
    " WHERE (%(states)s::text[] IS NULL OR t.state = ANY(%(states)s::text[]))"
    " AND (%(area)s::bigint IS NULL OR t.area_id IN (SELECT twin.area_subtree(%(area)s)))"
    " AND (%(alert)s::bigint IS NULL OR t.alert_id = %(alert)s)"
    " AND (%(overdue)s::bool IS NULL OR %(overdue)s = coalesce("
    "      t.due_at < now() AND t.state <> ALL(%(finished)s::text[]), false))"
)


def _task_out(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "state": row["state"],
        "priority": row["priority"],
        "area": {"id": row["area_id"], "code": row["area_code"], "name": row["area_name"],
                 "level": row["area_level"]},
        "cell": row["cell"],
        "alert_id": row["alert_id"],
        "event_id": row["event_id"],
        "due_at": row["due_at"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
        "overdue": is_overdue(row["state"], row["due_at"], row["db_now"]),
        "next_states": sorted(TRANSITIONS[row["state"]]),
    }  # fmt: skip


def _area_out(area_id: int | None, code: str | None, name: str | None, level: str | None) -> Any:
    if area_id is None:
        return None
    return {"id": area_id, "code": code, "name": name, "level": level}


async def get_task(conn: AsyncConnection, task_id: int) -> dict[str, Any]:
    """A task with its full transition history, oldest first.

    Raises
    ------
    NotFoundError
        no such task.
    """
    check_id(task_id, "task_id")
    cur = await conn.cursor(row_factory=dict_row).execute(
        _TASK_SELECT + " WHERE t.id = %s", (task_id,)
    )
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no task {task_id}")
    task = _task_out(row)
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT tt.from_state, tt.to_state, tt.actor, tt.note, tt.at,"
        " tt.from_area_id, fa.code AS fc, fa.name AS fn, fa.level AS fl,"
        " tt.to_area_id, ta.code AS tc, ta.name AS tn, ta.level AS tl"
        " FROM twin.task_transition tt"
        " LEFT JOIN twin.admin_area fa ON fa.id = tt.from_area_id"
        " LEFT JOIN twin.admin_area ta ON ta.id = tt.to_area_id"
        " WHERE tt.task_id = %s ORDER BY tt.at, tt.id",
        (task_id,),
    )
    task["transitions"] = [
        {"from": r["from_state"], "to": r["to_state"], "actor": r["actor"], "note": r["note"],
         "from_area": _area_out(r["from_area_id"], r["fc"], r["fn"], r["fl"]),
         "to_area": _area_out(r["to_area_id"], r["tc"], r["tn"], r["tl"]), "at": r["at"]}
        for r in await cur.fetchall()
    ]  # fmt: skip
    return task


async def list_tasks(
    conn: AsyncConnection,
    *,
    states: list[str] | None = None,
    area: int | str | None = None,
    overdue: bool | None = None,
    alert_id: int | None = None,
    limit: int = 100,
    offset: int = 0,
) -> dict[str, Any]:
    """Tasks, newest first, filtered by state(s), area (its whole subtree), lateness and alert.

    ``overdue=True`` keeps only late tasks, ``False`` only tasks that are not late. Returns
    ``{"total", "count", "limit", "offset", "area", "tasks"}``; ``total`` counts every match.
    """
    for s in states or ():
        check_state(s)
    if not 1 <= limit <= 1000:
        raise InvalidParameterError("limit", "must be 1..1000")
    if offset < 0:
        raise InvalidParameterError("offset", "must be >= 0")
    check_id(alert_id, "alert")
    scope = await find_area(conn, area) if area is not None else None
    where = {"states": list(states) if states else None, "area": scope.id if scope else None,
             "alert": alert_id, "overdue": overdue, "finished": sorted(FINISHED)}  # fmt: skip
    counted = await conn.execute(
        "SELECT count(*) FROM twin.task t" + _TASK_FILTER,  # noqa: S608 (constants)
        where,
    )
    total_row = await counted.fetchone()
    cur = await conn.cursor(row_factory=dict_row).execute(
        _TASK_SELECT + _TASK_FILTER + " ORDER BY t.created_at DESC, t.id DESC"
        " LIMIT %(limit)s OFFSET %(offset)s",
        {**where, "limit": limit, "offset": offset},
    )
    tasks = [_task_out(r) for r in await cur.fetchall()]
    return {"total": total_row[0] if total_row else 0, "count": len(tasks), "limit": limit,
            "offset": offset, "area": scope.as_dict() if scope else None,
            "tasks": tasks}  # fmt: skip
