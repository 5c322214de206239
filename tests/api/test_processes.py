"""OGC API - Processes driven by a real client (OWSLib) against a real server (uvicorn).

The processes are the simulations of ``/api/simulations``: a job is a run, so the results a
job answers are compared with ``GET /api/simulations/{id}`` of the same run, and the audit row
is the one ``POST /api/simulations/flood`` writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from owslib.ogcapi.processes import Processes

from tests.services import free_port
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
    for c in ("core", "json", "job-list"):
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
