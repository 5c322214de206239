"""The alert path of the live twin: from an MQTT reading to a changed alert visible over HTTP.

A private Mosquitto (``/usr/sbin/mosquitto`` on a free port) and the real API under uvicorn
with ``TWIN_MQTT_URL`` set: the bridge and the rule watch (``twin.alerts.watch``) run in the
API process, as ``twin serve`` runs them. One rule (``water_level_m >= 0.5``) watches
``--sensors`` water-level datastreams. For each sensor in turn, one Observation (0.8 m, QoS 1)
is published, and ``GET /api/alerts?rule=...&status=all`` is polled every 5 ms until that
sensor's alert is listed: latency = that answer - the publish. p50 / p99 over the sensors.
A second figure times the same path to the push channel (``/api/stream``): from the publish to
the ``event: alert`` line arriving on an open stream.

Each run uses a fresh database on the twin's server (private cluster or TWIN_DATABASE_URL).

    .venv/bin/python benchmarks/bench_alert_latency.py --sensors 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import aiomqtt
import httpx
import psycopg
from bench_sense import drop_db, free_port, fresh_db

RULE = """id = "bench_level"
title = "Bench: water level"
indicator = "water_level_m"
threshold = 0.5
area_level = "grid"
level = "red"
cooldown = "1h"
[params]
max_age = "30min"
"""


def level_sensors(url: str, n: int) -> list[tuple[int, str]]:
    with psycopg.connect(url) as c:
        rows = c.execute(
            "INSERT INTO twin.sensor (code, kind, unit, geom) SELECT 'WL-bench-' || i,"
            " 'water_level', 'm', ST_SetSRID(ST_MakePoint(120 + i * 1e-4, 30), 4326)"
            " FROM generate_series(1, %s) i RETURNING id, code",
            (n,),
        ).fetchall()
    return [(int(i), str(code)) for i, code in rows]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return round(s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))], 1)


async def measure(port: int, broker_port: int, sensors: list[tuple[int, str]]) -> dict[str, object]:
    http_ms: list[float] = []
    stream_ms: list[float] = []
    base = f"http://127.0.0.1:{port}"
    seen: dict[str, float] = {}

    async def follow(http: httpx.AsyncClient) -> None:
        while True:
            async with http.stream("GET", f"{base}/api/stream", timeout=None) as r:
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and '"bench_level"' in line:
                        seen.setdefault(json.loads(line[6:])["subject"], time.perf_counter())

    async with (
        httpx.AsyncClient(timeout=30) as http,
        aiomqtt.Client("127.0.0.1", broker_port, protocol=aiomqtt.ProtocolVersion.V5) as mqtt,
    ):
        follower = asyncio.create_task(follow(http))
        await asyncio.sleep(1.0)
        for ds, code in sensors:
            t0 = time.perf_counter()
            body = json.dumps({"phenomenonTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "result": 0.8})  # fmt: skip
            await mqtt.publish(f"v1.1/Datastreams({ds})/Observations", body, qos=1)
            while True:
                params = {"rule": "bench_level", "status": "all", "limit": 5000}
                r = await http.get(f"{base}/api/alerts", params=params)
                if any(a["subject"] == code for a in r.json()["alerts"]):
                    http_ms.append((time.perf_counter() - t0) * 1000)
                    break
                if time.perf_counter() - t0 > 30:
                    raise RuntimeError(f"no alert for {code} after 30 s")
                await asyncio.sleep(0.005)
            for _ in range(400):
                if code in seen:
                    stream_ms.append((seen[code] - t0) * 1000)
                    break
                await asyncio.sleep(0.005)
        follower.cancel()
    return {
        "sensors": len(sensors),
        "http": {"p50_ms": pct(http_ms, 0.5), "p99_ms": pct(http_ms, 0.99),
                 "max_ms": round(max(http_ms), 1)},
        "stream": {"n": len(stream_ms), "p50_ms": pct(stream_ms, 0.5) if stream_ms else None,
                   "p99_ms": pct(stream_ms, 0.99) if stream_ms else None},
        "mean_http_ms": round(statistics.fmean(http_ms), 1),
    }  # fmt: skip


def main() -> None:
    import uvicorn

    from twin.api.app import create_app
    from twin.settings import Settings

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sensors", type=int, default=100)
    args = p.parse_args()
    admin, url = fresh_db()
    tmp = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    broker_port = free_port()
    (tmp / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    broker = subprocess.Popen(["/usr/sbin/mosquitto", "-c", str(tmp / "mosquitto.conf")])
    rules = tmp / "rules"
    rules.mkdir()
    (rules / "bench_level.toml").write_text(RULE)
    try:
        sensors = level_sensors(url, args.sensors)
        port = free_port()
        settings = Settings(_env_file=None, database_url=url, port=port, rules_dir=rules,
                            mqtt_url=f"mqtt://127.0.0.1:{broker_port}",
                            public_clearance="important")  # fmt: skip
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                               port=port, log_level="warning"))  # fmt: skip
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        time.sleep(1.0)  # the bridge subscribes
        out = asyncio.run(measure(port, broker_port, sensors))
        print(json.dumps(out, indent=2))
        server.should_exit = True
        thread.join(20)
    finally:
        broker.terminate()
        drop_db(admin, url)


if __name__ == "__main__":
    main()
