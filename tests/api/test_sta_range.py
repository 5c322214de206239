"""A Datastream's physical range (``properties.physicalRange``) over HTTP: set on creation,
shown on reading, enforced on ``POST Observations`` (400 naming the field and the range) and
``CreateObservations`` (an error item per bad row); every refused Observation (out of range,
unknown Datastream, too far in the future) is kept as a dead letter with source ``http``.

Expected counts come from what the test sent and from direct SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from twin.api.app import create_app
from twin.db.migrate import upgrade
from twin.settings import Settings

STA = "/sta/v1.1"
UNIT = {"name": "metre", "symbol": "m", "definition": "http://unitsofmeasure.org/ucum.html#m"}


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_sta_range")
    upgrade(url)
    return Settings(_env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("range"),
                    open_operations=True, public_clearance="important")  # fmt: skip


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def sql(settings: Settings, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, params).fetchall()


def datastream(client: TestClient, name: str, props: dict[str, Any]) -> Any:
    return client.post(f"{STA}/Datastreams", json={
        "name": name, "description": "", "unitOfMeasurement": UNIT, "properties": props,
    })  # fmt: skip


def post(client: TestClient, path: str, body: Any) -> tuple[Any, bytes]:
    raw = json.dumps(body).encode()
    r = client.post(f"{STA}/{path}", content=raw, headers={"content-type": "application/json"})
    return r, raw


@pytest.fixture(scope="module")
def level(client: TestClient) -> int:
    """A water level gauge that can read 0 to 100 m."""
    r = datastream(
        client, "level", {"kind": "water_level", "physicalRange": {"min": 0, "max": 100}}
    )
    assert r.status_code == 201, r.text
    return int(r.json()["@iot.id"])


def test_the_range_is_stored_and_shown(client: TestClient, settings: Settings, level: int) -> None:
    assert sql(settings, "SELECT value_min, value_max FROM twin.sensor WHERE id = %s",
               (level,)) == [(0.0, 100.0)]  # fmt: skip
    props = client.get(f"{STA}/Datastreams({level})").json()["properties"]
    assert props["physicalRange"] == {"min": 0, "max": 100} and props["kind"] == "water_level"
    r = datastream(client, "rain", {"kind": "rain_gauge", "physicalRange": {"min": 0}})
    assert r.status_code == 201, r.text
    assert r.json()["properties"]["physicalRange"] == {"min": 0}
    r = datastream(client, "plain", {})
    assert "physicalRange" not in r.json()["properties"]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ({"min": 5, "max": 1}, "min 5 is above max 1"),
        ({"min": "low"}, "physicalRange.min: expected a finite number"),
        ({"max": True}, "physicalRange.max: expected a finite number"),
        ({"lo": 1}, "physicalRange: expected"),
        ([0, 1], "physicalRange: expected"),
    ],
)
def test_a_bad_range_is_400_naming_it(
    client: TestClient, settings: Settings, value: Any, words: str
) -> None:
    before = sql(settings, "SELECT count(*) FROM twin.sensor")
    r = datastream(client, "bad", {"physicalRange": value})
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == "body" and words in r.json()["detail"]
    assert "Datastream.properties.physicalRange" in r.json()["detail"]
    assert sql(settings, "SELECT count(*) FROM twin.sensor") == before


def dead(settings: Settings, since: int) -> list[tuple[Any, ...]]:
    return sql(settings, "SELECT source, topic, reason, raw, datastream_id, username"
               " FROM twin.sense_dead_letter WHERE id > %s ORDER BY id", (since,))  # fmt: skip


def last_dead(settings: Settings) -> int:
    return int(sql(settings, "SELECT coalesce(max(id), 0) FROM twin.sense_dead_letter")[0][0])


def test_single_observations_outside_the_range_are_400_and_dead_letters(
    client: TestClient, settings: Settings, level: int
) -> None:
    mark = last_dead(settings)
    rows_before = sql(settings, "SELECT count(*) FROM twin.observation")
    future = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    refused = [
        ("Observations", {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 100.5,
                          "Datastream": {"@iot.id": level}}, "out of range"),
        (f"Datastreams({level})/Observations",
         {"phenomenonTime": "2026-07-01T00:01:00Z", "result": -0.1}, "out of range"),
        ("Observations", {"phenomenonTime": future, "result": 1,
                          "Datastream": {"@iot.id": level}}, "phenomenonTime too far in the future"),
        ("Observations", {"result": 1, "Datastream": {"@iot.id": 99999999}},
         "unknown datastream"),
    ]  # fmt: skip
    sent = []
    for path, body, _ in refused:
        r, raw = post(client, path, body)
        assert r.status_code == 400, r.text
        assert r.json()["parameter"] == "body"
        sent.append(raw)
    r, _ = post(client, "Observations", refused[0][1])
    assert "Observation.result: 100.5 is outside the physical range [0, 100]" in r.json()["detail"]
    sent.append(json.dumps(refused[0][1]).encode())
    r, _ = post(client, f"Datastreams({level})/Observations", refused[2][1])
    assert "Observation.phenomenonTime" in r.json()["detail"]
    sent.append(json.dumps(refused[2][1]).encode())
    assert sql(settings, "SELECT count(*) FROM twin.observation") == rows_before
    for bound in (0, 100):  # both bounds are inside the range
        r, _ = post(
            client,
            "Observations",
            {
                "phenomenonTime": f"2026-07-02T00:00:0{bound // 100}Z",
                "result": bound,
                "Datastream": {"@iot.id": level},
            },
        )
        assert r.status_code == 201, r.text
    got = dead(settings, mark)
    reasons = [why for _, _, why in refused] + [refused[0][2], refused[2][2]]
    assert [(src, reason) for src, _, reason, *_ in got] == [("http", w) for w in reasons]
    assert [bytes(raw) for *_, raw, _, _ in got] == sent
    assert [ds for *_, ds, _ in got] == [level, level, level, 99999999, level, level]
    assert got[1][1] == f"{STA}/Datastreams({level})/Observations"
    assert {user for *_, user in got} == {"anonymous"}


def test_data_array_rows_outside_the_range_are_error_items_and_dead_letters(
    client: TestClient, settings: Settings, level: int
) -> None:
    mark = last_dead(settings)
    before = sql(settings, "SELECT count(*) FROM twin.observation WHERE sensor_id = %s", (level,))
    rows = [["2026-07-03T00:00:00Z", 50], ["2026-07-03T00:01:00Z", 150],
            ["2026-07-03T00:02:00Z", -5], ["2026-07-03T00:03:00Z", 100]]  # fmt: skip
    r, _ = post(client, "CreateObservations", [{
        "Datastream": {"@iot.id": level}, "components": ["phenomenonTime", "result"],
        "dataArray": rows,
    }])  # fmt: skip
    assert r.status_code == 201, r.text
    answers = r.json()
    assert "/Observations(" in answers[0] and "/Observations(" in answers[3]
    assert answers[1].startswith("error: CreateObservations[0].dataArray[1].result: 150 is")
    assert "[0, 100]" in answers[1] and answers[2].startswith("error: ") and "-5" in answers[2]
    after = sql(settings, "SELECT count(*) FROM twin.observation WHERE sensor_id = %s", (level,))
    assert after[0][0] == before[0][0] + 2
    got = dead(settings, mark)
    assert [(src, reason, ds) for src, _, reason, _, ds, _ in got] == [
        ("http", "out of range", level), ("http", "out of range", level)]  # fmt: skip
    assert [json.loads(bytes(raw))["result"] for _, _, _, raw, _, _ in got] == [150, -5]
    # An unknown Datastream refuses the whole request: one dead letter, nothing stored.
    mark = last_dead(settings)
    r, raw = post(
        client,
        "CreateObservations",
        [{"Datastream": {"@iot.id": 99999999}, "components": ["result"], "dataArray": [[1]]}],
    )
    assert r.status_code == 400 and "99999999" in r.json()["detail"]
    assert [(g[0], g[2], bytes(g[3])) for g in dead(settings, mark)] == [
        ("http", "unknown datastream", raw)
    ]


def test_status_counts_rejects_by_source(
    client: TestClient, settings: Settings, level: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from twin.cli import app

    post(client, "Observations", {"result": 1e9, "Datastream": {"@iot.id": level}})
    want: dict[str, dict[str, int]] = {}
    for src, reason, n in sql(settings, "SELECT source, reason, count(*)"
                              " FROM twin.sense_dead_letter GROUP BY 1, 2"):  # fmt: skip
        want.setdefault(src, {})[reason] = n
    assert want["http"]["out of range"] >= 1
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    monkeypatch.delenv("TWIN_MQTT_URL", raising=False)
    out = CliRunner().invoke(app, ["sense", "status", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["rejects_by_source"] == want
