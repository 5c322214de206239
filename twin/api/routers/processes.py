"""OGC API - Processes - Part 1: Core over the simulation runs of ``/api/simulations``.

A process is a kind of run (``flood``, ``traffic``); a job is a run (``twin.sim_run``, the job
id is the run id). Executing a process calls the very functions behind
``POST /api/simulations/{kind}`` (:func:`twin.api.routers.simulations.start_flood_run`): the same
request model, rights check, queue and audit row. This module only translates the shapes.
Errors answer the OGC exception shape ``{type, title, status, detail}``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from psycopg.rows import dict_row
from pydantic import BaseModel, ValidationError

from twin import __version__
from twin.access import audit
from twin.access.principal import Principal
from twin.api.deps import Conn, PrincipalDep, SettingsDep
from twin.api.errors import (
    EXCEPTION_STATUS,
    MAX_DETAIL,
    InvalidParameterError,
    NotFoundError,
    TwinError,
    json_safe,
)
from twin.api.hosts import public_base
from twin.api.routers import simulations as sims
from twin.api.schemas.processes import (
    Execute,
    JobList,
    OgcException,
    ProcessDescription,
    ProcessList,
    Results,
    StatusInfo,
)
from twin.db.queries import query
from twin.settings import Settings

router = APIRouter(tags=["processes"])

EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
REL = "http://www.opengis.net/def/rel/ogc/1.0/"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/ogc-process-description",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/json",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/job-list",
    "http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/dismiss",
]
#: A synchronous execution waits this long for its run, then answers as an asynchronous one.
SYNC_WAIT_S = 120.0
POLL_S = 0.2

PROCESSES: dict[str, dict[str, Any]] = {
    "flood": {
        "title": "Urban flood (waterlogging) simulation",
        "description": "A storm on the twin: a Chicago design storm or a rain series of "
        "[time_s, intensity_mm_h] steps, run on the city's terrain and drains. The inputs "
        "are the fields of POST /api/simulations/flood.",
        "request": sims.FloodRequest,
    },
    "traffic": {
        "title": "Peak-hour traffic assignment",
        "description": "A peak hour on the twin's roads, with closures from flood runs, events "
        "and link ids. The inputs are the fields of POST /api/simulations/traffic.",
        "request": sims.TrafficRequest,
    },
}
#: sim_run.status -> the OGC job status.
STATUS = {"queued": "accepted", "running": "running", "succeeded": "successful",
          "failed": "failed", "cancelled": "dismissed"}  # fmt: skip
OGC_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": OgcException, "description": "no such process or job (OGC exception)"},
}
DISMISS_ERRORS: dict[int | str, dict[str, Any]] = {
    **OGC_ERRORS,
    403: {"model": OgcException, "description": "not the job's creator nor an operator"},
}


def ogc_error(status: int, kind: str, title: str, detail: str) -> JSONResponse:
    """An OGC exception answer; ``kind`` is the exception type (a name of the Processes
    exception vocabulary, or a full URI)."""
    if len(detail) > MAX_DETAIL:  # a message may quote what the client sent
        detail = detail[:MAX_DETAIL] + "..."
    body = {"type": kind if "://" in kind or kind == "about:blank" else EXC + kind,
            "title": title, "status": status, "detail": json_safe(detail)}  # fmt: skip
    return JSONResponse(body, status_code=status)


def _from_twin(exc: TwinError) -> JSONResponse:
    status = next((s for cls, s in EXCEPTION_STATUS.items() if isinstance(exc, cls)), 400)
    titles = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found"}
    resp = ogc_error(status, "about:blank", titles.get(status, "Error"), str(exc))
    if isinstance(exc, InvalidParameterError):
        resp = ogc_error(status, "about:blank", "Invalid input", str(exc))
    if status == 401:
        resp.headers["WWW-Authenticate"] = 'Bearer realm="twin"'
    return resp


def _no_process(process_id: str) -> JSONResponse:
    return ogc_error(404, "no-such-process", "No such process",
                     f"no process {process_id!r}; processes: {', '.join(PROCESSES)}")  # fmt: skip


def _no_job(job_id: str) -> JSONResponse:
    return ogc_error(404, "no-such-job", "No such job", f"no job {job_id!r}")


def _summary(base: str, pid: str) -> dict[str, Any]:
    p = PROCESSES[pid]
    return {
        "id": pid, "title": p["title"], "description": p["description"], "version": __version__,
        "jobControlOptions": ["sync-execute", "async-execute"], "outputTransmission": ["value"],
        "links": [
            {"href": f"{base}/processes/{pid}", "rel": "self", "type": "application/json",
             "title": "process description"},
            {"href": f"{base}/processes/{pid}/execution", "rel": REL + "execute",
             "type": "application/json", "title": "execute"},
        ],
    }  # fmt: skip


def _inputs(model: type[BaseModel]) -> dict[str, Any]:
    """The request model's fields as OGC input descriptions (each with its JSON Schema)."""
    schema = model.model_json_schema()
    out = {}
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        title = prop.pop("title", name)
        description = prop.pop("description", None)
        out[name] = {"title": title, "description": description, "schema": prop,
                     "minOccurs": 1 if name in schema.get("required", []) else 0,
                     "maxOccurs": 1}  # fmt: skip
    return out


OUTPUTS = {
    "summary": {"title": "Summary", "description": "the run in numbers (as the summary of "
                "GET /api/simulations/{id})", "schema": {"type": "object"}},
    "cells": {"title": "Per-cell results", "description": "a link to the run's cells",
              "schema": {"type": "object", "properties": {"href": {"type": "string"}}}},
}  # fmt: skip


@router.get("/processes", response_model=ProcessList, summary="The simulations as processes",
            response_model_exclude_none=True)  # fmt: skip
async def list_processes(request: Request) -> dict[str, Any]:
    base = public_base(request)
    return {
        "processes": [_summary(base, pid) for pid in PROCESSES],
        "links": [{"href": f"{base}/processes", "rel": "self", "type": "application/json"}],
    }


@router.get(
    "/processes/{processId}", response_model=ProcessDescription, responses=OGC_ERRORS,
    summary="A process: its inputs and outputs", response_model_exclude_none=True,
)  # fmt: skip
async def describe_process(processId: str, request: Request) -> Any:
    if processId not in PROCESSES:
        return _no_process(processId)
    return {**_summary(public_base(request), processId),
            "inputs": _inputs(PROCESSES[processId]["request"]), "outputs": OUTPUTS}  # fmt: skip


def _status(base: str, run: dict[str, Any]) -> dict[str, Any]:
    rid = run["id"]
    status = STATUS.get(run["status"], "accepted")
    links = [
        {"href": f"{base}/jobs/{rid}", "rel": "self", "type": "application/json"},
        {"href": f"{base}/api/simulations/{rid}", "rel": "alternate", "type": "application/json",
         "title": "the run in /api/simulations"},
    ]  # fmt: skip
    if status == "successful":
        links.append({"href": f"{base}/jobs/{rid}/results", "rel": REL + "results",
                      "type": "application/json", "title": "results"})  # fmt: skip
    times = [t for t in (run["created_at"], run["started_at"], run["finished_at"]) if t]
    return {
        "processID": run["kind"], "type": "process", "jobID": str(rid), "status": status,
        "message": run["error"], "created": run["created_at"], "started": run["started_at"],
        "finished": run["finished_at"], "updated": max(times) if times else None,
        "progress": max(0, min(100, round(100 * float(run["progress"] or 0)))), "links": links,
    }  # fmt: skip


def _results(base: str, run: dict[str, Any], settings: Any, who: Any) -> dict[str, Any]:
    public = sims.public_run(run, settings.suppression_k, who.can_see_all_people)
    return {"summary": public["summary"],
            "cells": {"href": f"{base}/api/simulations/{run['id']}/cells",
                      "type": "application/json"}}  # fmt: skip


async def _job(conn: Conn, job_id: str) -> dict[str, Any] | None:
    """The run of a job id (flood and traffic runs not dismissed), or None."""
    if not (job_id.isascii() and job_id.isdigit()) or len(job_id) > 18:
        return None
    try:
        run = await sims.load_run(conn, int(job_id))
    except NotFoundError:
        return None
    return run if run["kind"] in PROCESSES and run["dismissed_at"] is None else None


def may_dismiss(who: Principal, run: dict[str, Any], settings: Settings) -> bool:
    """Who may dismiss a job: an operator or admin of the whole city, or the user who started
    it (with the right to run simulations still). Never a caller without a token, even where
    simulations are open to the public (the demo): anonymous callers cannot be told apart, so
    one could cancel another's run, or the city's own (CLI) runs."""
    del settings  # the rule is the same whatever the twin opens to the public
    if who.can_operate and not who.scoped:
        return True
    if who.user_id is not None:
        return who.user_id == run["created_by"] and who.can_run_simulations
    return False


@router.post(
    "/processes/{processId}/execution", response_model=Results,
    summary="Execute a process: sync (results) or async (Prefer: respond-async, a job)",
    responses={201: {"model": StatusInfo, "description": "the job (asynchronous execution, "
                     "or a synchronous one that outlasted the wait)"}, **OGC_ERRORS},
)  # fmt: skip
async def execute(
    processId: str,
    body: Execute,
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
    prefer: Annotated[str | None, Header(description="respond-async for a job")] = None,
) -> Any:
    """The inputs are the fields of ``POST /api/simulations/{processId}``; the run is the same."""
    if processId not in PROCESSES:
        return _no_process(processId)
    model: type[BaseModel] = PROCESSES[processId]["request"]
    try:
        req = model.model_validate(body.inputs)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(p) for p in first["loc"]) or "inputs"
        return ogc_error(400, "about:blank", "Invalid input", f"input {name!r}: {first['msg']}")
    start = sims.start_flood_run if processId == "flood" else sims.start_traffic_run
    try:
        run_id = await start(req, request.app, conn, settings, who)  # type: ignore[arg-type]
    except TwinError as exc:
        return _from_twin(exc)
    base = public_base(request)
    wants_async = "respond-async" in (prefer or "").lower()
    run = await sims.load_run(conn, run_id)
    if not wants_async:
        deadline = time.monotonic() + SYNC_WAIT_S
        while run["status"] in ("queued", "running") and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
            run = await sims.load_run(conn, run_id)
        if run["status"] == "succeeded":
            return JSONResponse(_results(base, run, settings, who), status_code=200)
    info = StatusInfo.model_validate(_status(base, run)).model_dump(mode="json", exclude_none=True)
    headers = {"Location": f"{base}/jobs/{run_id}"}
    if wants_async:
        headers["Preference-Applied"] = "respond-async"
    return JSONResponse(info, status_code=201, headers=headers)


@router.get("/jobs", response_model=JobList, summary="Jobs: the simulation runs, newest first",
            response_model_exclude_none=True)  # fmt: skip
async def list_jobs(
    request: Request,
    conn: Conn,
    processID: Annotated[list[str] | None, Query()] = None,
    status: Annotated[list[str] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    for p in processID or []:
        if p not in PROCESSES:
            raise InvalidParameterError("processID", f"no process {p!r}")
    for s in status or []:
        if s not in STATUS.values():
            raise InvalidParameterError("status", f"must be one of {sorted(set(STATUS.values()))}")
    kind = processID[0] if processID and len(set(processID)) == 1 else None
    cur = await conn.cursor(row_factory=dict_row).execute(
        query(sims.SQL, "jobs_list"), {"kind": kind, "limit": 10_000 if status else limit}
    )
    base = public_base(request)
    wanted = set(processID or PROCESSES)
    jobs = [_status(base, r) for r in await cur.fetchall() if r["kind"] in wanted]
    if status:
        jobs = [j for j in jobs if j["status"] in status]
    links = [{"href": f"{base}/jobs", "rel": "self", "type": "application/json"}]
    return {"jobs": jobs[:limit], "links": links}


@router.get("/jobs/{jobId}", response_model=StatusInfo, responses=OGC_ERRORS,
            summary="A job's status", response_model_exclude_none=True)  # fmt: skip
async def job_status(jobId: str, request: Request, conn: Conn) -> Any:
    run = await _job(conn, jobId)
    if run is None:
        return _no_job(jobId)
    return _status(public_base(request), run)


@router.get("/jobs/{jobId}/results", response_model=Results, responses=OGC_ERRORS,
            summary="A finished job's results")  # fmt: skip
async def job_results(
    jobId: str,
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
) -> Any:
    run = await _job(conn, jobId)
    if run is None:
        return _no_job(jobId)
    if run["status"] == "failed":
        return ogc_error(404, "result-not-ready", "Job failed",
                         f"job {jobId} failed: {run['error']}")  # fmt: skip
    if run["status"] != "succeeded":
        return ogc_error(404, "result-not-ready", "Result not ready",
                         f"job {jobId} is {STATUS.get(run['status'], run['status'])}")  # fmt: skip
    return _results(public_base(request), run, settings, who)


@router.delete("/jobs/{jobId}", response_model=StatusInfo, responses=DISMISS_ERRORS,
               summary="Dismiss a job: cancel it if queued or running, and drop it from /jobs",
               response_model_exclude_none=True)  # fmt: skip
async def dismiss_job(
    jobId: str,
    request: Request,
    conn: Conn,
    settings: SettingsDep,
    who: PrincipalDep,
) -> Any:
    """OGC API Processes dismiss. A queued run never starts; a running one stops at its next
    progress report (about a second) and keeps no results; a finished run keeps its status and
    results in ``/api/simulations``. The job then answers 404 here. Audited
    (``simulation.dismiss``)."""
    run = await _job(conn, jobId)
    if run is None:
        return _no_job(jobId)
    if not may_dismiss(who, run, settings):
        detail = f"job {jobId}: only its creator or an operator may dismiss it"
        return ogc_error(403, "about:blank", "Forbidden", detail)
    cur = await conn.cursor(row_factory=dict_row).execute(
        query(sims.SQL, "job_dismiss"), {"id": run["id"]}
    )
    done = await cur.fetchone()
    if done is None:  # dismissed meanwhile by another request
        return _no_job(jobId)
    await audit.record(conn, who, "simulation.dismiss", f"sim_run/{run['id']}",
                       detail={"kind": run["kind"], "was": run["status"],
                               "cancelled": done["status"] != run["status"]})  # fmt: skip
    info = _status(public_base(request), done)
    info["status"] = "dismissed"
    info["message"] = info["message"] or f"job {jobId} dismissed"
    info["links"] = [x for x in info["links"] if x["rel"] != REL + "results"]
    return StatusInfo.model_validate(info).model_dump(mode="json", exclude_none=True)
