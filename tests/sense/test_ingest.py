"""The bridge's bulk store path (twin.sense.ingest): the fast reading of the common Observation
form says what ``reading_from`` says; the COPY path stores a replayed or repeated reading once
and returns every row's id; a reading the database refuses becomes a dead letter and the rest
of the batch is stored; bridges on one MQTT 5 shared subscription store every message once.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import psycopg
import pytest

from tests.sense.test_bridge import broker, db, make_sensor, rows, wait_for  # noqa: F401
from twin.sense import ingest
from twin.sense.bridge import Bridge, _Parsed, running
from twin.sense.write import BadEntity, reading_from

T0 = datetime(2026, 7, 1, tzinfo=UTC)

CASES: list[Any] = [
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 1.5},
    {"phenomenonTime": "2026-07-01T08:00:00+08:00", "result": 3},
    {"phenomenonTime": "2026-07-01T00:00:00.250Z", "result": -0.0},
    {"phenomenonTime": "2026-07-01T00:00:00", "result": 1},  # no time zone
    {"phenomenonTime": "not a time", "result": 1},
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": True},
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": "1"},
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": float("nan")},
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": float("inf")},
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 10**400},  # too large for a float
    {"phenomenonTime": "2026-07-01T00:00:00Z/2026-07-01T00:05:00Z", "result": 2},
    {"phenomenonTime": "2026-07-01T00:05:00Z/2026-07-01T00:00:00Z", "result": 2},
    {
        "phenomenonTime": "2026-07-01T00:00:00Z",
        "result": 2,
        "resultQuality": 3,
        "parameters": {"battery": 0.9},
        "resultTime": "2026-07-01T00:00:01Z",
    },
    {"phenomenonTime": "2026-07-01T00:00:00Z", "result": 2, "resultQuality": True},
    {"phenomenonTime": 5, "result": 2},
    {"result": 2, "Datastream": {"@iot.id": 1}},
    [1, 2],
    "text",
    None,
]


def _reference(item: Any, ds: int) -> tuple[Any, ...] | str:
    """What ``reading_from`` makes of ``item``: the row, or 'refused'."""
    try:
        r, _ = reading_from(item, datastream=ds, now=T0)
    except BadEntity:
        return "refused"
    return (r.datastream, r.time, r.value, r.until, r.result_time, r.quality, r.parameters,
            r.feature)  # fmt: skip


@pytest.mark.parametrize("item", CASES, ids=range(len(CASES)))
def test_rows_of_says_what_reading_from_says(item: Any) -> None:
    want = _reference(item, 7)
    try:
        got: Any = ingest.rows_of(item, 7)[0]
    except BadEntity:
        got = "refused"
    if isinstance(item, dict) and "phenomenonTime" not in item and got != "refused":
        got = (got[0], T0, *got[2:])  # a reading without a time takes "now"
    assert got == want


def test_rows_of_the_common_form() -> None:
    got = ingest.rows_of([{"phenomenonTime": "2026-07-01T08:00:00+08:00", "result": 3}], 7)
    assert got == [(7, datetime(2026, 7, 1, 0, 0, tzinfo=UTC), 3.0, None, None, None, None, None)]
    assert type(got[0][2]) is float


def test_a_huge_integer_result_is_refused_not_a_crash() -> None:
    with pytest.raises(BadEntity, match="finite"):
        reading_from({"phenomenonTime": "2026-07-01T00:00:00Z", "result": 10**400}, datastream=1)


def test_copy_path_stores_repeats_once_and_returns_every_id(db: str) -> None:  # noqa: F811
    sensor = make_sensor(db, "ingest-copy")
    at = [T0 + timedelta(minutes=i) for i in range(4)]

    def row(i: int, v: float) -> ingest.Row:
        return (sensor, at[i], v, None, None, None, None, None)

    async def scenario() -> tuple[Any, ...]:
        async with await psycopg.AsyncConnection.connect(db, autocommit=True) as conn:
            await ingest.prepare(conn)
            async with conn.transaction():
                first = await ingest.store_rows(conn, [row(0, 1.0), row(1, 2.0)])
                # Same transaction: the staging table holds only this batch (row 1 again,
                # row 2 twice in the batch, row 3 new).
                second = await ingest.store_rows(conn, [row(1, 9.0), row(2, 3.0), row(2, 8.0),
                                                        row(3, 4.0)])  # fmt: skip
                counted = await ingest.store_rows(conn, [row(3, 5.0)], want_ids=False)
            try:  # a rolled-back savepoint takes its staged rows with it
                async with conn.transaction():
                    await ingest.store_rows(conn, [(sensor, T0 + timedelta(days=1), 1.0, None,
                                                    None, None, None, None)])  # fmt: skip
                    raise RuntimeError("roll back")
            except RuntimeError:
                pass
            async with conn.transaction():
                cur = await conn.execute("SELECT count(*) FROM pg_temp.twin_sense_stage")
                staged = (await cur.fetchone() or [None])[0]
            cur = await conn.execute(
                "SELECT observed_at, id FROM twin.observation WHERE sensor_id = %s", (sensor,)
            )
            ids = dict(await cur.fetchall())
        return first, second, counted, staged, ids

    first, second, counted, staged, ids = asyncio.run(scenario())
    assert rows(db, sensor) == [("00:00", 1.0), ("00:01", 2.0), ("00:02", 3.0), ("00:03", 4.0)]
    assert first == ([ids[at[0]], ids[at[1]]], 2)
    assert second == ([ids[at[1]], ids[at[2]], ids[at[2]], ids[at[3]]], 2)
    assert counted == ([], 0)
    assert staged == 0


def test_a_reading_the_database_refuses_is_a_dead_letter(db: str) -> None:  # noqa: F811
    keep = make_sensor(db, "ingest-keep")
    gone = make_sensor(db, "ingest-gone")
    bridge = Bridge("mqtt://127.0.0.1:1", db, base="http://t/sta/v1.1", publish_back=False)

    def parsed(ds: int, v: float) -> _Parsed:
        topic = f"v1.1/Datastreams({ds})/Observations"
        payload = json.dumps({"phenomenonTime": T0.isoformat(), "result": v}).encode()
        return _Parsed(topic, payload, bridge.parse(topic, payload), None, ds)

    async def scenario() -> tuple[Any, ...]:
        try:
            await bridge._commit([parsed(keep, 1.0), parsed(gone, 2.0)])  # both known now
            with psycopg.connect(db) as c:  # the datastream goes; the bridge's cache says known
                c.execute("DELETE FROM twin.sensor WHERE id = %s", (gone,))
            return await bridge._commit([parsed(keep, 1.0), parsed(gone, 3.0),
                                         parsed(keep, 4.0)])  # fmt: skip
        finally:
            await bridge._drop_connection()

    good, ids, new, dead = asyncio.run(scenario())
    assert [r[2] for r in good] == [1.0, 4.0] and new == 0 and ids == []
    assert [(t, reason) for t, reason, _, _ in dead] == [
        (f"v1.1/Datastreams({gone})/Observations", "database refused it (23503)")]  # fmt: skip
    assert rows(db, keep) == [("00:00", 1.0)]  # the same key again: stored once
    with psycopg.connect(db) as c:
        kept = c.execute("SELECT reason, raw FROM twin.sense_dead_letter WHERE datastream_id = %s",
                         (gone,)).fetchall()  # fmt: skip
    assert [(r, json.loads(bytes(raw))["result"]) for r, raw in kept] == [
        ("database refused it (23503)", 3.0)]  # fmt: skip


def test_a_shared_subscription_cannot_publish_back() -> None:
    with pytest.raises(ValueError, match="publish back"):
        Bridge("mqtt://127.0.0.1:1", "postgresql://x/y", base="b", share_group="twin")
    with pytest.raises(ValueError, match="share group"):
        Bridge("mqtt://127.0.0.1:1", "postgresql://x/y", base="b", share_group="a/b",
               publish_back=False)  # fmt: skip


def test_bridges_on_a_shared_subscription_store_every_message_once(
    broker: str,  # noqa: F811
    db: str,  # noqa: F811
) -> None:
    sensors = [make_sensor(db, f"ingest-share-{i}") for i in range(4)]
    port = int(broker.rsplit(":", 1)[1])
    n = 400  # messages, two readings each

    async def scenario() -> list[Bridge]:
        bridges = [Bridge(broker, db, base="http://t/sta/v1.1", publish_back=False,
                          client_id=f"ingest-share-{k}", share_group="ingest-test",
                          batch_wait_s=0.01) for k in range(2)]  # fmt: skip
        async with running(bridges[0]), running(bridges[1]):
            for b in bridges:
                await asyncio.wait_for(b.ready.wait(), 10)
            async with aiomqtt.Client("127.0.0.1", port) as device:
                for m in range(n):
                    body = [{"phenomenonTime": (T0 + timedelta(seconds=2 * m + j)).isoformat(),
                             "result": float(2 * m + j)} for j in range(2)]  # fmt: skip
                    ds = sensors[m % len(sensors)]
                    await device.publish(f"v1.1/Datastreams({ds})/Observations",
                                         json.dumps(body), qos=1)  # fmt: skip
                    if m % 100 == 50:  # the same message again: stored once
                        await device.publish(f"v1.1/Datastreams({ds})/Observations",
                                             json.dumps(body), qos=1)  # fmt: skip
            await wait_for(lambda: sum(b.stats.acked for b in bridges) >= n + 4)
        return bridges

    bridges = asyncio.run(scenario())
    with psycopg.connect(db) as c:
        got = c.execute(
            "SELECT value FROM twin.observation WHERE sensor_id = ANY(%s) ORDER BY value",
            (sensors,),
        ).fetchall()
    assert [v for (v,) in got] == [float(i) for i in range(2 * n)]
    assert sum(b.stats.acked for b in bridges) == n + 4
    assert sum(b.stats.stored for b in bridges) == 2 * n
    assert sum(b.stats.duplicates for b in bridges) == 8
    assert all(b.stats.acked > 0 for b in bridges), "the broker gave one bridge everything"


def test_sense_run_with_workers_stores_everything(broker: str, db: str) -> None:  # noqa: F811
    """``twin sense run --workers 2 --no-publish``: two processes on the shared subscription;
    every published reading is stored once. Without --no-publish it refuses to start."""
    sensor = make_sensor(db, "ingest-workers")
    port = int(broker.rsplit(":", 1)[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=db, TWIN_MQTT_CLIENT_ID="ingest-workers",
               PYTHONPATH=str(Path(__file__).resolve().parents[2]))  # fmt: skip
    cmd = [sys.executable, "-m", "twin", "sense", "run", "--mqtt-url", broker, "--workers", "2"]
    refused = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "--no-publish" in refused.stdout + refused.stderr
    proc = subprocess.Popen([*cmd, "--no-publish"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    topic = f"v1.1/Datastreams({sensor})/Observations"

    async def scenario() -> None:
        # Both sessions exist once the probe readings of both bridges are stored: publish
        # probes (times before T0) until at least two have landed and a few seconds passed.
        async with aiomqtt.Client("127.0.0.1", port) as device:
            deadline = asyncio.get_running_loop().time() + 60
            k = 0
            while len(rows(db, sensor)) < 2 or k < 20:
                assert asyncio.get_running_loop().time() < deadline, "the bridges never stored"
                k += 1
                await device.publish(topic, json.dumps({
                    "phenomenonTime": (T0 - timedelta(hours=k)).isoformat(), "result": -k}),
                    qos=1)  # fmt: skip
                await asyncio.sleep(0.2)
            for i in range(300):
                await device.publish(topic, json.dumps({
                    "phenomenonTime": (T0 + timedelta(seconds=i)).isoformat(), "result": i}),
                    qos=1)  # fmt: skip
        await wait_for(lambda: len(stored(db, sensor)) >= 300, timeout=60)

    try:
        asyncio.run(scenario())
    finally:
        proc.terminate()
        proc.wait(20)
    assert stored(db, sensor) == [float(i) for i in range(300)]


def stored(db: str, sensor: int) -> list[float]:  # noqa: F811
    with psycopg.connect(db) as c:
        return [v for (v,) in c.execute(
            "SELECT value FROM twin.observation WHERE sensor_id = %s AND observed_at >= %s"
            " ORDER BY observed_at", (sensor, T0)).fetchall()]  # fmt: skip
