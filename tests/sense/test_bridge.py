"""The MQTT bridge against a real Mosquitto started here (its own, on a free port) and a real
PostGIS: a published Observation lands in ``twin.observation``; subscribers of the datastream's
topic (and of its ``$select`` variant) receive the stored reading; bad payloads are counted and
do not stop the bridge; a replay is stored once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
import pytest

from twin.db.migrate import upgrade
from twin.sense.bridge import Bridge, running
from twin.sense.broker import private_broker
from twin.sense.live import LiveHub


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Mosquitto on a free port, anonymous allowed (the demo's own broker helper)."""
    with private_broker(tmp_path_factory.mktemp("mosquitto")) as url:
        yield url


@pytest.fixture(scope="module")
def db(make_database: Callable[..., str]) -> str:
    url: str = make_database("twin_bridge")
    upgrade(url)
    return url


def make_sensor(db: str, code: str) -> int:
    with psycopg.connect(db) as c:
        row = c.execute(
            "INSERT INTO twin.sensor (code, kind, unit, geom) VALUES (%s, 'rain_gauge', 'mm/h',"
            " ST_SetSRID(ST_MakePoint(120.1, 30.2), 4326)) RETURNING id",
            (code,),
        ).fetchone()
        assert row is not None
        return int(row[0])


def rows(db: str, sensor: int) -> list[tuple[Any, ...]]:
    with psycopg.connect(db) as c:
        return c.execute(
            "SELECT to_char(observed_at AT TIME ZONE 'UTC', 'HH24:MI'), value"
            " FROM twin.observation WHERE sensor_id = %s ORDER BY 1",
            (sensor,),
        ).fetchall()


async def wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_publish_stores_and_subscribers_receive(broker: str, db: str) -> None:
    sensor = make_sensor(db, "bridge-1")
    topic = f"v1.1/Datastreams({sensor})/Observations"
    port = int(broker.rsplit(":", 1)[1])

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]], Bridge]:
        hub = LiveHub()
        bridge = Bridge(
            broker,
            db,
            base="http://twin.test/sta/v1.1",
            hub=hub,
            selects=["result,phenomenonTime"],
            batch_wait_s=0.01,
        )
        full: list[dict[str, Any]] = []
        selected: list[dict[str, Any]] = []
        async with (
            running(bridge),
            aiomqtt.Client("127.0.0.1", port) as sub,
            aiomqtt.Client("127.0.0.1", port) as device,
        ):
            await asyncio.wait_for(bridge.ready.wait(), 10)
            await sub.subscribe(topic, qos=1)
            await sub.subscribe(f"{topic}?$select=result,phenomenonTime", qos=1)

            async def collect() -> None:
                async for m in sub.messages:
                    try:  # the devices' own messages reach the topic's subscribers too
                        body = json.loads(m.payload)  # type: ignore[arg-type]
                    except ValueError:
                        continue
                    if not isinstance(body, dict):
                        continue
                    if str(m.topic) == topic and "@iot.id" in body:
                        full.append(body)
                    elif str(m.topic) != topic:
                        selected.append(body)

            task = asyncio.create_task(collect())
            await device.publish(
                topic, json.dumps({"phenomenonTime": "2026-07-01T00:00:00Z", "result": 12.5}), qos=1
            )
            await device.publish(topic, b"not json", qos=1)
            await device.publish(
                "v1.1/Datastreams(99999999)/Observations", json.dumps({"result": 1}), qos=1
            )
            await device.publish(
                topic,
                json.dumps(
                    [
                        {"phenomenonTime": "2026-07-01T00:01:00Z", "result": 13.0},
                        {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 12.5},
                    ]
                ),
                qos=1,
            )  # a replay
            await wait_for(lambda: len(full) >= 3 and len(selected) >= 3)
            await wait_for(lambda: bridge.stats.rejected >= 2)
            task.cancel()
        return full, selected, bridge

    full, selected, bridge = asyncio.run(scenario())
    assert rows(db, sensor) == [("00:00", 12.5), ("00:01", 13.0)]
    assert sorted(o["result"] for o in full) == [12.5, 12.5, 13.0]
    assert all(
        o["@iot.selfLink"].startswith("http://twin.test/sta/v1.1/Observations(") for o in full
    )
    assert {tuple(sorted(o)) for o in selected} == {("phenomenonTime", "result")}
    assert bridge.stats.rejected == 2 and bridge.stats.stored == 2 and bridge.stats.duplicates == 1
    assert "not JSON" in (bridge.stats.last_reject or "") or "unknown datastream" in (
        bridge.stats.last_reject or ""
    )


def test_sense_status_and_run_without_a_broker(
    broker: str, db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from twin.cli import app

    sensor = make_sensor(db, "bridge-status")
    with psycopg.connect(db) as c:
        c.execute(
            "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES"
            " (%s, '2026-07-09T00:00:00Z', 1), (%s, '2026-07-09T00:01:00Z', 2)",
            (sensor, sensor),
        )
        expected = c.execute(
            "SELECT count(*), (SELECT count(*) FROM twin.sensor) FROM twin.observation"
        ).fetchone()
    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    monkeypatch.setenv("TWIN_MQTT_URL", broker)
    r = CliRunner().invoke(app, ["sense", "status", "--json"])
    assert r.exit_code == 0, r.output
    status = json.loads(r.output)
    assert (status["observations"], status["datastreams"]) == expected
    assert status["broker"] == "reachable"
    monkeypatch.delenv("TWIN_MQTT_URL")
    r = CliRunner().invoke(app, ["sense", "run"])
    assert r.exit_code == 2 and "TWIN_MQTT_URL" in r.output


def test_the_api_runs_the_bridge_when_mqtt_url_is_set(broker: str, db: str, tmp_path: Path) -> None:
    """As `twin serve` does: MQTT in -> readable over /sta/v1.1; HTTP POST -> MQTT out."""
    from fastapi.testclient import TestClient

    from twin.api.app import create_app
    from twin.settings import Settings

    sensor = make_sensor(db, "bridge-api")
    topic = f"v1.1/Datastreams({sensor})/Observations"
    port = int(broker.rsplit(":", 1)[1])
    settings = Settings(
        _env_file=None,
        database_url=db,
        data_dir=tmp_path,
        mqtt_url=broker,
        open_operations=True,
        public_clearance="important",
    )
    got: list[dict[str, Any]] = []

    def listen(ready: threading.Event, stop: threading.Event) -> None:
        async def go() -> None:
            async with aiomqtt.Client("127.0.0.1", port) as sub:
                await sub.subscribe(topic, qos=1)
                ready.set()
                async for m in sub.messages:
                    body = json.loads(m.payload)  # type: ignore[arg-type]
                    if "@iot.id" in body:
                        got.append(body)
                        return

        asyncio.run(asyncio.wait_for(go(), 20))

    with TestClient(create_app(settings)) as client:
        bridge = client.app.state.sense_bridge  # type: ignore[attr-defined]
        deadline = time.monotonic() + 15
        while not bridge.ready.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.05)

        async def device() -> None:
            async with aiomqtt.Client("127.0.0.1", port) as c:
                await c.publish(
                    topic,
                    json.dumps({"phenomenonTime": "2026-08-01T00:00:00Z", "result": 3.0}),
                    qos=1,
                )

        asyncio.run(device())
        url = f"/sta/v1.1/Datastreams({sensor})/Observations"
        while not client.get(url).json()["value"]:
            assert time.monotonic() < deadline + 10
            time.sleep(0.05)
        assert [o["result"] for o in client.get(url).json()["value"]] == [3.0]

        ready, stop = threading.Event(), threading.Event()
        t = threading.Thread(target=listen, args=(ready, stop))
        t.start()
        assert ready.wait(10)
        r = client.post(url, json={"phenomenonTime": "2026-08-01T00:05:00Z", "result": 4.0})
        assert r.status_code == 201
        t.join(25)
    assert got and got[0]["result"] == 4.0 and got[0]["@iot.id"] == r.json()["@iot.id"]
