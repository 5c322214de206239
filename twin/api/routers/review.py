"""``/api/review``: the after-action review (复盘) of a period, read as the caller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin.api.deps import Conn, PrincipalDep, SettingsDep
from twin.api.errors import ForbiddenError
from twin.api.params import Text
from twin.api.schemas.review import Review
from twin.city.areas import find_area
from twin.reporting.review import build_review, parse_period, sensor_rules

router = APIRouter(prefix="/api/review", tags=["review"])


@router.get(
    "", summary="The after-action review of a period", response_model=Review,
    response_model_by_alias=True,
)  # fmt: skip
async def get_review(
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    from_: Annotated[
        Text | None, Query(alias="from", description="start, ISO 8601 (UTC without offset)")
    ] = None,
    to: Annotated[Text | None, Query(description="end (excluded), at most 31 days on")] = None,
    area: Annotated[
        Text | None, Query(description="an admin area's id or code: its subtree (the city)")
    ] = None,
) -> dict[str, Any]:
    """The rain and water levels observed, the nowcast's +60 min predictions against the
    sensors, every alert raised and task dispatched with how fast each step came, and the roads
    closed with the delay they caused. Alerts and tasks are those the caller may see (row-level
    security); a scoped user naming an area outside its scope is 403. No people counts."""
    parse_period(from_, to)
    if area is not None and area.strip() and who.scoped:
        row = await find_area(conn, area)
        if not who.may_touch(row.id):
            raise ForbiddenError(f"area {row.code!r} is outside your scope")
    return await build_review(conn, start=from_, end=to, area=area, rules=sensor_rules(settings))
