"""``/api/simulations``: start a storm, poll its progress, read its results."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict, Field

from twin import grid
from twin.access import audit, scope
from twin.access.principal import Principal
from twin.access.privacy import suppress_count
from twin.api.deps import Conn, PrincipalDep, SettingsDep
from twin.api.errors import ForbiddenError, InvalidParameterError, NotFoundError
from twin.api.schemas.simulations import FloodRoads, Run, RunCells, RunList, TrafficLinks
from twin.city.areas import parse_bbox
from twin.db.queries import query
from twin.runs import jobs
from twin.runs import traffic as traffic_runs
from twin.settings import Settings
from twin.sim.traffic import delay_band

router = APIRouter(prefix="/api/simulations", tags=["simulations"])

#: Cells whose hexagon meets the optional bbox (bound parameters x0..y1).
IN_BOX = (
    " AND (%(x0)s::float8 IS NULL"
    "      OR c.geom && ST_MakeEnvelope(%(x0)s, %(y0)s, %(x1)s, %(y1)s, 4326))"
)
SQL = "sim_runs.sql"


class FloodRequest(BaseModel):
    """A storm: a Chicago design storm, or a rain series of ``[time_s, intensity_mm_h]`` steps."""

    model_config = ConfigDict(extra="forbid")
    storm: Literal["chicago"] = "chicago"
    return_period_years: float = Field(50.0, gt=0, le=1000)
    duration_min: float = Field(120.0, gt=0, le=1440)
    after_min: float = Field(30.0, ge=0, le=1440)
    peak_ratio: float = Field(0.4, gt=0, lt=1)
    rain_series: list[tuple[float, float]] | None = Field(None, min_length=1, max_length=10_000)
    dtype: Literal["float64", "float32"] = "float64"


class TrafficRequest(BaseModel):
    """A peak hour on the twin's roads, with closures from flood runs, events and link ids."""

    model_config = ConfigDict(extra="forbid")
    period: Literal["am_peak", "pm_peak"] = "am_peak"
    closures: list[str] = Field(default_factory=list, max_length=20,
                                description="flood:RUN_ID entries")  # fmt: skip
    close_links: list[int] = Field(default_factory=list, max_length=100_000)
    events: bool = Field(True, description="close roads at open road_closure events")
    peak_share: float = Field(0.3, gt=0, le=1)
    target_trip_min: float | None = Field(None, gt=0, le=240)
    zone_res: int = Field(8, ge=5, le=10)
    gap: float = Field(1e-5, gt=0, lt=1)
    max_iter: int = Field(300, ge=1, le=10_000)


def public_run(row: dict[str, Any], k: int, allowed: bool) -> dict[str, Any]:
    out = dict(row)
    summary = dict(out.get("summary") or {})
    hidden_total = bool(summary.pop("affected_people_hidden", False))
    if "affected_people" in summary and not allowed:
        # The run's total is the root of the model that hides cells (twin.access.suppression).
        people = None if hidden_total else summary["affected_people"]
        summary["affected_people"] = suppress_count(people, k)
    summary.pop("rasters", None)  # server paths
    out["summary"] = summary
    out["links"] = {
        "self": f"/api/simulations/{row['id']}",
        "cells": f"/api/simulations/{row['id']}/cells",
        "roads": f"/api/simulations/{row['id']}/roads",
    }
    if row["kind"] == "traffic":
        del out["links"]["roads"]
        out["links"]["links"] = f"/api/simulations/{row['id']}/links"
    elif row["kind"] == "flood_ensemble":  # its results are a risk layer (docs/scale-out.md)
        out["links"] = {"self": out["links"]["self"], "risk": "/api/risk?layer=flood_ensemble"}
    return out


async def load_run(conn: Conn, run_id: int) -> dict[str, Any]:
    cur = await conn.cursor(row_factory=dict_row).execute(query(SQL, "run_by_id"), {"id": run_id})
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no simulation run {run_id}")
    return row


async def _run_of(conn: Conn, run_id: int, kind: str) -> dict[str, Any]:
    run = await load_run(conn, run_id)
    if run["kind"] != kind:
        raise InvalidParameterError("run_id", f"run {run_id} is a {run['kind']} run")
    return run


async def start_flood_run(
    body: FloodRequest, app: Any, conn: Conn, settings: Settings, who: Principal
) -> int:
    """Check the caller's right, queue the storm and audit it; the run id. The one start of a
    flood run for ``/api/simulations/flood`` and OGC API Processes (``/processes/flood``)."""
    if not who.may_run_simulations(settings.open_simulations):
        raise ForbiddenError("running simulations needs the analyst role")
    try:
        params = jobs.flood_params(body.model_dump())
    except ValueError as exc:
        raise InvalidParameterError(
            "rain_series" if body.rain_series else "body", str(exc)
        ) from exc
    run_id = await asyncio.to_thread(jobs.submit_flood, app, params, who)
    await audit.record(conn, who, "simulation.start", f"sim_run/{run_id}", detail={"kind": "flood"})
    return run_id


async def start_traffic_run(
    body: TrafficRequest, app: Any, conn: Conn, settings: Settings, who: Principal
) -> int:
    """Check the caller's right, queue the traffic run and audit it; the run id (one start
    for ``/api/simulations/traffic`` and ``/processes/traffic``)."""
    if not who.may_run_simulations(settings.open_simulations):
        raise ForbiddenError("running simulations needs the analyst role")
    try:
        params = traffic_runs.TrafficParams(
            period=body.period,
            peak_share=body.peak_share,
            zone_res=body.zone_res,
            target_trip_min=body.target_trip_min,
            flood_runs=traffic_runs.parse_closures(body.closures),
            close_links=tuple(body.close_links),
            events=body.events,
            gap=body.gap,
            max_iter=body.max_iter,
        )
        run_id = await asyncio.to_thread(jobs.submit_traffic, app, params, who)
    except traffic_runs.TrafficRunError as exc:
        field, _, message = str(exc).partition(": ")
        raise InvalidParameterError(field if message else "body", message or str(exc)) from exc
    await audit.record(conn, who, "simulation.start", f"sim_run/{run_id}",
                       detail={"kind": "traffic"})  # fmt: skip
    return run_id


@router.post("/flood", status_code=202, response_model=Run, summary="Start a storm on the twin")
async def start_flood(
    body: FloodRequest,
    request: Request,
    response: Response,
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    """Queue a flood run; poll ``Location`` for its progress and summary."""
    run_id = await start_flood_run(body, request.app, conn, settings, who)
    response.headers["Location"] = f"/api/simulations/{run_id}"
    return public_run(await load_run(conn, run_id), settings.suppression_k, who.can_see_all_people)


@router.post(
    "/traffic", status_code=202, response_model=Run,
    summary="Start a peak-hour traffic assignment",
)  # fmt: skip
async def start_traffic(
    body: TrafficRequest,
    request: Request,
    response: Response,
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
) -> dict[str, Any]:
    """Queue a traffic run (and its no-closure baseline when anything is closed); poll
    ``Location`` for progress and the summary with the delay index."""
    run_id = await start_traffic_run(body, request.app, conn, settings, who)
    response.headers["Location"] = f"/api/simulations/{run_id}"
    return public_run(await load_run(conn, run_id), settings.suppression_k, who.can_see_all_people)


@router.get("", response_model=RunList, summary="Simulation runs, newest first")
async def list_runs(
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    kind: Annotated[Literal["flood", "traffic", "flood_ensemble"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    cur = await conn.cursor(row_factory=dict_row).execute(
        query(SQL, "runs_list"), {"kind": kind, "limit": limit}
    )
    runs = await cur.fetchall()
    k, allowed = settings.suppression_k, who.can_see_all_people
    return {"runs": [public_run(r, k, allowed) for r in runs]}


@router.get(
    "/{run_id}", response_model=Run, summary="A run: status, progress, parameters and summary"
)
async def get_run(
    run_id: int, conn: Conn, settings: SettingsDep, who: PrincipalDep
) -> dict[str, Any]:
    return public_run(await load_run(conn, run_id), settings.suppression_k, who.can_see_all_people)


@router.get(
    "/{run_id}/cells", response_model=RunCells,
    summary="Per-cell results of a run (flood or traffic)",
)  # fmt: skip
async def run_cells(
    run_id: int,
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    res: Annotated[int, Query(description="H3 resolution")] = 9,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    min_depth: Annotated[float, Query(ge=0, description="flood: only cells this deep (m)")] = 0.0,
) -> dict[str, Any]:
    """Flood runs: depth, timing, hazard and affected buildings/people per cell. Traffic runs:
    vehicle-km and the VKT-weighted travel-time index per cell, with its band."""
    run = await load_run(conn, run_id)
    if run["kind"] not in ("flood", "traffic"):
        raise InvalidParameterError(
            "run_id", f"run {run_id} is a {run['kind']} run: its cells are the risk layer"
            " /api/risk?layer=flood_ensemble",
        )  # fmt: skip
    if res not in settings.h3_resolutions:
        raise InvalidParameterError("res", f"must be one of {settings.h3_resolutions}")
    box = parse_bbox(bbox) if bbox else None
    where = {"run": run_id, "res": res, "min": min_depth,
             "x0": box[0] if box else None, "y0": box[1] if box else None,
             "x1": box[2] if box else None, "y1": box[3] if box else None}  # fmt: skip
    if run["kind"] == "traffic":
        cur = await conn.cursor(row_factory=dict_row).execute(
            "SELECT twin.h3_to_hex(f.cell) AS h3, f.vkt, f.tti"  # noqa: S608 (constants)
            " FROM twin.traffic_cell_result f"
            " LEFT JOIN twin.cell_stats c ON c.res = f.res AND c.cell = f.cell"
            " WHERE f.run_id = %(run)s AND f.res = %(res)s" + IN_BOX + " ORDER BY f.cell",
            where,
        )
        cells = await cur.fetchall()
        for c in cells:
            c["band"] = delay_band(c["tti"])
        return {"run_id": run_id, "kind": "traffic", "res": res, "count": len(cells),
                "cells": cells}  # fmt: skip
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT twin.h3_to_hex(f.cell) AS h3, f.max_depth_m, f.mean_max_depth_m,"  # noqa: S608
        " f.time_of_max_s, f.flooded_share, f.time_to_15cm_s, f.max_hazard,"
        " f.affected_buildings, f.affected_people, f.people_hidden"
        " FROM twin.flood_cell_result f"
        " LEFT JOIN twin.cell_stats c ON c.res = f.res AND c.cell = f.cell"
        " WHERE f.run_id = %(run)s AND f.res = %(res)s AND f.max_depth_m >= %(min)s"
        + IN_BOX
        + " ORDER BY f.cell",
        where,
    )
    cells = await cur.fetchall()
    # Outside a scoped caller's scope, affected people are shown as to the public: hidden as
    # the run's store decided, over every resolution at once.
    ids = [int(i) for i in grid.to_int([c["h3"] for c in cells])] if cells else []
    mine = await scope.cells_in_scope(conn, who, ids)
    for c, cell in zip(cells, ids, strict=True):
        hidden = c.pop("people_hidden")
        if not (who.can_see_people and cell in mine):
            people = None if hidden else c["affected_people"]
            c["affected_people"] = suppress_count(people, settings.suppression_k)
    return {"run_id": run_id, "kind": "flood", "res": res, "count": len(cells), "cells": cells}


@router.get(
    "/{run_id}/links", response_model=TrafficLinks, summary="Per-link results of a traffic run"
)
async def run_links(
    run_id: int,
    conn: Conn,
    min_tti: Annotated[float, Query(ge=0, description="only links this congested")] = 0.0,
    closed: Annotated[bool | None, Query(description="only closed (true) or open links")] = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
) -> dict[str, Any]:
    """Flow (veh/h), time (min), v/c and travel-time index per road link, worst first."""
    await _run_of(conn, run_id, "traffic")
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT t.link_id, l.name, l.road_class, t.flow_vph, t.time_min, t.vc_ratio, t.tti,"
        " t.closed FROM twin.traffic_link_result t JOIN twin.road_link l ON l.id = t.link_id"
        " WHERE t.run_id = %(run)s AND t.tti >= %(min)s"
        " AND (%(closed)s::bool IS NULL OR t.closed = %(closed)s)"
        " ORDER BY t.closed DESC, t.tti DESC, t.link_id LIMIT %(limit)s",
        {"run": run_id, "min": min_tti, "closed": closed, "limit": limit},
    )
    links = await cur.fetchall()
    return {"run_id": run_id, "count": len(links), "links": links}


@router.get(
    "/{run_id}/roads", response_model=FloodRoads, summary="Road links reached by water in a run"
)
async def run_roads(
    run_id: int,
    conn: Conn,
    state: Annotated[Literal["passable", "slowed", "closed"] | None, Query()] = None,
) -> dict[str, Any]:
    await _run_of(conn, run_id, "flood")
    cur = await conn.cursor(row_factory=dict_row).execute(
        "SELECT f.link_id, l.name, l.road_class, f.max_depth_m, f.state"
        " FROM twin.flood_link_result f JOIN twin.road_link l ON l.id = f.link_id"
        " WHERE f.run_id = %(run)s AND (%(state)s::text IS NULL OR f.state = %(state)s)"
        " ORDER BY f.max_depth_m DESC",
        {"run": run_id, "state": state},
    )
    links = await cur.fetchall()
    return {"run_id": run_id, "count": len(links), "links": links}
