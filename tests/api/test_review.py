"""``GET /api/review``: the after-action review as the caller. A district operator's review
holds its own district's alerts and tasks only (row-level security), an area outside its scope
is 403, bad parameters are 400 naming the parameter, and no people count appears."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.scope_world import District, ids_in, make_world
from tests.reporting.review_world import Storm, at, make_storm
from twin.settings import Settings

DAY = 2


@pytest.fixture(scope="module")
def world(tiny_settings: Settings) -> Iterator[tuple[Storm, dict[str, District]]]:
    w = make_world(tiny_settings, "review-api")
    yield make_storm(tiny_settings, DAY, w["A"], w["B"]), w


def get(client: TestClient, who: District | None, **params: Any) -> Any:
    return client.get("/api/review", params=params, headers=who.headers if who else {})


def period(s: Storm) -> dict[str, str]:
    return {"from": s.start.isoformat(), "to": s.end.isoformat()}


def keys(v: Any) -> set[str]:
    if isinstance(v, dict):
        return set(v) | set().union(*(keys(x) for x in v.values()))
    if isinstance(v, list):
        return set().union(*(keys(x) for x in v)) if v else set()
    return set()


def test_a_district_review_holds_its_own_alerts_and_tasks(
    tiny_client: TestClient, tiny_settings: Settings, world: tuple[Storm, dict[str, District]]
) -> None:
    s, w = world
    a, b = w["A"], w["B"]
    r = get(tiny_client, a, **period(s))
    assert r.status_code == 200, r.text
    body = r.json()
    alerts = {x["id"] for x in body["alerts"]["alerts"]}
    tasks = {x["id"] for x in body["tasks"]["tasks"]}
    assert alerts == {s.alerts["level"], s.alerts["cell"], s.alerts["rain"]}
    assert alerts <= ids_in(tiny_settings, "alert", a)
    assert tasks == {s.tasks[k] for k in ("t1", "t2", "t3", "t4", "t5")}
    assert tasks <= ids_in(tiny_settings, "task", a)
    # The figures are the hand-computed ones of tests/reporting/test_review.py.
    assert body["alerts"]["to_raise_s"] == {"n": 3, "median_s": 120.0, "p90_s": 360.0}
    assert body["tasks"]["to_done_s"]["median_s"] == 2100.0
    assert set(body["tasks"]["overdue"]) == {s.tasks["t2"], s.tasks["t3"]}
    assert body["period"]["from"] == s.start.isoformat()
    # B's operator sees B's alert and task and none of A's.
    rb = get(tiny_client, b, **period(s)).json()
    assert {x["id"] for x in rb["alerts"]["alerts"]} == {s.alerts["b"]}
    assert {x["id"] for x in rb["tasks"]["tasks"]} == {s.tasks["b"]}
    assert not {x for x in keys(body) if "people" in x or "population" in x or "resident" in x}


def test_area_outside_the_scope_is_403(
    tiny_client: TestClient, world: tuple[Storm, dict[str, District]]
) -> None:
    s, w = world
    assert get(tiny_client, w["A"], **period(s), area=w["B"].code).status_code == 403
    mine = get(tiny_client, w["A"], **period(s), area=w["A"].code)
    assert mine.status_code == 200
    assert mine.json()["area"]["code"] == w["A"].code
    assert mine.json()["roads"]["closed_links"] == 2


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"to": "2021-05-03"}, "from"),
        ({"from": "2021-05-02"}, "to"),
        ({"from": "soon", "to": "2021-05-03"}, "from"),
        ({"from": "2021-05-03", "to": "2021-05-02"}, "to"),
        ({"from": "2021-05-01", "to": "2021-06-05"}, "to"),
        ({"from": "2021-05-01", "to": "2021-05-02", "area": "NO.SUCH"}, "area"),
    ],
)
def test_bad_parameters_are_400(
    tiny_client: TestClient, params: dict[str, str], parameter: str
) -> None:
    r = tiny_client.get("/api/review", params=params)
    assert r.status_code == 400 and r.json()["parameter"] == parameter, r.text


def test_an_empty_period(tiny_client: TestClient) -> None:
    r = tiny_client.get(
        "/api/review", params={"from": at(DAY, 20, 0).isoformat(), "to": at(DAY, 21, 0).isoformat()}
    )
    assert r.status_code == 200
    body = r.json()
    assert body["nowcast"]["steps"] == 0 and body["alerts"]["alerts"] == []
    assert body["area"]["whole_city"]
