"""``/api/nowcast``: the latest step of the rolling flood nowcast and its cells.

The nowcast's tables are labelled in :data:`twin.access.classification.TABLES`: steps and
cells are general (depths of water, no people), the skill rows (water-level readings against
the model) are important, so ``skill`` is null for callers not cleared for them. No people
count is ever part of an answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from psycopg.rows import dict_row

from twin.access.classification import TABLES
from twin.api.deps import Conn, PrincipalDep, SettingsDep, ensure_cleared, require
from twin.api.errors import InvalidParameterError, NotFoundError
from twin.api.schemas.nowcast import NowcastCells, NowcastLatest
from twin.db.queries import query

router = APIRouter(
    prefix="/api/nowcast", tags=["nowcast"],
    dependencies=[require(TABLES["nowcast_step"], "the nowcast")],
)  # fmt: skip
SQL = "nowcast.sql"
DEPTHS = [0.15, 0.3]
#: How ?horizon= may be written ("+" in a query string reads as a space unless sent as %2B).
HORIZONS = {"now": "now", "+60": "+60", "60": "+60", "horizon": "+60"}


async def _latest(conn: Conn) -> dict[str, Any]:
    cur = await conn.cursor(row_factory=dict_row).execute(query(SQL, "api_latest_step"))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError("no nowcast step yet: run `twin nowcast step` or the nowcast loop")
    return row


def _res(res: int | None, settings: Any) -> int:
    if res is None:
        return int(settings.finest_resolution)
    if res not in settings.h3_resolutions:
        raise InvalidParameterError("res", f"must be one of {settings.h3_resolutions}")
    return res


@router.get("", response_model=NowcastLatest, summary="The latest nowcast step")
async def latest(
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    res: Annotated[int | None, Query(description="H3 resolution of the cell counts")] = None,
) -> dict[str, Any]:
    """Its time, the gauges used and stale, the rain, the deepest water now and at the horizon,
    the cells holding 0.15 m and 0.3 m or more, and (cleared callers) its skill."""
    r = _res(res, settings)
    row = await _latest(conn)
    cur = await conn.cursor(row_factory=dict_row).execute(
        query(SQL, "api_cell_counts"), {"step": row["step_id"], "res": r, "depths": DEPTHS}
    )
    counts = await cur.fetchall()
    skill = None
    if who.cleared_for(TABLES["nowcast_skill"]):
        cur = await conn.cursor(row_factory=dict_row).execute(
            query(SQL, "api_skill"), {"step": row["step_id"]}
        )
        skill = await cur.fetchone()
    gauges = row.pop("gauges") or {}
    return {
        **row, "stored_at": row.pop("created_at"), "res": r, "cells_over": counts, "skill": skill,
        "gauges_used": sorted(gauges.get("used") or {}), "gauges_stale": gauges.get("stale") or [],
        "links": {"self": "/api/nowcast", "cells": "/api/nowcast/cells"},
    }  # fmt: skip


@router.get("/cells", response_model=NowcastCells, summary="Cells of the latest nowcast step")
async def cells(
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    horizon: Annotated[
        str, Query(description="now, or +60 (the step's horizon; in a URL write %2B60 or 60)")
    ] = "now",
    res: Annotated[int | None, Query(description="H3 resolution (default the finest)")] = None,
    min_depth: Annotated[float, Query(ge=0, le=100, description="only cells this deep (m)")] = 0.0,
) -> dict[str, Any]:
    """The latest step's wet cells (1 cm or more now or over the horizon) with the depth of the
    deepest land pixel in each, now or at the horizon."""
    ensure_cleared(who, TABLES["nowcast_cell"], "nowcast cells")
    which = HORIZONS.get(horizon.strip())
    if which is None:
        raise InvalidParameterError("horizon", "now or +60")
    r = _res(res, settings)
    row = await _latest(conn)
    cur = await conn.cursor(row_factory=dict_row).execute(
        query(SQL, "api_cells"),
        {"step": row["step_id"], "res": r, "horizon": which, "min": min_depth},
    )
    found = await cur.fetchall()
    return {
        "step_id": row["step_id"], "as_of": row["as_of"], "horizon": which,
        "horizon_s": 0.0 if which == "now" else row["horizon_s"], "res": r,
        "count": len(found), "cells": found,
    }  # fmt: skip
