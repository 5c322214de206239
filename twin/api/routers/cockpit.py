"""``/api/cockpit``: the indicators of one admin area at any of the five levels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin.api.deps import Conn, PrincipalDep, SettingsDep
from twin.api.errors import ForbiddenError, InvalidParameterError
from twin.api.params import Text
from twin.api.schemas.cockpit import Cockpit
from twin.city.areas import check_level
from twin.db.models.city import ADMIN_LEVELS
from twin.reporting.cockpit import cockpit, parse_as_of, parse_period, resolve_area

router = APIRouter(prefix="/api/cockpit", tags=["cockpit"])
MAX_AREA_TEXT = 200


@router.get("", response_model=Cockpit, summary="The cockpit of an admin area")
async def get_cockpit(
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    level: Annotated[
        str | None, Query(description=f"one of {', '.join(ADMIN_LEVELS)} (required)")
    ] = None,
    area: Annotated[
        Text | None, Query(description="the area's id or code (the city when omitted)")
    ] = None,
    as_of: Annotated[
        str | None, Query(description="ISO 8601 instant described (UTC without offset); now")
    ] = None,
    period: Annotated[str, Query(description="period length: 7d, 30d, 90d, 4w, ...")] = "30d",
) -> dict[str, Any]:
    """Indicators of the area (people counts below k hidden for those without the right) with
    the value before each and a trend, and headline figures of its children for drill-down.

    A user with a scope gets the cockpits of the areas in its scope only: any other area (a
    neighbouring district, or the city above its own) is 403. Callers without a token get the
    public cockpit of every area."""
    if level is None:
        raise InvalidParameterError("level", f"required: one of {', '.join(ADMIN_LEVELS)}")
    check_level(level)
    if area is not None and len(area) > MAX_AREA_TEXT:
        raise InvalidParameterError("area", f"an id or code of at most {MAX_AREA_TEXT} characters")
    days = parse_period(period)
    when = parse_as_of(as_of) if as_of else None
    if who.scoped:
        row = await resolve_area(conn, area, level)
        if not who.may_touch(row["id"]):
            raise ForbiddenError(
                f"area {row['code']!r} is outside your scope: a scoped user's cockpits cover "
                "its own areas (the public cockpit needs no token)"
            )
    return await cockpit(
        conn,
        level=level,
        area=area,
        as_of=when,
        period_days=days,
        k=settings.suppression_k,
        allowed=who.can_see_people,
    )
