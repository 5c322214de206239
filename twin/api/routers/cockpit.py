"""``/api/cockpit``: the indicators of one admin area at any of the five levels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from twin.api.deps import PoolDep, SettingsDep, open_session, resolve_principal
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
    request: Request,
    response: Response,
    settings: SettingsDep,
    pool: PoolDep,
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
    public cockpit of every area.

    Answers are shared for ``TWIN_COCKPIT_CACHE_SECONDS`` by callers who would get the same
    one (``Age`` says how old it is, ``as_of`` which instant it describes); a write through the
    API clears them."""
    if level is None:
        raise InvalidParameterError("level", f"required: one of {', '.join(ADMIN_LEVELS)}")
    check_level(level)
    if area is not None and len(area) > MAX_AREA_TEXT:
        raise InvalidParameterError("area", f"an id or code of at most {MAX_AREA_TEXT} characters")
    days = parse_period(period)
    when = parse_as_of(as_of) if as_of else None
    who = await resolve_principal(request, pool)
    # Everything that decides the answer: the request, and what the caller may see (the role
    # and clearance decide suppression and row-level security, the scope which rows).
    key = ("cockpit", level, area.strip() if area else None, days,
           when.isoformat() if when else None, who.role, who.clearance, who.scope_setting,
           settings.suppression_k)  # fmt: skip

    async def compute() -> dict[str, Any]:
        async with open_session(request, pool) as session:
            if who.scoped:
                row = await resolve_area(session.conn, area, level)
                if not who.may_touch(row["id"]):
                    raise ForbiddenError(
                        f"area {row['code']!r} is outside your scope: a scoped user's cockpits "
                        "cover its own areas (the public cockpit needs no token)"
                    )
            return await cockpit(
                session.conn,
                level=level,
                area=area,
                as_of=when,
                period_days=days,
                k=settings.suppression_k,
                allowed=who.can_see_people,
            )

    answer, age = await request.app.state.answers.get(key, compute)
    if who.scoped and not who.may_touch(answer["area"]["id"]):  # the key holds the scope too
        raise ForbiddenError(f"area {answer['area']['code']!r} is outside your scope")
    response.headers["Age"] = str(int(age))
    return answer
