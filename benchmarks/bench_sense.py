"""Sensor data in: MQTT ingest rate through the bridge, and SensorThings paging latency.

* ``ingest``: a private Mosquitto (this machine's /usr/sbin/mosquitto, on a free port) and the
  twin's bridge (``twin.sense.bridge``, batch of ``--batch`` readings per insert) in this
  process; a separate publisher process sends ``--readings`` Observations (QoS 1, one JSON
  Observation of ~60 bytes per message, or ``--per-message`` of them as a JSON list) spread over
  ``--datastreams`` datastreams. Rate = readings / (first publish -> last row committed).
* ``paging``: ``GET /sta/v1.1/Observations?$top=1000`` (and ``$skip`` deep into the table) on
  a real uvicorn server over ``--rows`` stored observations; p50 and p99 of ``--requests``.

Each run uses a fresh database on the twin's server (private cluster or TWIN_DATABASE_URL).

    .venv/bin/python benchmarks/bench_sense.py --readings 50000 --rows 200000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

from twin.db.engine import database_url
from twin.db.migrate import upgrade
from twin.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fresh_db() -> tuple[str, str]:
    base = database_url(Settings())
    admin = base.rsplit("/", 1)[0] + "/postgres"
    name = f"twin_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    upgrade(url)
    return admin, url


def drop_db(admin: str, url: str) -> None:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(url.rsplit("/", 1)[1])))  # fmt: skip


def sensors(url: str, n: int) -> list[int]:
    with psycopg.connect(url) as c:
        return [r[0] for r in c.execute(
            "INSERT INTO twin.sensor (code, kind, unit, geom) SELECT 'bench-' || i, 'rain_gauge',"
            " 'mm/h', ST_SetSRID(ST_MakePoint(120 + i * 1e-4, 30), 4326)"
            " FROM generate_series(1, %s) i RETURNING id", (n,)).fetchall()]  # fmt: skip


def publisher(port: int, ids: list[int], readings: int, per_message: int) -> None:
    import logging

    import aiomqtt

    logging.getLogger("aiomqtt").setLevel(logging.ERROR)

    async def go() -> None:
        t0 = 1_780_000_000
        async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=1000) as client:
            k = 0
            window = []
            while k < readings:
                ds = ids[(k // per_message) % len(ids)]
                items = []
                for _ in range(min(per_message, readings - k)):
                    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t0 + k))
                    items.append({"phenomenonTime": f"{stamp}Z", "result": k % 97 / 10})
                    k += 1
                body = items[0] if per_message == 1 else items
                # Up to 500 publishes in flight (QoS 1: each waits for its PUBACK).
                window.append(client.publish(f"v1.1/Datastreams({ds})/Observations",
                                             json.dumps(body), qos=1))  # fmt: skip
                if len(window) >= 500:
                    await asyncio.gather(*window)
                    window = []
            await asyncio.gather(*window)

    asyncio.run(go())


def bench_ingest(args: argparse.Namespace) -> dict[str, object]:
    from twin.sense.bridge import Bridge, running

    admin, url = fresh_db()
    conf_dir = Path(tempfile.mkdtemp())
    port = free_port()
    (conf_dir / "m.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n"
                                     "max_queued_messages 1000000\n")  # fmt: skip
    broker = subprocess.Popen([shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-c",
                               str(conf_dir / "m.conf")], stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(0.5)
    try:
        ids = sensors(url, args.datastreams)
        # Reading k has time t0 + k s: every (datastream, time) is new, each reading a new row.

        async def run() -> tuple[float, int]:
            bridge = Bridge(f"mqtt://127.0.0.1:{port}", url, base="http://bench/sta/v1.1",
                            batch_size=args.batch, selects=[],
                            publish_back=not args.no_publish_back)  # fmt: skip
            async with running(bridge):
                await asyncio.wait_for(bridge.ready.wait(), 10)
                proc = mp.get_context("spawn").Process(target=publisher,
                                  args=(port, ids, args.readings, args.per_message))  # fmt: skip
                start = time.perf_counter()
                proc.start()
                deadline = time.monotonic() + 600
                while bridge.stats.stored + bridge.stats.duplicates < args.readings:
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.01)
                    if args.verbose and int(time.monotonic() * 10) % 20 == 0:
                        print(bridge.stats.as_dict(), flush=True)
                elapsed = time.perf_counter() - start
                proc.join(30)
            return elapsed, bridge.stats.stored

        elapsed, stored = asyncio.run(run())
        with psycopg.connect(url) as c:
            rows = c.execute("SELECT count(*) FROM twin.observation").fetchone()
        return {"readings": args.readings, "stored": stored, "rows": rows[0] if rows else None,
                "seconds": round(elapsed, 2), "readings_per_s": round(stored / elapsed),
                "per_message": args.per_message, "batch": args.batch,
                "broker": "mosquitto " + subprocess.run(
                    [shutil.which("mosquitto") or "/usr/sbin/mosquitto", "-h"],
                    capture_output=True, text=True).stdout.split("\n")[0].split()[-1],
                "qos": 1, "publish_back": not args.no_publish_back}  # fmt: skip
    finally:
        broker.terminate()
        broker.wait(10)
        drop_db(admin, url)


def bench_paging(args: argparse.Namespace) -> dict[str, object]:
    import uvicorn

    from twin.api.app import create_app

    admin, url = fresh_db()
    try:
        ids = sensors(url, 100)
        with psycopg.connect(url) as c:
            c.execute(
                "INSERT INTO twin.observation (sensor_id, observed_at, value)"
                " SELECT (%s::bigint[])[1 + i %% 100], timestamptz '2026-07-01' + (i / 100) *"
                " interval '1 minute', (i %% 97) / 10.0 FROM generate_series(0, %s - 1) i",
                (ids, args.rows),
            )
            c.execute("ANALYZE twin.observation")
        port = free_port()
        settings = Settings(_env_file=None, database_url=url, port=port,
                            public_clearance="important")  # fmt: skip
        server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1",
                                               port=port, log_level="warning"))  # fmt: skip
        threading.Thread(target=server.run, daemon=True).start()
        base = f"http://127.0.0.1:{port}/sta/v1.1/Observations"
        out: dict[str, object] = {"rows": args.rows, "requests": args.requests}
        with httpx.Client(timeout=30) as http:
            for _ in range(100):
                try:
                    http.get(base, params={"$top": 1})
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            for label, params in (
                ("top1000", {"$top": 1000}),
                ("top1000_skip_deep", {"$top": 1000, "$skip": args.rows // 2}),
                ("top1000_datastream_time_desc", {
                    "$top": 1000, "$filter": f"Datastream/id eq {ids[0]}",
                    "$orderby": "phenomenonTime desc"}),
            ):  # fmt: skip
                for _ in range(5):
                    http.get(base, params=params)
                times = []
                for _ in range(args.requests):
                    t = time.perf_counter()
                    r = http.get(base, params=params)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200 and len(r.json()["value"]) == 1000, r.text[:200]
                times.sort()
                out[label] = {"p50_ms": round(statistics.median(times), 1),
                              "p99_ms": round(times[int(0.99 * (len(times) - 1))], 1)}  # fmt: skip
        server.should_exit = True
        return out
    finally:
        drop_db(admin, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readings", type=int, default=50_000)
    parser.add_argument("--per-message", type=int, default=1)
    parser.add_argument("--datastreams", type=int, default=100)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--no-publish-back",
        action="store_true",
        help="the bridge does not publish stored Observations back",
    )
    parser.add_argument("--only", choices=["ingest", "paging"])
    args = parser.parse_args()
    result: dict[str, object] = {"cpus": os.cpu_count()}
    if args.only in (None, "ingest"):
        result["ingest"] = bench_ingest(args)
    if args.only in (None, "paging"):
        result["paging"] = bench_paging(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
