"""Nothing acknowledged is lost: a publisher sends N readings with QoS 1 at a steady rate (each
publish returns once the broker has acknowledged it), and in the middle of the stream either
the database restarts (a private PostGIS cluster started here, never the shared one) or the
bridge dies and a new one with the same client id takes over. Afterwards the table holds
exactly the N readings that were published, each once: the bridge acknowledges a message only
after its row is committed, and the broker delivers again what it did not acknowledge.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
import pytest

from tests.services import binary, free_port, serving
from twin.db.cluster import LocalCluster
from twin.db.migrate import upgrade
from twin.sense.bridge import Bridge

N = 3000
RATE = 500.0  # readings per second
T0 = datetime(2026, 9, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A private Mosquitto whose per-client queue holds a whole stream (its default is 1000
    messages beyond those in flight, after which it drops: see docs/sensorthings.md)."""
    port = free_port()
    conf: Path = tmp_path_factory.mktemp("mosquitto-restart") / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_queued_messages 100000\n")  # fmt: skip
    with serving([binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)], port):
        yield port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, str]]:
    """A private PostGIS cluster on a free port, migrated; this test may restart it."""
    pg = LocalCluster(tmp_path_factory.mktemp("pg-restart"), db_name="twin_restart",
                      port=free_port())  # fmt: skip
    state, _ = pg.start()
    try:
        upgrade(state.url)
        yield pg, state.url
    finally:
        pg.stop()


def make_sensor(url: str, code: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute(
            "INSERT INTO twin.sensor (code, kind, unit) VALUES (%s, 'water_level', 'm')"
            " RETURNING id",
            (code,),
        ).fetchone()
        assert row is not None
        return int(row[0])


def stored(url: str, sensor: int) -> list[float]:
    """The sensor's values in order (none while the database is away)."""
    try:
        with psycopg.connect(url, connect_timeout=2) as c:
            return [r[0] for r in c.execute(
                "SELECT value FROM twin.observation WHERE sensor_id = %s ORDER BY value", (sensor,)
            ).fetchall()]  # fmt: skip
    except psycopg.OperationalError:
        return []


def reading(i: int) -> str:
    return json.dumps({"phenomenonTime": (T0 + timedelta(seconds=i)).isoformat(), "result": i})


async def publish_stream(port: int, topic: str, at: dict[int, Callable[[], Any]]) -> int:
    """Publish readings 0..N-1 at RATE; ``at[i]`` runs (as a task) after reading i. Returns
    how many publishes the broker acknowledged."""
    acked = 0
    tasks = []
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"pub-{topic}") as pub:
        start = time.monotonic()
        for i in range(N):
            await pub.publish(topic, reading(i), qos=1)  # returns on PUBACK
            acked += 1
            if i in at:
                tasks.append(asyncio.create_task(at[i]()))
            await asyncio.sleep(max(0.0, start + (i + 1) / RATE - time.monotonic()))
        for t in tasks:
            await t
    return acked


async def wait_rows(url: str, sensor: int, n: int, timeout: float = 120.0) -> list[float]:
    deadline = time.monotonic() + timeout
    while True:
        got = await asyncio.to_thread(stored, url, sensor)
        if len(got) >= n or time.monotonic() > deadline:
            await asyncio.sleep(1.0)  # anything late (a duplicate would have nowhere to go)
            return await asyncio.to_thread(stored, url, sensor)
        await asyncio.sleep(0.2)


def test_a_database_restart_mid_stream_loses_nothing(
    broker: int, cluster: tuple[LocalCluster, str]
) -> None:
    pg, url = cluster
    sensor = make_sensor(url, "restart-db")
    topic = f"v1.1/Datastreams({sensor})/Observations"
    outage: dict[str, float] = {}

    def restart() -> None:
        outage["start"] = time.monotonic()
        pg.stop()
        time.sleep(1.0)  # down for a while: several batches wait
        pg.start()
        outage["end"] = time.monotonic()

    async def scenario() -> tuple[int, Bridge]:
        bridge = Bridge(f"mqtt://127.0.0.1:{broker}", url, base="http://t/sta/v1.1",
                        publish_back=False, client_id="restart-db", batch_wait_s=0.02,
                        retry_max_s=0.5)  # fmt: skip
        task = asyncio.create_task(bridge.run())
        try:
            await asyncio.wait_for(bridge.ready.wait(), 20)
            acked = await publish_stream(
                broker, topic, {N // 3: lambda: asyncio.to_thread(restart)}
            )
            got = await wait_rows(url, sensor, acked)
        finally:
            task.cancel()
            async with asyncio.timeout(30):
                await asyncio.gather(task, return_exceptions=True)
        assert got == [float(i) for i in range(acked)]
        return acked, bridge

    acked, bridge = asyncio.run(scenario())
    assert acked == N
    assert outage["end"] > outage["start"]
    assert bridge.stats.db_errors >= 1, "the restart did not reach the bridge"
    assert bridge.stats.acked >= N and bridge.stats.stored == N


def _bridge_process(port: int, url: str, client_id: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=url, TWIN_MQTT_CLIENT_ID=client_id,
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "twin", "sense", "run", "--mqtt-url", f"mqtt://127.0.0.1:{port}",
         "--no-publish"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


@pytest.mark.parametrize("how", ["cancelled", "killed"])
def test_a_bridge_restart_mid_stream_loses_nothing(
    broker: int, cluster: tuple[LocalCluster, str], how: str
) -> None:
    """``cancelled``: the bridge task is cancelled (it disconnects) and a new one starts;
    ``killed``: a ``twin sense run`` process gets SIGKILL (no DISCONNECT, batches lost in
    memory) and a new process starts. Same client id both times."""
    _, url = cluster
    sensor = make_sensor(url, f"restart-bridge-{how}")
    topic = f"v1.1/Datastreams({sensor})/Observations"
    client_id = f"restart-{how}"
    mqtt_url = f"mqtt://127.0.0.1:{broker}"
    procs: list[subprocess.Popen[bytes]] = []
    tasks: list[asyncio.Task[None]] = []

    async def start() -> None:
        if how == "killed":
            procs.append(_bridge_process(broker, url, client_id))
        else:
            bridge = Bridge(mqtt_url, url, base="http://t/sta/v1.1", publish_back=False,
                            client_id=client_id, batch_wait_s=0.02)  # fmt: skip
            tasks.append(asyncio.create_task(bridge.run()))

    async def stop() -> None:
        if how == "killed":
            procs[-1].send_signal(signal.SIGKILL)
            await asyncio.to_thread(procs[-1].wait, 10)
        else:
            tasks[-1].cancel()
            async with asyncio.timeout(30):  # a bridge that ignores its cancellation fails here
                await asyncio.gather(tasks[-1], return_exceptions=True)

    async def replace() -> None:
        await stop()
        await asyncio.sleep(0.5)  # the broker queues for the absent session meanwhile
        await start()

    async def scenario() -> tuple[int, list[float]]:
        await start()
        try:
            # The session exists once the first bridge has subscribed: a probe reading (i = -1
            # would sort first; use its own time) shows it is storing.
            async with aiomqtt.Client("127.0.0.1", broker) as probe:
                deadline = time.monotonic() + 60
                while not await asyncio.to_thread(stored, url, sensor):
                    assert time.monotonic() < deadline, "the first bridge never stored the probe"
                    await probe.publish(topic, json.dumps({
                        "phenomenonTime": (T0 - timedelta(days=1)).isoformat(), "result": -1}),
                        qos=1)  # fmt: skip
                    await asyncio.sleep(0.5)
            acked = await publish_stream(broker, topic, {N // 3: replace})
            got = await wait_rows(url, sensor, acked + 1)
        finally:
            for t in tasks:
                t.cancel()
                async with asyncio.timeout(30):
                    await asyncio.gather(t, return_exceptions=True)
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(10)
        return acked, got

    acked, got = asyncio.run(scenario())
    assert acked == N
    assert got == [-1.0] + [float(i) for i in range(N)]
    if how == "killed":
        assert all(p.returncode is not None for p in procs) and len(procs) == 2
