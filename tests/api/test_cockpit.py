"""``/api/cockpit``: the answer's shape, people counts hidden from the public, 4xx answers
naming the parameter for bad levels, periods, instants, unknown areas and mismatches, and
answers shared by callers of one kind until they expire or a write clears them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.access.tokens import add_user
from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.settings import Settings

INDICATOR_KEYS = {"id", "title", "title_zh", "unit", "value", "previous", "change", "trend"}


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_cockpit_api"),
        data_dir=tmp_path_factory.mktemp("cockpit_api"),
    )  # fmt: skip
    build_demo(s, size="tiny", seed=10)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def areas(settings: Settings, level: str) -> list[tuple[int, str]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(
            "SELECT id, code FROM twin.admin_area WHERE level = %s ORDER BY code", (level,)
        ).fetchall()


def test_city_cockpit_shape(client: TestClient, settings: Settings) -> None:
    r = client.get("/api/cockpit", params={"level": "city"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) >= {"area", "as_of", "period", "indicators", "children", "sources"}
    assert body["area"]["level"] == "city" and body["area"]["parent"] is None
    assert body["period"]["days"] == 30
    ids = [i["id"] for i in body["indicators"]]
    assert len(ids) == len(set(ids)) and "population" in ids and "delay_index" in ids
    for ind in body["indicators"]:
        assert set(ind) == INDICATOR_KEYS
        assert ind["trend"] in (None, "up", "down", "flat")
    districts = areas(settings, "district")
    assert [c["code"] for c in body["children"]] == [code for _, code in districts]
    for c in body["children"]:
        assert c["level"] == "district" and "population" in c["figures"]
        assert client.get(c["cockpit"]).status_code == 200  # drill down


def test_district_by_code_and_grid_by_id(client: TestClient, settings: Settings) -> None:
    (_, code), *_ = areas(settings, "district")
    r = client.get("/api/cockpit", params={"level": "district", "area": code, "period": "7d"})
    assert r.status_code == 200, r.text
    assert r.json()["area"]["code"] == code and r.json()["period"]["days"] == 7
    (pid, _), *_ = areas(settings, "grid")
    r = client.get("/api/cockpit", params={"level": "grid", "area": str(pid),
                                           "as_of": "2026-01-01T00:00:00Z", "period": "4w"})  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["area"]["id"] == pid and body["children"] == []
    assert body["as_of"].startswith("2026-01-01T00:00:00") and body["period"]["days"] == 28


def test_the_public_never_sees_small_people_counts(client: TestClient) -> None:
    body = client.get("/api/cockpit", params={"level": "city"}).json()
    k = 10
    seen = [c["figures"]["population"] for c in body["children"]]
    seen.append(next(i["value"] for i in body["indicators"] if i["id"] == "population"))
    assert all(v is None or v == 0 or v >= k for v in seen)


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"level": "borough"}, "level"),
        ({"level": "city", "period": "30x"}, "period"),
        ({"level": "city", "period": "0d"}, "period"),
        ({"level": "city", "period": "1000d"}, "period"),
        ({"level": "city", "as_of": "last tuesday"}, "as_of"),
        ({"level": "grid"}, "area"),
        ({}, "level"),
        ({"level": "district", "area": "x" * 201}, "area"),
    ],
)
def test_bad_parameters_are_400_naming_them(
    client: TestClient, params: dict[str, str], parameter: str
) -> None:
    r = client.get("/api/cockpit", params=params)
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == parameter


def test_level_mismatch_is_400(client: TestClient, settings: Settings) -> None:
    (_, code), *_ = areas(settings, "grid")
    r = client.get("/api/cockpit", params={"level": "district", "area": code})
    assert r.status_code == 400
    assert r.json()["parameter"] == "level" and "grid" in r.json()["detail"]


@pytest.mark.parametrize("area", ["C.NOPE", "987654321", "99999999999999999999999"])
def test_unknown_area_is_400_naming_it(client: TestClient, area: str) -> None:
    r = client.get("/api/cockpit", params={"level": "district", "area": area})
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "area"


def _open_tasks(settings: Settings) -> int:
    """Open tasks by the cockpit's definition, straight from the table."""
    with psycopg.connect(settings.database_url or "") as conn:
        ((n,),) = conn.execute(
            "SELECT count(*) FROM twin.task WHERE state NOT IN ('done', 'closed', 'rejected')"
        ).fetchall()
    return int(n)


def _value(body: dict, ind: str) -> object:
    return next(i["value"] for i in body["indicators"] if i["id"] == ind)


def test_answers_are_shared_per_caller_kind_until_a_write_through_the_api(
    settings: Settings,
) -> None:
    (_, d1), (_, d2), *_ = areas(settings, "district")
    with psycopg.connect(settings.database_url or "") as c:
        _, operator = add_user(c, "cockpit_operator", "operator")
        _, analyst = add_user(c, "cockpit_analyst", "analyst")
        _, scoped = add_user(c, "cockpit_scoped", "operator", f"district:{d1}")
        c.commit()
    long = settings.model_copy(update={"cockpit_cache_seconds": 300.0})
    city = {"level": "city"}
    with TestClient(create_app(long)) as client:
        first = client.get("/api/cockpit", params=city)
        again = client.get("/api/cockpit", params=city)
        assert first.status_code == again.status_code == 200
        # as_of is the instant of computation: the same one means the same answer.
        assert again.json() == first.json() and "Age" in again.headers
        # Another kind of caller gets its own answer (its own as_of, its own suppression).
        own = client.get("/api/cockpit", params=city, headers=auth(analyst)).json()
        assert own["as_of"] > first.json()["as_of"]
        # A district the public's answer is cached for stays outside a scoped user's reach,
        # and its own district is answered.
        other = {"level": "district", "area": d2}
        assert client.get("/api/cockpit", params=other).status_code == 200
        assert client.get("/api/cockpit", params=other, headers=auth(scoped)).status_code == 403
        mine = {"level": "district", "area": d1}
        assert client.get("/api/cockpit", params=mine, headers=auth(scoped)).status_code == 200
        # A write through the API clears every answer: the next one counts the new task.
        r = client.post("/api/tasks", json={"title": "pump", "area": d1},
                        headers=auth(operator))  # fmt: skip
        assert r.status_code == 201, r.text
        after = client.get("/api/cockpit", params=city).json()
        assert after["as_of"] > first.json()["as_of"]
        assert _value(after, "tasks_open") == _open_tasks(settings)
        assert _value(after, "tasks_open") == _value(first.json(), "tasks_open") + 1  # type: ignore[operator]


def test_answers_expire(settings: Settings) -> None:
    short = settings.model_copy(update={"cockpit_cache_seconds": 0.3})
    with TestClient(create_app(short)) as client:
        first = client.get("/api/cockpit", params={"level": "city"}).json()
        time.sleep(0.4)
        assert client.get("/api/cockpit", params={"level": "city"}).json()["as_of"] > first["as_of"]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
