"""``/api/simulations``: start a storm, poll it to the end, read cells and roads."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.settings import Settings

K = 10


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_sims"),
        data_dir=tmp_path_factory.mktemp("sims"), suppression_k=K,
    )  # fmt: skip
    build_demo(s, size="tiny", seed=4)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def wait(client: TestClient, url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        run = client.get(url).json()
        seen.append(run["progress"])
        if run["status"] in ("succeeded", "failed"):
            assert seen == sorted(seen)  # progress never goes back
            return run
        time.sleep(0.2)
    raise AssertionError(f"run did not finish: {run}")


@pytest.fixture(scope="module")
def run(client: TestClient) -> dict:
    r = client.post(
        "/api/simulations/flood",
        json={"return_period_years": 20, "duration_min": 60, "after_min": 15},
    )
    assert r.status_code == 202, r.text
    assert r.headers["location"] == f"/api/simulations/{r.json()['id']}"
    assert r.json()["status"] in ("queued", "running", "succeeded")
    done = wait(client, r.headers["location"])
    assert done["status"] == "succeeded", done["error"]
    return done


def test_a_storm_runs_to_the_end_and_reports(run: dict, settings: Settings) -> None:
    s = run["summary"]
    assert run["progress"] == 1 and s["run_id"] == run["id"]
    assert abs(s["mass_error_rel"]) < 1e-10
    assert "rasters" not in s  # no server paths in answers
    people = s["affected_people"]
    assert people is None or people == 0 or people >= K
    with psycopg.connect(settings.database_url or "") as conn:
        (raw,) = conn.execute(
            "SELECT (summary->>'affected_people')::int FROM twin.sim_run WHERE id = %s",
            (run["id"],),
        ).fetchone()
    assert people == (None if 0 < raw < K else raw)


def test_cells_of_a_run_match_the_table_and_are_suppressed(
    client: TestClient, run: dict, settings: Settings
) -> None:
    r = client.get(f"/api/simulations/{run['id']}/cells", params={"res": 10})
    assert r.status_code == 200
    cells = r.json()["cells"]
    with psycopg.connect(settings.database_url or "") as conn:
        rows = dict(conn.execute(
            "SELECT twin.h3_to_hex(cell), affected_people FROM twin.flood_cell_result"
            " WHERE run_id = %s AND res = 10", (run["id"],)).fetchall())  # fmt: skip
    assert {c["h3"] for c in cells} == set(rows)
    for c in cells:
        raw = rows[c["h3"]]
        assert c["affected_people"] == (None if 0 < raw < K else raw)
    deep = client.get(
        f"/api/simulations/{run['id']}/cells", params={"res": 10, "min_depth": 0.3}
    ).json()
    assert all(c["max_depth_m"] >= 0.3 for c in deep["cells"]) and deep["count"] <= len(cells)


def test_roads_of_a_run(client: TestClient, run: dict) -> None:
    closed = client.get(f"/api/simulations/{run['id']}/roads", params={"state": "closed"}).json()
    assert closed["count"] == run["summary"]["closed_links"]
    assert all(link["max_depth_m"] >= 0.3 for link in closed["links"])


def test_runs_are_listed_newest_first(client: TestClient, run: dict) -> None:
    runs = client.get("/api/simulations", params={"kind": "flood"}).json()["runs"]
    assert runs[0]["id"] == run["id"]


@pytest.fixture(scope="module")
def peak(client: TestClient, run: dict) -> dict:
    """The morning peak with the storm's flooded roads closed (and its baseline)."""
    r = client.post("/api/simulations/traffic", json={"closures": [f"flood:{run['id']}"]})
    assert r.status_code == 202, r.text
    done = wait(client, r.headers["location"])
    assert done["status"] == "succeeded", done["error"]
    return done


def test_a_traffic_run_reports_against_its_baseline(
    client: TestClient, run: dict, peak: dict, settings: Settings
) -> None:
    s = peak["summary"]
    assert s["closed_links"] == run["summary"]["closed_links"]
    assert s["slowed_links"] == run["summary"]["slowed_links"]
    base = client.get(f"/api/simulations/{s['baseline']['run_id']}").json()
    assert base["kind"] == "traffic" and base["status"] == "succeeded"
    assert base["summary"]["delay_index"] == s["baseline"]["delay_index"]
    assert s["delay_band"] in ("free-flowing", "slow", "congested", "severely congested")
    assert peak["links"]["links"] == f"/api/simulations/{peak['id']}/links"
    runs = client.get("/api/simulations", params={"kind": "traffic"}).json()["runs"]
    assert {r["id"] for r in runs} >= {peak["id"], base["id"]}


def test_links_and_cells_of_a_traffic_run(
    client: TestClient, peak: dict, settings: Settings
) -> None:
    closed = client.get(f"/api/simulations/{peak['id']}/links", params={"closed": True}).json()
    assert closed["count"] == peak["summary"]["closed_links"]
    assert all(link["flow_vph"] == 0 and link["closed"] for link in closed["links"])
    busy = client.get(f"/api/simulations/{peak['id']}/links", params={"limit": 5, "closed": False})
    tti = [link["tti"] for link in busy.json()["links"]]
    assert tti == sorted(tti, reverse=True)
    cells = client.get(f"/api/simulations/{peak['id']}/cells", params={"res": 8}).json()
    assert cells["kind"] == "traffic" and cells["count"] > 0
    with psycopg.connect(settings.database_url or "") as conn:
        ((vkt,),) = conn.execute(
            "SELECT sum(vkt) FROM twin.traffic_cell_result WHERE run_id = %s AND res = 8",
            (peak["id"],),
        ).fetchall()
    assert sum(c["vkt"] for c in cells["cells"]) == pytest.approx(vkt)
    assert all(c["band"] == "free-flowing" for c in cells["cells"] if c["tti"] < 1.5)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"closures": ["storm:1"]}, 400, "closures"),
        ({"closures": ["flood:999999"]}, 400, "closures"),
        ({"close_links": [999999]}, 400, "close_links"),
        ({"period": "noon"}, 422, None),
        ({"gap": 0}, 422, None),
        ({"surprise": 1}, 422, None),
    ],
)
def test_bad_traffic_requests_are_4xx_and_queue_nothing(
    client: TestClient, settings: Settings, body: dict, status: int, field: str | None
) -> None:
    with psycopg.connect(settings.database_url or "") as conn:
        ((before,),) = conn.execute("SELECT count(*) FROM twin.sim_run").fetchall()
    r = client.post("/api/simulations/traffic", json=body)
    assert r.status_code == status, r.text
    if field:
        assert field in r.text
    with psycopg.connect(settings.database_url or "") as conn:
        ((after,),) = conn.execute("SELECT count(*) FROM twin.sim_run").fetchall()
    assert after == before


def test_run_kinds_are_not_mixed(client: TestClient, run: dict, peak: dict) -> None:
    assert client.get(f"/api/simulations/{run['id']}/links").status_code == 400
    assert client.get(f"/api/simulations/{peak['id']}/roads").status_code == 400


@pytest.mark.parametrize(
    ("method", "url", "body", "status"),
    [
        ("post", "/api/simulations/flood", {"return_period_years": -1}, 422),
        ("post", "/api/simulations/flood", {"rain_series": [[0, 10], [0, 5]]}, 400),
        ("post", "/api/simulations/flood", {"rain_series": [[0, -10]]}, 400),
        ("post", "/api/simulations/flood", {"storm": "hurricane"}, 422),
        ("post", "/api/simulations/flood", {"surprise": 1}, 422),
        ("get", "/api/simulations/999999", None, 404),
        ("get", "/api/simulations/abc", None, 422),
        ("get", "/api/simulations/1/cells?res=3", None, 400),
        ("get", "/api/simulations/1/cells?bbox=1,2,3", None, 400),
        ("get", "/api/simulations/1/roads?state=flying", None, 422),
    ],
)
def test_bad_requests_are_4xx(
    client: TestClient, run: dict, method: str, url: str, body: dict | None, status: int
) -> None:
    r = client.request(method.upper(), url, json=body)
    assert r.status_code == status, r.text
