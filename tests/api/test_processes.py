"""OGC API - Processes driven by a real client (OWSLib) against a real server (uvicorn).

The processes are the simulations of ``/api/simulations``: a job is a run, so the results a
job answers are compared with ``GET /api/simulations/{id}`` of the same run, and the audit row
is the one ``POST /api/simulations/flood`` writes.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from owslib.ogcapi.processes import Processes

from tests.services import free_port
from twin.access.tokens import add_user
from twin.api.app import create_app
from twin.settings import Settings

#: A short storm (the tiny demo's scale): a few seconds of solver time.
SHORT = {"duration_min": 5, "after_min": 0, "return_period_years": 50}
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"


def _serve(settings: Settings) -> Iterator[str]:
    port = free_port()
    srv = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def server(tiny_settings: Settings) -> Iterator[str]:
    """The tiny demo twin with simulations open to the public (the demo's opening)."""
    yield from _serve(tiny_settings.model_copy(update={"open_simulations": True}))


@pytest.fixture(scope="module")
def secure_server(tiny_settings: Settings) -> Iterator[str]:
    """The same twin with the secure defaults: the public may not start runs."""
    yield from _serve(tiny_settings.model_copy(update={"open_simulations": False}))


def _client(base: str) -> Processes:
    # OWSLib shares one headers dict between its clients: start each from a clean Prefer.
    p = Processes(base)
    p.headers.pop("Prefer", None)
    return p


def _poll(base: str, job: str, timeout: float = 180) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        info = httpx.get(f"{base}/jobs/{job}").json()
        if info["status"] in ("successful", "failed", "dismissed"):
            return info
        assert time.monotonic() < deadline, info
        time.sleep(0.3)


def test_landing_and_conformance(server: str) -> None:
    landing = httpx.get(f"{server}/").json()
    rels = {link["rel"]: link["href"] for link in landing["links"]}
    assert rels["http://www.opengis.net/def/rel/ogc/1.0/processes"] == f"{server}/processes"
    classes = _client(server).conformance()["conformsTo"]
    for c in ("core", "json", "job-list", "dismiss"):
        assert f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{c}" in classes
    # The Features classes are still there.
    assert "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core" in classes


def test_list_and_describe(server: str) -> None:
    p = _client(server)
    listed = {x["id"]: x for x in p.processes()}
    assert set(listed) == {"flood", "traffic"}
    assert set(listed["flood"]["jobControlOptions"]) == {"sync-execute", "async-execute"}
    flood = p.process("flood")
    assert flood["id"] == "flood"
    # The inputs are the fields of the request model of /api/simulations/flood, as JSON Schema.
    assert set(flood["inputs"]) == {"storm", "return_period_years", "duration_min", "after_min",
                                    "peak_ratio", "rain_series", "dtype"}  # fmt: skip
    rp = flood["inputs"]["return_period_years"]["schema"]
    assert rp["type"] == "number" and rp["exclusiveMinimum"] == 0 and rp["maximum"] == 1000
    assert rp["default"] == 50.0
    storm = flood["inputs"]["storm"]["schema"]
    assert storm.get("enum", [storm.get("const")]) == ["chicago"]
    assert set(flood["outputs"]) == {"summary", "cells"}
    traffic = p.process("traffic")
    assert "max_iter" in traffic["inputs"] and "closures" in traffic["inputs"]


def test_execute_async_is_the_simulation_run(server: str, tiny_settings: Settings) -> None:
    p = _client(server)
    started = p.execute("flood", SHORT, async_=True)
    p.headers.pop("Prefer", None)
    assert started["status"] in ("accepted", "running", "successful")
    assert started["type"] == "process" and started["processID"] == "flood"
    job = started["jobID"]
    assert p.response_headers["Location"] == f"{server}/jobs/{job}"
    assert p.response_headers["Preference-Applied"] == "respond-async"

    info = _poll(server, job)
    assert info["status"] == "successful", info
    assert info["progress"] == 100
    assert info["created"] and info["started"] and info["finished"]
    results_link = next(
        x["href"] for x in info["links"]
        if x["rel"] == "http://www.opengis.net/def/rel/ogc/1.0/results"
    )  # fmt: skip
    results = p._request(path=f"jobs/{job}/results")
    assert results_link == f"{server}/jobs/{job}/results"

    # One implementation: the job is the run of /api/simulations, with its parameters.
    run = httpx.get(f"{server}/api/simulations/{job}").json()
    assert run["status"] == "succeeded" and run["kind"] == "flood"
    assert results["summary"] == run["summary"]
    assert run["params"]["duration_s"] == SHORT["duration_min"] * 60
    assert results["cells"]["href"] == f"{server}/api/simulations/{job}/cells"
    # ... with the audit row of a start.
    with psycopg.connect(tiny_settings.database_url) as conn:
        n = conn.execute(
            "SELECT count(*) FROM twin.audit_log WHERE action = 'simulation.start'"
            " AND resource = %s AND detail->>'kind' = 'flood'",
            (f"sim_run/{job}",),
        ).fetchone()
    assert n == (1,)
    # The job list has it, as the run list does.
    jobs = httpx.get(f"{server}/jobs", params={"limit": 500}).json()["jobs"]
    mine = next(j for j in jobs if j["jobID"] == job)
    assert mine["status"] == "successful"
    runs = httpx.get(f"{server}/api/simulations", params={"limit": 500}).json()["runs"]
    ogc_kinds = [r for r in runs if r["kind"] in ("flood", "traffic")]
    assert [j["jobID"] for j in jobs] == [str(r["id"]) for r in ogc_kinds]


def test_execute_sync_returns_results(server: str) -> None:
    p = _client(server)
    results = p.execute("flood", {**SHORT, "duration_min": 3})
    p.headers.pop("Prefer", None)
    assert set(results) == {"summary", "cells"}
    run_id = results["cells"]["href"].rsplit("/", 2)[-2]
    run = httpx.get(f"{server}/api/simulations/{run_id}").json()
    assert run["status"] == "succeeded"
    assert run["params"]["duration_s"] == 180
    assert results["summary"] == run["summary"]


def test_results_not_ready_while_running(server: str) -> None:
    r = httpx.post(f"{server}/processes/flood/execution", json={"inputs": SHORT},
                   headers={"Prefer": "respond-async"})  # fmt: skip
    assert r.status_code == 201, r.text
    job = r.json()["jobID"]
    got = httpx.get(f"{server}/jobs/{job}/results")
    if got.status_code == 404:  # the run had not finished
        assert got.json()["type"] == EXC + "result-not-ready"
        assert got.json()["status"] == 404
    else:
        assert got.status_code == 200
    assert _poll(server, job)["status"] == "successful"
    assert httpx.get(f"{server}/jobs/{job}/results").status_code == 200


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/processes/nope", "no-such-process"),
        ("/jobs/999999999", "no-such-job"),
        ("/jobs/abc", "no-such-job"),
        ("/jobs/999999999/results", "no-such-job"),
    ],
)
def test_unknown_is_404_ogc_exception(server: str, path: str, kind: str) -> None:
    r = httpx.get(server + path)
    assert r.status_code == 404
    body = r.json()
    assert body["type"] == EXC + kind and body["status"] == 404
    assert body["title"] and body["detail"]


def test_execute_unknown_process(server: str) -> None:
    r = httpx.post(f"{server}/processes/nope/execution", json={"inputs": {}})
    assert r.status_code == 404 and r.json()["type"] == EXC + "no-such-process"


@pytest.mark.parametrize(
    ("inputs", "name"),
    [
        ({"duration_min": -5}, "duration_min"),
        ({"return_period_years": "many"}, "return_period_years"),
        ({"no_such_input": 1}, "no_such_input"),
    ],
)
def test_bad_input_is_400_naming_it(server: str, inputs: dict[str, Any], name: str) -> None:
    before = len(httpx.get(f"{server}/api/simulations", params={"limit": 500}).json()["runs"])
    r = httpx.post(f"{server}/processes/flood/execution", json={"inputs": inputs})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["status"] == 400 and name in body["detail"], body
    after = len(httpx.get(f"{server}/api/simulations", params={"limit": 500}).json()["runs"])
    assert after == before  # nothing queued


def test_bad_traffic_reference_is_400(server: str) -> None:
    r = httpx.post(f"{server}/processes/traffic/execution",
                   json={"inputs": {"closures": ["flood:999999999"]}})  # fmt: skip
    assert r.status_code == 400 and "999999999" in r.json()["detail"], r.text


def test_secure_defaults_refuse_the_public(secure_server: str) -> None:
    """As /api/simulations: the public may read processes and jobs, not start runs."""
    assert httpx.get(f"{secure_server}/processes").status_code == 200
    for path in ("/processes/flood/execution", "/api/simulations/flood"):
        body = {"inputs": SHORT} if path.startswith("/processes") else SHORT
        r = httpx.post(secure_server + path, json=body, headers={"Prefer": "respond-async"})
        assert r.status_code in (401, 403), (path, r.text)
    r = httpx.post(f"{secure_server}/processes/flood/execution", json={"inputs": SHORT})
    assert r.status_code == 403 and r.json()["status"] == 403
    # Through OWSLib too: it raises on the refusal.
    p = _client(secure_server)
    with pytest.raises(RuntimeError):
        p.execute("flood", SHORT, async_=True)
    p.headers.pop("Prefer", None)


def test_sync_beyond_the_wait_answers_the_job(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A synchronous execution that outlasts the wait is answered as an asynchronous one."""
    from twin.api.routers import processes

    monkeypatch.setattr(processes, "SYNC_WAIT_S", 0.0)
    r = httpx.post(f"{server}/processes/flood/execution", json={"inputs": SHORT})
    assert r.status_code == 201, r.text
    job = r.json()["jobID"]
    assert r.headers["Location"] == f"{server}/jobs/{job}"
    assert "Preference-Applied" not in r.headers
    assert _poll(server, job)["status"] == "successful"


def test_traffic_through_owslib(server: str) -> None:
    p = _client(server)
    started = p.execute("traffic", {"events": False, "max_iter": 3}, async_=True)
    p.headers.pop("Prefer", None)
    info = _poll(server, started["jobID"])
    assert info["status"] == "successful" and info["processID"] == "traffic"
    results = p._request(path=f"jobs/{started['jobID']}/results")
    run = httpx.get(f"{server}/api/simulations/{started['jobID']}").json()
    assert run["kind"] == "traffic" and results["summary"] == run["summary"]
    assert run["params"]["max_iter"] == 3
    only = httpx.get(f"{server}/jobs", params={"processID": "traffic"}).json()["jobs"]
    assert only and {j["processID"] for j in only} == {"traffic"}
    ok = httpx.get(f"{server}/jobs", params={"status": "successful", "limit": 500}).json()
    assert {j["status"] for j in ok["jobs"]} == {"successful"}
    assert httpx.get(f"{server}/jobs", params={"status": "done"}).status_code == 400


# --- Dismiss (DELETE /jobs/{id}, the OGC "dismiss" class). OWSLib has no dismiss call: the
# requests are the spec's own (DELETE on the job's URL, the statusInfo back).

#: A storm long enough to be still running when it is dismissed (minutes of solver time).
LONG = {"duration_min": 1440, "after_min": 0, "return_period_years": 100}


def _start(base: str, inputs: dict[str, Any], token: str | None = None) -> str:
    headers = {"Prefer": "respond-async"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = httpx.post(f"{base}/processes/flood/execution", json={"inputs": inputs}, headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["jobID"])


def _dismiss(base: str, job: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.delete(f"{base}/jobs/{job}", headers=headers)


def _run_row(settings: Settings, job: str) -> dict[str, Any]:
    with psycopg.connect(settings.database_url) as conn:
        row = conn.execute(
            "SELECT status, started_at, finished_at, dismissed_at, summary,"
            " (SELECT count(*) FROM twin.flood_cell_result WHERE run_id = r.id)"
            " FROM twin.sim_run r WHERE id = %s",
            (int(job),),
        ).fetchone()
    assert row is not None
    keys = ("status", "started_at", "finished_at", "dismissed_at", "summary", "cells")
    return dict(zip(keys, row, strict=True))


def _settle(settings: Settings, jobs: list[str], timeout: float = 180) -> None:
    """Wait until the worker is done with these runs (queued or running: not yet)."""
    deadline = time.monotonic() + timeout
    while any(_run_row(settings, j)["status"] in ("queued", "running") for j in jobs):
        assert time.monotonic() < deadline, jobs
        time.sleep(0.3)


def _forget_runs(settings: Settings, jobs: list[str]) -> None:
    """Clean up: the runs a test made (their results and events go with them)."""
    with psycopg.connect(settings.database_url) as conn:
        conn.execute("DELETE FROM twin.sim_run WHERE id = ANY(%s)", ([int(j) for j in jobs],))


def test_dismiss_finished_job(server: str, tiny_settings: Settings, users: dict[str, str]) -> None:
    job = _start(server, SHORT)
    try:
        assert _poll(server, job)["status"] == "successful"
        # Not by the public, even where it may start runs (anonymous callers are all alike).
        assert _dismiss(server, job).status_code == 403
        r = _dismiss(server, job, users["op"])
        assert r.status_code == 200, r.text
        info = r.json()
        assert info["jobID"] == job and info["status"] == "dismissed"
        assert info["processID"] == "flood" and info["type"] == "process"
        assert not any(x["rel"].endswith("/results") for x in info["links"])
        # The job is gone from the job API ...
        for path in (f"/jobs/{job}", f"/jobs/{job}/results"):
            got = httpx.get(server + path)
            assert got.status_code == 404 and got.json()["type"] == EXC + "no-such-job", path
        again = _dismiss(server, job, users["op"])
        assert again.status_code == 404 and again.json()["type"] == EXC + "no-such-job"
        jobs = httpx.get(f"{server}/jobs", params={"limit": 500}).json()["jobs"]
        assert job not in {j["jobID"] for j in jobs}
        # ... the run and its results stay, as they were.
        run = httpx.get(f"{server}/api/simulations/{job}").json()
        assert run["status"] == "succeeded" and run["summary"]
        row = _run_row(tiny_settings, job)
        assert row["dismissed_at"] is not None and row["cells"] > 0
        with psycopg.connect(tiny_settings.database_url) as conn:
            audit = conn.execute(
                "SELECT detail->>'was', detail->>'cancelled' FROM twin.audit_log"
                " WHERE action = 'simulation.dismiss' AND resource = %s",
                (f"sim_run/{job}",),
            ).fetchall()
        assert audit == [("succeeded", "false")]
    finally:
        _forget_runs(tiny_settings, [job])


def test_dismiss_cancels_running_and_queued(
    server: str, tiny_settings: Settings, users: dict[str, str]
) -> None:
    """A running storm stops (and keeps no results); a queued one never starts. The proof it
    stopped: a storm queued behind it (one worker) finishes long before the day-long storm
    could have."""
    running = _start(server, LONG)
    queued = _start(server, LONG)
    after = ""
    try:
        deadline = time.monotonic() + 120
        while httpx.get(f"{server}/jobs/{running}").json()["status"] != "running":
            assert time.monotonic() < deadline, "the long storm did not start"
            time.sleep(0.2)
        assert httpx.get(f"{server}/jobs/{queued}").json()["status"] == "accepted"
        for job in (queued, running):
            r = _dismiss(server, job, users["op"])
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "dismissed" and r.json()["jobID"] == job
        after = _start(server, SHORT)
        t0 = time.monotonic()
        assert _poll(server, after, timeout=120)["status"] == "successful"
        waited = time.monotonic() - t0
        q, rr = _run_row(tiny_settings, queued), _run_row(tiny_settings, running)
        assert q["status"] == "cancelled" and q["started_at"] is None and q["cells"] == 0
        assert rr["status"] == "cancelled" and rr["started_at"] is not None
        assert rr["cells"] == 0 and not rr["summary"], rr  # no results kept
        assert q["finished_at"] and rr["finished_at"]
        # /api/simulations tells the same story.
        assert httpx.get(f"{server}/api/simulations/{running}").json()["status"] == "cancelled"
        assert waited < 120, waited
    finally:
        for job in (running, queued):  # never leave a day-long storm on the worker
            _dismiss(server, job, users["op"])
        jobs = [j for j in (running, queued, after) if j]
        _settle(tiny_settings, jobs)
        _forget_runs(tiny_settings, jobs)


@pytest.fixture(scope="module")
def users(tiny_settings: Settings) -> Iterator[dict[str, str]]:
    """Tokens: two analysts, a city operator and an operator scoped to one district."""
    tag = uuid.uuid4().hex[:8]
    names = {k: f"dismiss-{k}-{tag}" for k in ("alice", "bob", "op", "district_op")}
    out = {}
    with psycopg.connect(tiny_settings.database_url) as c:
        code = c.execute(
            "SELECT code FROM twin.admin_area WHERE level = 'district' ORDER BY id LIMIT 1"
        ).fetchone()
        assert code is not None
        _, out["alice"] = add_user(c, names["alice"], "analyst")
        _, out["bob"] = add_user(c, names["bob"], "analyst")
        _, out["op"] = add_user(c, names["op"], "operator")
        _, out["district_op"] = add_user(c, names["district_op"], "operator",
                                         f"district:{code[0]}")  # fmt: skip
    yield out
    with psycopg.connect(tiny_settings.database_url) as c:
        c.execute("DELETE FROM twin.app_user WHERE name = ANY(%s)", (list(names.values()),))


def test_dismiss_rights(secure_server: str, tiny_settings: Settings,
                        users: dict[str, str]) -> None:  # fmt: skip
    """Only the job's creator or a city operator may dismiss it: not the public, another
    analyst, nor an operator of one district; refusals change nothing."""
    alices = _start(secure_server, SHORT, users["alice"])
    bobs = _start(secure_server, SHORT, users["bob"])
    try:
        for who in (None, users["bob"], users["district_op"]):
            r = _dismiss(secure_server, alices, who)
            assert r.status_code == 403, (who, r.text)
            assert r.json()["status"] == 403 and alices in r.json()["detail"]
        assert _run_row(tiny_settings, alices)["dismissed_at"] is None
        assert httpx.get(f"{secure_server}/jobs/{alices}").status_code == 200
        # A run started by the CLI (the demo's storm) is no anonymous caller's here.
        demo = next(j["jobID"] for j in httpx.get(f"{secure_server}/jobs").json()["jobs"]
                    if j["jobID"] not in (alices, bobs))  # fmt: skip
        assert _dismiss(secure_server, demo).status_code == 403
        assert _dismiss(secure_server, alices, users["alice"]).status_code == 200
        assert _dismiss(secure_server, bobs, users["op"]).status_code == 200
        with psycopg.connect(tiny_settings.database_url) as conn:
            actors = conn.execute(
                "SELECT resource, detail->>'actor' FROM twin.audit_log"
                " WHERE action = 'simulation.dismiss' AND resource = ANY(%s) ORDER BY id",
                ([f"sim_run/{alices}", f"sim_run/{bobs}"],),
            ).fetchall()
        assert len(actors) == 2
        assert {r: a for r, a in actors}[f"sim_run/{bobs}"].startswith("dismiss-op-")
        assert {r: a for r, a in actors}[f"sim_run/{alices}"].startswith("dismiss-alice-")
    finally:
        _settle(tiny_settings, [alices, bobs])
        _forget_runs(tiny_settings, [alices, bobs])


@pytest.mark.parametrize("job", ["999999999", "abc", "-1"])
def test_dismiss_unknown_is_404(server: str, job: str) -> None:
    r = _dismiss(server, job)
    assert r.status_code == 404 and r.json()["type"] == EXC + "no-such-job"
