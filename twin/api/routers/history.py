"""``/api/history``: the twin at a past instant (alerts, tasks, readings), for the time slider."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin.api.deps import Conn, require
from twin.api.params import Text
from twin.api.schemas.history import History
from twin.city.areas import find_area
from twin.reporting.history import MAX_ROWS, history, parse_instant

# Alerts, tasks and readings are important data (twin.access.classification).
router = APIRouter(
    prefix="/api/history", tags=["live"], dependencies=[require("important", "the history")]
)


@router.get("", response_model=History, summary="The twin as it stood at an instant")
async def get_history(
    conn: Conn,
    at: Annotated[
        Text | None, Query(description="ISO 8601 instant (UTC without an offset); now")
    ] = None,
    area: Annotated[Text | None, Query(description="admin area id or code (whole subtree)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_ROWS, description="rows of each kind")] = 1000,
) -> dict[str, Any]:
    """Alerts open at ``at`` with their status then, tasks in their state then, each sensor's
    latest reading in the hour before; scoped to the caller like ``/api/alerts``."""
    area_id = (await find_area(conn, area)).id if area else None
    return await history(conn, at=parse_instant(at), area_id=area_id, limit=limit)
