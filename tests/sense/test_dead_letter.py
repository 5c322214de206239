"""Refused MQTT payloads go to twin.sense_dead_letter with the reason; the bridge goes on."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import psycopg
import pytest
from typer.testing import CliRunner

from tests.sense.test_bridge import broker, db, make_sensor, rows, wait_for  # noqa: F401
from twin.sense.bridge import Bridge, running


def dead(db: str, sensor: int) -> list[tuple[Any, ...]]:  # noqa: F811
    with psycopg.connect(db) as conn:
        return conn.execute(
            "SELECT topic, reason, raw, datastream_id, source FROM twin.sense_dead_letter"
            " WHERE topic LIKE %s OR datastream_id = 99999998 ORDER BY id",
            (f"%({sensor})%",),
        ).fetchall()


def test_every_bad_payload_is_a_dead_letter(broker: str, db: str) -> None:  # noqa: F811
    sensor = make_sensor(db, "dead-1")
    topic = f"v1.1/Datastreams({sensor})/Observations"
    port = int(broker.rsplit(":", 1)[1])
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()

    async def scenario() -> Bridge:
        bridge = Bridge(broker, db, base="http://t/sta/v1.1", batch_wait_s=0.01,
                        publish_back=False, future_tolerance_s=600)  # fmt: skip
        async with running(bridge), aiomqtt.Client("127.0.0.1", port) as device:
            await asyncio.wait_for(bridge.ready.wait(), 10)
            await device.publish(topic, b"{nope", qos=1)
            await device.publish(topic, json.dumps({"result": "x", "foo": 1}), qos=1)
            await device.publish("v1.1/Datastreams(99999998)/Observations",
                                 json.dumps({"result": 1}), qos=1)  # fmt: skip
            await device.publish(topic, json.dumps({"phenomenonTime": future, "result": 1}), qos=1)
            await device.publish(f"v1.1/Things({sensor})/Observations", b"{}", qos=1)
            await device.publish(
                topic, json.dumps({"phenomenonTime": "2026-07-01T00:00:00Z", "result": 2}), qos=1
            )
            await wait_for(lambda: bridge.stats.rejected >= 5 and bridge.stats.stored >= 1)
        return bridge

    bridge = asyncio.run(scenario())
    assert rows(db, sensor) == [("00:00", 2.0)]
    got = dead(db, sensor)
    assert len(got) == 5 and bridge.stats.rejected == 5
    by_topic = {(t, r): (bytes(raw), ds, src) for t, r, raw, ds, src in got}
    reasons = [r for _, r, *_ in got]
    assert any("not JSON" in r for r in reasons)
    assert "unknown datastream" in reasons
    assert any("future" in r for r in reasons)
    assert any("topic is not" in r for r in reasons)
    assert (topic, next(r for r in reasons if "not JSON" in r)) in by_topic
    assert by_topic[(topic, next(r for r in reasons if "not JSON" in r))][0] == b"{nope"
    assert all(src == "mqtt" for _, _, _, _, src in got)


def test_status_counts_rejects(db: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from twin.cli import app

    with psycopg.connect(db) as conn:
        want = dict(conn.execute(
            "SELECT reason, count(*) FROM twin.sense_dead_letter GROUP BY reason"
        ).fetchall())  # fmt: skip
    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    monkeypatch.delenv("TWIN_MQTT_URL", raising=False)
    out = CliRunner().invoke(app, ["sense", "status", "--json"])
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert body["rejects"] == want
    assert len(body["latest_rejects"]) == min(5, sum(want.values()))


def test_readings_outside_the_physical_range_are_dead_letters(broker: str, db: str) -> None:  # noqa: F811
    sensor = make_sensor(db, "dead-range")
    with psycopg.connect(db) as c:
        c.execute("UPDATE twin.sensor SET value_min = 0, value_max = 10 WHERE id = %s", (sensor,))
    topic = f"v1.1/Datastreams({sensor})/Observations"
    port = int(broker.rsplit(":", 1)[1])

    def obs(minute: int, value: float) -> dict[str, Any]:
        return {"phenomenonTime": f"2026-07-01T00:{minute:02d}:00Z", "result": value}

    payloads = [
        json.dumps(obs(1, 5)).encode(), json.dumps(obs(2, -1)).encode(),
        json.dumps(obs(3, 11)).encode(), json.dumps(obs(4, 10)).encode(),
        json.dumps(obs(5, 0)).encode(),
        json.dumps([obs(6, 3), obs(7, 12)]).encode(),  # one bad item refuses the message
        # jsonb cannot hold \u0000: the database refuses this one alone, the batch goes on
        json.dumps({**obs(8, 4), "parameters": {"note": "\u0000"}}).encode(),
    ]  # fmt: skip
    want_rows = [("00:01", 5.0), ("00:04", 10.0), ("00:05", 0.0)]
    want_dead = [payloads[1], payloads[2], payloads[5], payloads[6]]

    async def scenario() -> Bridge:
        bridge = Bridge(broker, db, base="http://t/sta/v1.1", publish_back=False,
                        client_id="dead-range", limits_ttl_s=0.0)  # fmt: skip
        async with running(bridge), aiomqtt.Client("127.0.0.1", port) as device:
            await asyncio.wait_for(bridge.ready.wait(), 10)
            for p in payloads:
                await device.publish(topic, p, qos=1)
            await wait_for(lambda: bridge.stats.acked >= len(payloads))
            # A wider range is seen at once (limits_ttl_s=0): 12 is fine now.
            with psycopg.connect(db) as c:
                c.execute("UPDATE twin.sensor SET value_max = 20 WHERE id = %s", (sensor,))
            await device.publish(topic, json.dumps(obs(9, 12)), qos=1)
            await wait_for(lambda: bridge.stats.acked >= len(payloads) + 1)
        return bridge

    bridge = asyncio.run(scenario())
    assert rows(db, sensor) == [*want_rows, ("00:09", 12.0)]
    got = [(bytes(raw), reason, ds) for _, reason, raw, ds, _ in dead(db, sensor) if ds == sensor]
    assert [raw for raw, _, _ in got] == want_dead
    assert [reason for _, reason, _ in got][:3] == ["out of range"] * 3
    assert got[3][1].startswith("database refused it")
    assert {ds for _, _, ds in got} == {sensor}
    assert bridge.stats.rejected == len(want_dead) and bridge.stats.stored == len(want_rows) + 1
