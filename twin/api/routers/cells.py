"""``/api/cells``: the cell card and the cells of an area."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin import grid
from twin.access import audit, scope
from twin.api.deps import ReadConn, ReadPrincipalDep, SettingsDep, public_principal
from twin.api.errors import InvalidParameterError, NotFoundError
from twin.api.schemas.cells import CellCard, CellList
from twin.city.areas import parse_bbox, parse_cell
from twin.city.cellcard import METRICS, cell_card, cells_in_bbox
from twin.risk.layers import catalog_for
from twin.risk.read import cell_risks
from twin.tasks import service as tasks
from twin.tasks import states

router = APIRouter(prefix="/api/cells", tags=["cells"])
MAX_CELLS = 20_000
#: Tasks the card lists: those still being worked on (finished ones live in /api/tasks).
ACTIVE_STATES = [s for s in states.STATES if s not in states.FINISHED]


# exclude_unset: when the tasks are withheld, the card's task list has no limit and offset;
# they stay absent (not null), as before the model.
@router.get("/{h3}", response_model=CellCard, response_model_exclude_unset=True,
            summary="The cell card")  # fmt: skip
async def get_cell(
    h3: str, conn: ReadConn, settings: SettingsDep, who: ReadPrincipalDep
) -> dict[str, Any]:
    """A cell's statistics (people counts below k hidden for those without the right), the admin
    areas holding it, its open events, hazard sites and buildings, its level in each risk layer
    the caller may see, and the unfinished tasks of the area (grid patch) holding it.

    Outside a scoped caller's scope the counts and risk layers are the public's; events,
    hazard sites and tasks there are not shown (row-level security)."""
    cell = parse_cell(h3, "h3")
    # Outside its scope a scoped user sees the cell as the public does.
    seen_as = who if await scope.cell_in_scope(conn, who, cell) else public_principal(settings)
    card = await cell_card(
        conn, cell, fine_res=settings.finest_resolution, k=settings.suppression_k,
        allowed=seen_as.can_see_people,
    )  # fmt: skip
    if card is None:
        raise NotFoundError(f"no statistics for cell {h3} (outside the city, or a resolution "
                            f"not in {settings.h3_resolutions})")  # fmt: skip
    if seen_as.can_see_people:  # unsuppressed people counts: a personal-data read
        await audit.record(conn, who, "people.read", f"cell/{h3}",
                           area_id=card["areas"][0]["id"] if card["areas"] else None)  # fmt: skip
    lon, lat = grid.cell_centers([cell])
    card["center"] = [float(lon[0]), float(lat[0])]
    visible = [lyr for lyr in catalog_for(settings).all_layers()
               if seen_as.cleared_for(lyr.classification)]  # fmt: skip
    card["risks"] = await cell_risks(
        conn, cell, res=card["cell"]["res"], layers=visible, allowed=seen_as.can_see_people
    )
    patch = card["areas"][0] if card["areas"] else None
    card["tasks"] = (
        await tasks.list_tasks(conn, area=patch["id"], states=ACTIVE_STATES, limit=50)
        if patch and who.cleared_for("important")
        else {"total": 0, "count": 0, "area": patch, "tasks": []}
    )
    # Events, hazard sites and tasks are important data: callers not cleared for it keep the
    # cell's counts of them (cell statistics are general) but not the records.
    card["withheld"] = []
    if not who.cleared_for("important"):
        card["open_events"], card["hazard_sites"] = [], []
        card["withheld"] = ["open_events", "hazard_sites", "tasks"]
    return card


@router.get("", response_model=CellList, summary="The cells of an area")
async def list_cells(
    conn: ReadConn,
    settings: SettingsDep,
    who: ReadPrincipalDep,
    bbox: Annotated[str, Query(description="min_lon,min_lat,max_lon,max_lat (EPSG:4326)")],
    res: Annotated[int, Query(description="H3 resolution (one of the configured ones)")] = 9,
    metric: Annotated[str, Query(description=f"one of {', '.join(METRICS)}")] = "population",
    limit: Annotated[int, Query(ge=1, le=MAX_CELLS)] = MAX_CELLS,
) -> dict[str, Any]:
    """Cells of ``res`` meeting ``bbox`` with one metric each, for hexagon layers."""
    box = parse_bbox(bbox)
    if res not in settings.h3_resolutions:
        raise InvalidParameterError("res", f"must be one of {settings.h3_resolutions}")
    if metric not in METRICS:
        raise InvalidParameterError("metric", f"must be one of {', '.join(METRICS)}")
    cells = await cells_in_bbox(
        conn, box, res=res, metric=metric, k=settings.suppression_k,
        allowed=who.can_see_people and not who.scoped, limit=limit,
    )  # fmt: skip
    if who.scoped and who.can_see_people:
        # Raw counts within the scope; outside it, the public's (suppressed) values.
        raw = await cells_in_bbox(
            conn, box, res=res, metric=metric, k=settings.suppression_k, allowed=True,
            limit=limit,
        )  # fmt: skip
        ids = [int(i) for i in grid.to_int([c["h3"] for c in raw])]
        mine = await scope.cells_in_scope(conn, who, ids)
        public = {c["h3"]: c for c in cells}
        cells = [
            c if i in mine else public.get(c["h3"], {"h3": c["h3"], "value": None})
            for i, c in zip(ids, raw, strict=True)
        ]
    return {"res": res, "metric": metric, "count": len(cells), "cells": cells}
