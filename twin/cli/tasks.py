"""``twin tasks ...``: dispatch, list, move, escalate and show tasks from the command line.

The commands call the same async domain functions as the API (``twin.tasks.service``) on one
connection opened for the command, committed when it succeeds. Exit codes: 0 done, 1 refused
(an illegal move, an unknown task, no database), 2 bad arguments.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar

import psycopg
import typer

from twin import durations
from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.db.engine import DatabaseNotConfiguredError, database_url
from twin.errors import ConflictError, InvalidParameterError, NotFoundError

tasks_app = typer.Typer(
    help="Tasks dispatched to admin areas: list, add, move, escalate, show.",
    no_args_is_help=True,
)
T = TypeVar("T")
NoteOpt = Annotated[str | None, typer.Option("--note", help="Why (needed to reject).")]


def actor() -> str:
    """``cli:<login name>``: who made a change from this terminal."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        name = "unknown"
    return f"cli:{name}"


def _run(work: Callable[[psycopg.AsyncConnection], Awaitable[T]]) -> T:
    """Run ``work`` on a fresh connection (committed on success) and map errors to exits."""
    try:
        url = database_url(load_settings())
    except DatabaseNotConfiguredError as exc:
        fail(str(exc))

    async def main() -> T:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            return await work(conn)

    try:
        return asyncio.run(main())
    except InvalidParameterError as exc:
        fail(str(exc), code=2)
    except (NotFoundError, ConflictError) as exc:
        fail(str(exc))
    except psycopg.OperationalError as exc:
        fail(f"database unavailable: {_first_line(exc)}")
    except psycopg.Error as exc:
        fail(f"database error: {_first_line(exc)}")


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def parse_duration(text: str) -> timedelta | None:
    """``"90m"``, ``"24h"``, ``"2d"``, ``"1w"`` (or ``"30s"``) -> a timedelta; None if malformed
    or not positive."""
    try:
        delta = durations.parse_duration(text)
    except ValueError:
        return None
    return delta if delta > timedelta(0) else None


def _when(t: datetime | None) -> str:
    return t.astimezone().strftime("%Y-%m-%d %H:%M") if t else "-"


def _line(t: dict[str, Any]) -> str:
    late = "  OVERDUE" if t["overdue"] else ""
    return (
        f"{t['id']:>6}  {t['state']:<11} P{t['priority']}  {t['area']['code']:<14} "
        f"due {_when(t['due_at'])}{late}  {t['title']}"
    )


def _card(t: dict[str, Any]) -> str:
    a = t["area"]
    lines = [
        f"task {t['id']}: {t['title']}",
        f"  state     {t['state']}" + (" (OVERDUE)" if t["overdue"] else ""),
        f"  next      {', '.join(t['next_states']) or '-'}",
        f"  priority  {t['priority']}, due {_when(t['due_at'])}",
        f"  area      {a['code']} ({a['level']}, {a['name']})",
    ]
    if t["cell"]:
        lines.append(f"  cell      {t['cell']}")
    if t["alert_id"] or t["event_id"]:
        lines.append(f"  from      alert {t['alert_id'] or '-'}, event {t['event_id'] or '-'}")
    if t["description"]:
        lines.append(f"  about     {t['description']}")
    for h in t.get("transitions", []):
        move = f"{h['from'] or '-'} -> {h['to']}"
        fa, ta = h["from_area"], h["to_area"]
        if ta and (fa is None or fa["id"] != ta["id"]):
            move += f" @ {ta['code']}"
        note = f"  ({h['note']})" if h["note"] else ""
        lines.append(f"  {_when(h['at'])}  {move:<34} by {h['actor']}{note}")
    return "\n".join(lines)


@tasks_app.command("list")
def list_cmd(
    state: Annotated[
        list[str] | None, typer.Option("--state", help="Only these states (repeat or a,b).")
    ] = None,
    area: Annotated[
        str | None, typer.Option("--area", help="Admin area id or code: its whole subtree.")
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue tasks.")] = False,
    alert: Annotated[int | None, typer.Option("--alert", help="Only tasks of this alert.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    as_json: JsonOpt = False,
) -> None:
    """Tasks, newest first, with their state, priority, area and due time."""
    from twin.tasks import service as tasks

    states = [s.strip() for v in state or () for s in v.split(",") if s.strip()]
    result = _run(lambda conn: tasks.list_tasks(
        conn, states=states or None, area=area, overdue=True if overdue else None,
        alert_id=alert, limit=limit,
    ))  # fmt: skip
    human = "\n".join(
        [f"{result['count']} of {result['total']} tasks"] + [_line(t) for t in result["tasks"]]
    )
    emit(result, as_json, human)


@tasks_app.command("add")
def add_cmd(
    title: Annotated[str, typer.Argument(metavar="TITLE", help="What to do.")],
    cell: Annotated[
        str | None, typer.Option("--cell", help="H3 cell (hex): its grid patch is responsible.")
    ] = None,
    level: Annotated[
        str | None,
        typer.Option("--level", help="Lift the area to this level (with --cell: grid)."),
    ] = None,
    area: Annotated[str | None, typer.Option("--area", help="Admin area id or code.")] = None,
    alert: Annotated[
        int | None, typer.Option("--alert", help="Dispatch from this alert (acknowledges it).")
    ] = None,
    event: Annotated[int | None, typer.Option("--event", help="The event it is about.")] = None,
    priority: Annotated[
        int, typer.Option("--priority", min=1, max=4, help="1 urgent .. 4 routine.")
    ] = 2,
    due_in: Annotated[
        str | None,
        typer.Option("--due-in", help="Due after this long (90m, 24h, 2d); default by priority."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="Details.")] = None,
    note: NoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Dispatch a task to the area of --cell, --area or --alert."""
    from twin.tasks import service as tasks

    if cell is None and area is None and alert is None:
        fail("give --cell HEX, --area ID_OR_CODE or --alert ID", code=2)
    delta = parse_duration(due_in) if due_in is not None else None
    if due_in is not None and delta is None:
        fail(f"--due-in: {due_in!r} is not a duration like 90m, 24h, 2d or 1w", code=2)

    async def work(conn: psycopg.AsyncConnection) -> dict[str, Any]:
        due = None
        if delta is not None:  # from the database's clock, as the default due time is
            cur = await conn.execute("SELECT now()")
            row = await cur.fetchone()
            due = row[0] + delta if row else None
        return await tasks.dispatch(
            conn, title=title, description=description, priority=priority, due_at=due,
            area=area, cell=cell, level=level, alert_id=alert, event_id=event, note=note,
            actor=actor(),
        )  # fmt: skip

    task = _run(work)
    emit(task, as_json, f"dispatched\n{_card(task)}")


@tasks_app.command("move")
def move_cmd(
    task_id: Annotated[int, typer.Argument(metavar="ID", help="Task id.")],
    state: Annotated[str, typer.Argument(metavar="STATE", help="The new state.")],
    area: Annotated[
        str | None, typer.Option("--area", help="Target area (id or code) to reassign to.")
    ] = None,
    note: NoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a task to STATE (accepted, in_progress, done, closed, rejected, reassigned)."""
    from twin.tasks import service as tasks

    task = _run(lambda conn: tasks.update_task(
        conn, task_id, state=state, area=area, note=note, actor=actor()
    ))  # fmt: skip
    emit(task, as_json, _card(task))


@tasks_app.command("escalate")
def escalate_cmd(
    task_id: Annotated[int, typer.Argument(metavar="ID", help="Task id.")],
    note: NoteOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reassign a task to the parent of its area (grid -> community -> street -> district ->
    city)."""
    from twin.tasks import service as tasks

    task = _run(lambda conn: tasks.update_task(
        conn, task_id, escalate=True, note=note, actor=actor()
    ))  # fmt: skip
    emit(task, as_json, _card(task))


@tasks_app.command("show")
def show_cmd(
    task_id: Annotated[int, typer.Argument(metavar="ID", help="Task id.")],
    as_json: JsonOpt = False,
) -> None:
    """A task and its full history."""
    from twin.tasks import service as tasks

    task = _run(lambda conn: tasks.get_task(conn, task_id))
    emit(task, as_json, _card(task))
