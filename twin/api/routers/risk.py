"""``/api/layers`` and ``/api/risk``: the one-map catalog and the scores of a layer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from twin.access import audit
from twin.access.principal import Principal
from twin.api.deps import Conn, PrincipalDep, SettingsDep, ensure_cleared
from twin.api.errors import InvalidParameterError, NotFoundError
from twin.api.schemas.risk import LayerCatalog, RiskCells
from twin.city.areas import parse_bbox
from twin.risk.catalog import LEVELS, Layer
from twin.risk.layers import catalog_for
from twin.risk.read import level_counts, risk_cells
from twin.settings import Settings

router = APIRouter(prefix="/api", tags=["risk"])
MAX_CELLS = 50_000


def _visible(layer: Layer, who: Principal) -> bool:
    return who.cleared_for(layer.classification)


def _layer(layer_id: str, settings: Settings, who: Principal) -> Layer:
    layer = catalog_for(settings).get(layer_id)
    if layer is None:
        raise NotFoundError(f"no risk layer {layer_id!r}; see /api/layers")
    ensure_cleared(who, layer.classification, f"risk layer {layer_id!r}")
    return layer


@router.get("/layers", response_model=LayerCatalog, summary="The risk one-map layer catalog")
async def layers(conn: Conn, settings: SettingsDep, who: PrincipalDep) -> dict[str, Any]:
    """Every layer the caller may see (and the combined one map) with its family, scoring,
    thresholds, style, tiles and cells per level at the last `twin risk compute`. Files that
    fail to load are listed under ``errors`` (by file name) and left out."""
    catalog = catalog_for(settings)
    # Core layers are limited to the caller's scope, their cell counts too.
    core = [lyr.id for lyr in catalog.all_layers()
            if lyr.classification == "core" and _visible(lyr, who)]  # fmt: skip
    counts = await level_counts(conn, scoped=core)
    if core:
        await audit.record(conn, who, "layer.read", "layers", detail={"layers": core})
    # A layer the last computation left without a single scored cell has no data (its inputs
    # are all empty: no residents, no events...); say so rather than show an all-clear map.
    last = max((c["computed_at"] for c in counts.values()), default=None)
    out = []
    for lyr in catalog.all_layers():
        if not _visible(lyr, who):
            continue
        d = lyr.describe()
        got = counts.get((lyr.id, lyr.res), {"levels": {}, "computed_at": None})
        d["cells"] = {lvl: got["levels"].get(lvl, 0) for lvl in LEVELS}
        d["computed_at"] = got["computed_at"]
        d["status"] = "ok" if got["levels"] else ("no data" if last else "not computed")
        out.append(d)
    errors = [
        {"file": e.path.rsplit("/", 1)[-1], "field": e.field, "error": str(e).split(": ", 1)[-1]}
        for e in catalog.errors
    ]
    return {"layers": out, "errors": errors}


@router.get("/risk", response_model=RiskCells, summary="Risk scores of a layer per cell")
async def risk(
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    layer: Annotated[str, Query(description="layer id from /api/layers ('onemap': combined)")],
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    res: Annotated[int | None, Query(description="H3 resolution (default: the layer's)")] = None,
    level: Annotated[str | None, Query(description=f"only cells at this level {LEVELS}")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CELLS)] = MAX_CELLS,
) -> dict[str, Any]:
    """Cells with score (0-100), level and the components of the score; coarser resolutions
    carry each cell's worst child. Scores that would reveal a people count below k are hidden
    (``suppressed``) from callers without the right to see people."""
    lyr = _layer(layer, settings, who)
    res = lyr.res if res is None else res
    allowed = sorted(r for r in settings.h3_resolutions if r <= lyr.res)
    if res not in allowed:
        raise InvalidParameterError("res", f"layer {lyr.id!r} is scored at resolutions {allowed}")
    if level is not None and level not in LEVELS:
        raise InvalidParameterError("level", f"one of {', '.join(LEVELS)}")
    box = parse_bbox(bbox) if bbox is not None else None
    cells = await risk_cells(
        conn,
        lyr,
        res=res,
        bbox=box,
        level=level,
        allowed=who.can_see_people,
        limit=limit,
        scoped=lyr.classification == "core",
    )
    if lyr.classification == "core" or who.can_see_people:  # a personal layer, or raw counts
        await audit.record(conn, who, "layer.read", f"risk/{lyr.id}",
                           detail={"res": res, "bbox": bbox, "cells": len(cells)})  # fmt: skip
    return {"layer": lyr.id, "title": lyr.title, "res": res, "levels": lyr.levels,
            "colors": lyr.colors, "count": len(cells), "cells": cells}  # fmt: skip
