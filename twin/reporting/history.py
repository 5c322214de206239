"""The twin as it stood at a past instant, from the stored history: open alerts with their status
then, tasks in their state then, and the sensors' latest readings then. The map's time slider
replays a storm with it (``GET /api/history?at=``).

Everything is read on the caller's connection, so row-level security scopes alerts and tasks
exactly as ``/api/alerts`` and ``/api/tasks``; no people count is read at all.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.db.queries import query
from twin.errors import InvalidParameterError
from twin.grid import to_hex

MAX_ROWS = 5000


def parse_instant(text: str | None, *, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant (UTC when it has no offset); now when ``text`` is None."""
    if text is None:
        return now or datetime.now(UTC)
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameterError("at", f"{text!r} is not an ISO 8601 instant") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    if not datetime(1970, 1, 1, tzinfo=UTC) <= at <= datetime(2200, 1, 1, tzinfo=UTC):
        raise InvalidParameterError("at", "between 1970 and 2200")
    return at


async def _rows(conn: AsyncConnection, name: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query("history.sql", name), params)
        return await cur.fetchall()


async def history(
    conn: AsyncConnection, *, at: datetime, area_id: int | None = None, limit: int = MAX_ROWS
) -> dict[str, Any]:
    """What the caller may see of the twin at ``at``: alerts, tasks, readings, and the span of
    the recorded history (where a slider may go)."""
    params = {"at": at, "area": area_id, "limit": limit}
    alerts = await _rows(conn, "alerts", params)
    for a in alerts:
        if a["cell"] is not None:
            a["cell"] = to_hex([int(a["cell"])])[0]
    tasks = await _rows(conn, "tasks", params)
    readings = await _rows(conn, "readings", params)
    span = (await _rows(conn, "span", params))[0]
    return {"at": at, "area_id": area_id, "alerts": alerts, "tasks": tasks,
            "readings": readings, "span": span}  # fmt: skip
