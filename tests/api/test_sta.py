"""``/sta/v1.1``: the SensorThings API on a fresh migrated database, through the real app.

Expected values come from the test's own data (times, values, polygons placed by hand) and from
direct SQL on the twin's tables, not from the code under test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.db.migrate import upgrade
from twin.settings import Settings

T0 = datetime(2026, 7, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_sta")
    upgrade(url)
    return Settings(
        _env_file=None,
        database_url=url,
        data_dir=tmp_path_factory.mktemp("sta"),
        open_operations=True,
        public_clearance="important",
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def sql(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, params).fetchall()


@pytest.fixture(scope="module")
def world(client: TestClient) -> dict[str, Any]:
    """Two Things (one inside a hand-drawn polygon, one outside), a Datastream each, and 30
    Observations on the first one, one per minute from T0 with result = minute index."""
    made: dict[str, Any] = {}
    for name, lon, lat in (("gauge-in", 120.15, 30.25), ("gauge-out", 121.5, 31.5)):
        r = client.post("/sta/v1.1/Things", json={
            "name": name, "description": "rain gauge", "properties": {"owner": "test"},
            "Locations": [{"name": f"{name} site", "description": "", "encodingType":
                           "application/geo+json",
                           "location": {"type": "Point", "coordinates": [lon, lat]}}],
            "Datastreams": [{
                "name": f"{name} rain", "description": "rain rate",
                "observationType": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement",
                "unitOfMeasurement": {"name": "millimetre per hour", "symbol": "mm/h",
                                      "definition": "http://unitsofmeasure.org/ucum.html#para-30"},
                "properties": {"kind": "rain_gauge"},
                "Sensor": {"name": "tipping bucket", "description": "", "encodingType":
                           "text/plain", "metadata": "TB-3"},
                "ObservedProperty": {"name": "rain rate", "definition": "http://example.org/rain",
                                     "description": ""},
            }],
        })  # fmt: skip
        assert r.status_code == 201, r.text
        assert r.headers["location"].endswith(f"/Things({r.json()['@iot.id']})")
        made[name] = r.json()["@iot.id"]
    ds = client.get(f"/sta/v1.1/Things({made['gauge-in']})/Datastreams").json()["value"]
    made["ds"] = ds[0]["@iot.id"]
    ds_out = client.get(f"/sta/v1.1/Things({made['gauge-out']})/Datastreams").json()["value"]
    made["ds_out"] = ds_out[0]["@iot.id"]
    r = client.post("/sta/v1.1/CreateObservations", json=[{
        "Datastream": {"@iot.id": made["ds"]}, "components": ["phenomenonTime", "result"],
        "dataArray@iot.count": 30,
        "dataArray": [[(T0 + timedelta(minutes=i)).isoformat(), float(i)] for i in range(30)],
    }])  # fmt: skip
    assert r.status_code == 201, r.text
    assert len(r.json()) == 30 and all("/Observations(" in link for link in r.json())
    return made


def test_service_root_lists_the_eight_sets(client: TestClient) -> None:
    names = {v["name"] for v in client.get("/sta/v1.1").json()["value"]}
    assert names == {
        "Things",
        "Locations",
        "HistoricalLocations",
        "Sensors",
        "ObservedProperties",
        "Datastreams",
        "Observations",
        "FeaturesOfInterest",
    }


def test_entities_have_ids_self_and_navigation_links(
    client: TestClient, world: dict[str, Any]
) -> None:
    thing = client.get(f"/sta/v1.1/Things({world['gauge-in']})").json()
    assert thing["@iot.id"] == world["gauge-in"]
    assert thing["@iot.selfLink"].endswith(f"/sta/v1.1/Things({world['gauge-in']})")
    for nav in ("Locations", "HistoricalLocations", "Datastreams"):
        assert thing[f"{nav}@iot.navigationLink"] == thing["@iot.selfLink"] + "/" + nav
    ds = client.get(f"/sta/v1.1/Datastreams({world['ds']})").json()
    assert ds["unitOfMeasurement"]["symbol"] == "mm/h"
    assert ds["phenomenonTime"].startswith("2026-07-01T00:00:00")
    # the Datastream is the twin's sensor row, the Observations its observation rows
    assert sql(
        client.app.state.settings,  # type: ignore[attr-defined]
        "SELECT kind, unit, name FROM twin.sensor WHERE id = %s",
        (world["ds"],),
    ) == [("rain_gauge", "mm/h", "gauge-in rain")]
    for path in ("Locations", "HistoricalLocations", "Sensors", "ObservedProperties"):
        r = client.get(f"/sta/v1.1/{path}")
        assert r.status_code == 200 and len(r.json()["value"]) >= 2, path
    hl = client.get(f"/sta/v1.1/Things({world['gauge-in']})/HistoricalLocations").json()["value"]
    assert len(hl) == 1
    assert (
        client.get(
            hl[0]["Locations@iot.navigationLink"].split("/sta/v1.1")[1].join(["/sta/v1.1", ""])
        ).json()["value"][0]["name"]
        == "gauge-in site"
    )
    assert client.get(f"/sta/v1.1/Datastreams({world['ds']})/Thing").json()["name"] == "gauge-in"
    assert client.get("/sta/v1.1/Things(999999)").status_code == 404
    assert client.get("/sta/v1.1/Nothings").status_code == 404


def test_top_skip_count_and_next_link(client: TestClient, world: dict[str, Any]) -> None:
    url = f"/sta/v1.1/Datastreams({world['ds']})/Observations"
    page = client.get(
        url, params={"$top": 7, "$count": "true", "$orderby": "phenomenonTime asc"}
    ).json()
    assert page["@iot.count"] == 30
    assert [o["result"] for o in page["value"]] == [0, 1, 2, 3, 4, 5, 6]
    seen = [o["result"] for o in page["value"]]
    while "@iot.nextLink" in page:
        nxt = page["@iot.nextLink"]
        assert "%24skip=" in nxt or "$skip=" in nxt
        page = client.get(nxt).json()
        seen += [o["result"] for o in page["value"]]
    assert seen == [float(i) for i in range(30)]
    skipped = client.get(url, params={"$top": 3, "$skip": 28, "$orderby": "result"}).json()
    assert [o["result"] for o in skipped["value"]] == [28, 29]
    assert "@iot.nextLink" not in skipped


def test_filter_comparisons_and_time_ranges(client: TestClient, world: dict[str, Any]) -> None:
    url = f"/sta/v1.1/Datastreams({world['ds']})/Observations"
    start, end = (T0 + timedelta(minutes=10)).isoformat(), (T0 + timedelta(minutes=15)).isoformat()
    r = client.get(
        url,
        params={
            "$filter": f"phenomenonTime ge {start} and phenomenonTime lt {end}",
            "$orderby": "result",
        },
    )
    assert [o["result"] for o in r.json()["value"]] == [10, 11, 12, 13, 14]
    r = client.get(url, params={"$filter": f"during(phenomenonTime, {start}/{end})"})
    assert len(r.json()["value"]) == 5
    r = client.get(
        url,
        params={
            "$filter": "(result lt 2 or result ge 28) and not (result eq 29)",
            "$orderby": "result desc",
        },
    )
    assert [o["result"] for o in r.json()["value"]] == [28, 1, 0]
    r = client.get("/sta/v1.1/Things", params={"$filter": "name eq 'gauge-out'"})
    assert [t["@iot.id"] for t in r.json()["value"]] == [world["gauge-out"]]


def test_geo_intersects_on_locations(client: TestClient, world: dict[str, Any]) -> None:
    poly = "POLYGON((120.1 30.2, 120.2 30.2, 120.2 30.3, 120.1 30.3, 120.1 30.2))"
    r = client.get(
        "/sta/v1.1/Locations", params={"$filter": f"geo.intersects(location, geography'{poly}')"}
    )
    assert r.status_code == 200, r.text
    assert [v["name"] for v in r.json()["value"]] == ["gauge-in site"]
    assert r.json()["value"][0]["location"] == {"type": "Point", "coordinates": [120.15, 30.25]}


def test_select_and_expand(client: TestClient, world: dict[str, Any]) -> None:
    r = client.get(
        f"/sta/v1.1/Datastreams({world['ds']})/Observations",
        params={"$select": "result,phenomenonTime", "$top": 2, "$orderby": "result"},
    )
    assert r.json()["value"][0] == {"result": 0.0, "phenomenonTime": "2026-07-01T00:00:00Z"}
    r = client.get(
        f"/sta/v1.1/Things({world['gauge-in']})",
        params={"$expand": "Locations,Datastreams($select=name,unitOfMeasurement)"},
    )
    thing = r.json()
    assert thing["Locations"][0]["name"] == "gauge-in site"
    assert thing["Datastreams"] == [
        {
            "name": "gauge-in rain",
            "unitOfMeasurement": {
                "name": "millimetre per hour",
                "symbol": "mm/h",
                "definition": "http://unitsofmeasure.org/ucum.html#para-30",
            },
        }
    ]
    r = client.get(
        "/sta/v1.1/Observations",
        params={
            "$expand": "Datastream($select=name)",
            "$top": 3,
            "$filter": f"Datastream/id eq {world['ds']}",
        },
    )
    assert all(o["Datastream"] == {"name": "gauge-in rain"} for o in r.json()["value"])
    r = client.get(
        f"/sta/v1.1/Datastreams({world['ds']})",
        params={"$expand": "Observations($top=2;$orderby=result desc)"},
    )
    assert [o["result"] for o in r.json()["Observations"]] == [29, 28]


def test_post_observation_and_replay(client: TestClient, world: dict[str, Any]) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    body = {
        "phenomenonTime": "2026-07-02T00:00:00Z",
        "result": 4.5,
        "Datastream": {"@iot.id": world["ds_out"]},
    }
    r = client.post("/sta/v1.1/Observations", json=body)
    assert r.status_code == 201, r.text
    ident = r.json()["@iot.id"]
    assert r.headers["location"].endswith(f"/Observations({ident})")
    again = client.post("/sta/v1.1/Observations", json=body)
    assert again.status_code == 201 and again.json()["@iot.id"] == ident
    assert sql(
        settings,
        "SELECT count(*), max(value) FROM twin.observation WHERE sensor_id = %s",
        (world["ds_out"],),
    ) == [(1, 4.5)]
    r = client.post(
        f"/sta/v1.1/Datastreams({world['ds_out']})/Observations",
        json={
            "phenomenonTime": "2026-07-02T00:05:00Z",
            "result": 1,
            "FeatureOfInterest": {
                "name": "spot",
                "description": "",
                "encodingType": "application/geo+json",
                "feature": {"type": "Point", "coordinates": [121.5, 31.5]},
            },
        },
    )
    assert r.status_code == 201, r.text
    foi = client.get(f"/sta/v1.1/Observations({r.json()['@iot.id']})/FeatureOfInterest").json()
    assert foi["name"] == "spot"


def test_data_array_reports_bad_rows_without_storing_them(
    client: TestClient, world: dict[str, Any]
) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    before = sql(settings, "SELECT count(*) FROM twin.observation")[0][0]
    r = client.post(
        "/sta/v1.1/CreateObservations",
        json=[
            {
                "Datastream": {"@iot.id": world["ds_out"]},
                "components": ["phenomenonTime", "result"],
                "dataArray": [
                    ["2026-07-03T00:00:00Z", 1],
                    ["not a time", 2],
                    ["2026-07-03T00:01:00Z", "x"],
                    ["2026-07-03T00:02:00Z", 3],
                ],
            }
        ],
    )
    assert r.status_code == 201
    links = r.json()
    assert "/Observations(" in links[0] and "/Observations(" in links[3]
    assert links[1].startswith("error") and links[2].startswith("error")
    assert sql(settings, "SELECT count(*) FROM twin.observation")[0][0] == before + 2


@pytest.mark.parametrize(
    ("params", "option", "words"),
    [
        ({"$filter": "result gt"}, "$filter", "ended early"),
        ({"$filter": "nosuch eq 1"}, "$filter", "unknown property 'nosuch'"),
        ({"$filter": "result eq 'a'"}, "$filter", "a number is needed"),
        ({"$filter": "phenomenonTime ge 2026-07-01"}, "$filter", ""),
        (
            {"$filter": "geo.intersects(location, geography'POLYGON((1 2, 3')"},
            "$filter",
            "not valid WKT",
        ),
        ({"$filter": "result eq 1 )"}, "$filter", "unexpected ')'"),
        ({"$top": "-1"}, "$top", "between"),
        ({"$top": "ten"}, "$top", "integer"),
        ({"$orderby": "location"}, "$orderby", "cannot sort"),
        ({"$select": "nope"}, "$select", "unknown property"),
        ({"$expand": "Nope"}, "$expand", "no navigation property"),
        ({"$count": "maybe"}, "$count", "true or false"),
        ({"$format": "x"}, "$format", "unknown query option"),
    ],
)
def test_malformed_options_are_400_naming_the_problem(
    client: TestClient,
    world: dict[str, Any],
    params: dict[str, str],
    option: str,
    words: str,
) -> None:
    path = (
        "/sta/v1.1/Locations"
        if "geo." in params.get("$filter", "") or "location" in params.get("$orderby", "")
        else "/sta/v1.1/Observations"
    )
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == option
    assert words in r.json()["detail"]


def test_bad_posts_are_400_and_change_nothing(client: TestClient, world: dict[str, Any]) -> None:
    settings = client.app.state.settings  # type: ignore[attr-defined]
    before = sql(
        settings,
        "SELECT (SELECT count(*) FROM twin.sta_thing), (SELECT count(*) FROM twin.observation)",
    )
    for path, body in (
        ("Things", {"description": "no name"}),
        ("Things", {"name": "x", "Locations": [{"name": "l", "location": {"type": "Point"}}]}),
        ("Observations", {"result": 1, "Datastream": {"@iot.id": 99999999}}),
        ("Observations", {"result": "wet", "Datastream": {"@iot.id": world["ds"]}}),
        ("Observations", {"result": 1}),
        ("Datastreams", {"name": "d", "unitOfMeasurement": {"name": "x"}}),
    ):
        r = client.post(f"/sta/v1.1/{path}", json=body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["parameter"] == "body"
    assert (
        sql(
            settings,
            "SELECT (SELECT count(*) FROM twin.sta_thing), (SELECT count(*) FROM twin.observation)",
        )
        == before
    )


def test_reads_need_important_clearance_and_writes_the_operator_role(settings: Settings) -> None:
    closed = settings.model_copy(update={"public_clearance": "general", "open_operations": False})
    with TestClient(create_app(closed)) as c:
        assert c.get("/sta/v1.1/Things").status_code == 401
        assert c.post("/sta/v1.1/Things", json={"name": "x"}).status_code == 401
    readonly = settings.model_copy(update={"open_operations": False})
    with TestClient(create_app(readonly)) as c:
        assert c.get("/sta/v1.1/Things").status_code == 200
        assert c.post("/sta/v1.1/Things", json={"name": "x"}).status_code == 403


def test_live_stream_carries_a_posted_observation(
    client: TestClient, world: dict[str, Any]
) -> None:
    import json
    import threading
    import time

    got: list[dict[str, Any]] = []

    def listen() -> None:
        with client.stream(
            "GET", "/api/live", params={"limit": 1, "datastream": world["ds_out"]}
        ) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[6:]))

    t = threading.Thread(target=listen)
    t.start()
    deadline = time.monotonic() + 10
    hub = client.app.state.live_hub  # type: ignore[attr-defined]
    while hub.subscribers == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    r = client.post(
        "/sta/v1.1/Observations",
        json={
            "phenomenonTime": "2026-07-04T00:00:00Z",
            "result": 7.25,
            "Datastream": {"@iot.id": world["ds_out"]},
        },
    )
    assert r.status_code == 201
    t.join(20)
    assert got and got[0]["result"] == 7.25 and got[0]["@iot.id"] == r.json()["@iot.id"]
