"""``/api/me``: who the caller is (from its bearer token) and what it may do."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from twin.api.deps import Conn, PrincipalDep, SettingsDep
from twin.api.schemas.me import Me

router = APIRouter(prefix="/api", tags=["access"])


@router.get("/me", response_model=Me, summary="The caller: name, role, scope and rights")
async def me(conn: Conn, settings: SettingsDep, who: PrincipalDep) -> dict[str, Any]:
    cur = await conn.execute(
        "SELECT level || ':' || code FROM twin.admin_area WHERE id = ANY(%s) ORDER BY id",
        (list(who.scope_roots),),
    )
    return {
        "name": who.name,
        "role": who.role,
        "scope": [r[0] for r in await cur.fetchall()],
        "areas": len(who.scope),
        "clearance": who.clearance,
        "can_see_people": who.can_see_people,
        "can_run_simulations": who.may_run_simulations(settings.open_simulations),
        "can_operate": who.may_operate(settings.open_operations),
        "datastreams": sorted(who.datastreams) if who.datastreams is not None else None,
    }
