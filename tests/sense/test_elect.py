"""Exactly one MQTT bridge per client id, however many processes start one
(:mod:`twin.sense.elect`): the advisory lock elects one runner, another takes over when it
stops; ``twin serve --workers 2`` with ``TWIN_MQTT_URL`` connects one bridge to the broker (the
broker's own log counts the connections made with the bridge's client id) and stores what a
device publishes.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiomqtt
import httpx
import psycopg
import pytest

from tests.services import free_port
from twin.db.migrate import upgrade
from twin.sense.broker import private_broker
from twin.sense.elect import Elected, holders


class Service:
    """A stand-in for the bridge: counts how many of its kind run at once."""

    running = 0
    most = 0

    def __init__(self) -> None:
        self.started = 0

    async def run(self) -> None:
        self.started += 1
        Service.running += 1
        Service.most = max(Service.most, Service.running)
        try:
            await asyncio.Event().wait()
        finally:
            Service.running -= 1


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_one_of_three_runs_and_another_takes_over(db_url: str) -> None:
    name = f"elect-{uuid.uuid4().hex[:8]}"

    async def scenario() -> None:
        services = [Service() for _ in range(3)]
        runners = [Elected(s, db_url, name=name, retry_s=0.1) for s in services]
        tasks = [asyncio.create_task(r.run()) for r in runners]
        try:
            await until(lambda: any(r.leading.is_set() for r in runners))
            await asyncio.sleep(0.6)  # several rounds of attempts by the other two
            assert [r.leading.is_set() for r in runners].count(True) == 1
            assert Service.running == 1 and Service.most == 1
            assert len(await holders(db_url, name)) == 1
            first = next(i for i, r in enumerate(runners) if r.leading.is_set())
            tasks[first].cancel()
            await asyncio.gather(tasks[first], return_exceptions=True)
            others = [r for i, r in enumerate(runners) if i != first]
            await until(lambda: any(r.leading.is_set() for r in others), 5)
            await asyncio.sleep(0.3)
            assert [r.leading.is_set() for r in others].count(True) == 1
            assert Service.running == 1 and Service.most == 1
            assert sum(s.started for s in services) == 2
            # Another name is another lock: its service runs beside this one.
            lone = Elected(Service(), db_url, name=name + "-other", retry_s=0.1)
            extra = asyncio.create_task(lone.run())
            await until(lone.leading.is_set)
            assert Service.running == 2
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert Service.running == 0
        assert await holders(db_url, name) == []

    Service.running = Service.most = 0
    asyncio.run(scenario())


@pytest.fixture
def broker_dir(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A private Mosquitto logging every connection (fails where mosquitto is missing)."""
    with private_broker(tmp_path / "broker", log_all=True) as url:
        yield url, tmp_path / "broker" / "mosquitto.log"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PG"))}
    env.update(extra)
    return env


def test_serve_with_two_workers_runs_one_bridge(
    make_database: Callable[..., str], broker_dir: tuple[str, Path], tmp_path: Path
) -> None:
    broker, broker_log = broker_dir
    url = make_database("twin_elect")
    upgrade(url)
    with psycopg.connect(url) as c:
        row = c.execute(
            "INSERT INTO twin.sensor (code, kind, unit, geom) VALUES ('elect-1', 'rain_gauge',"
            " 'mm/h', ST_SetSRID(ST_MakePoint(120.1, 30.2), 4326)) RETURNING id"
        ).fetchone()
    assert row is not None
    sensor = int(row[0])
    client_id = f"twin-bridge-{uuid.uuid4().hex[:8]}"
    port = free_port()
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port), "--workers", "2",
         "--log-level", "warning"],
        env=_env(TWIN_DATABASE_URL=url, TWIN_DATA_DIR=str(tmp_path / "data"),
                 TWIN_MQTT_URL=broker, TWIN_MQTT_CLIENT_ID=client_id),
        stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60

        def electors() -> int:
            with psycopg.connect(url) as c:
                got = c.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE application_name = 'twin-sense-election'"
                ).fetchone()
            return int(got[0]) if got else 0

        # Both workers are up and take part in the election; one holds the lock.
        while electors() < 2 or not asyncio.run(holders(url, client_id)):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200

        async def device() -> None:
            host, _, p = broker.removeprefix("mqtt://").partition(":")
            async with aiomqtt.Client(host, int(p)) as c:
                await c.publish(
                    f"v1.1/Datastreams({sensor})/Observations",
                    json.dumps({"phenomenonTime": "2026-08-01T00:00:00Z", "result": 7.5}),
                    qos=1,
                )

        asyncio.run(device())
        while True:
            with psycopg.connect(url) as c:
                got = c.execute(
                    "SELECT value FROM twin.observation WHERE sensor_id = %s", (sensor,)
                ).fetchall()
            if got:
                break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        assert got == [(7.5,)]
        time.sleep(2.0)  # a second bridge with the id would have connected (and fought) by now
        text = broker_log.read_text()
        assert text.count(f" as {client_id} ") == 1, text[-3000:]
        assert "already connected" not in text, text[-3000:]
        assert len(asyncio.run(holders(url, client_id))) == 1
    finally:
        server.terminate()
        server.wait(30)
