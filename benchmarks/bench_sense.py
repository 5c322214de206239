"""Sensor data in: MQTT ingest rate through the bridge, and SensorThings paging latency.

* ``ingest``: a private Mosquitto (this machine's /usr/sbin/mosquitto, on a free port) and the
  twin's bridge (``twin.sense.bridge``, batches of up to ``--batch`` readings or what arrived
  within ``--batch-wait`` s, stored in one transaction) in this process, or ``--workers`` bridge
  processes on one MQTT 5 shared subscription; ``--publishers`` separate publisher processes
  send ``--readings`` Observations (QoS 1, one JSON Observation of ~60 bytes per message, or
  ``--per-message`` of them as a JSON list; the MQTT extension's topic
  ``v1.1/Datastreams(<id>)/Observations``) spread over ``--datastreams`` datastreams. Rate =
  readings / (first publish -> last row committed). The result states the broker's version,
  the payload (form, bytes per message), messages, batch and the load average before and after.
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
import resource
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

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


def payload(k: int, n: int, per_message: int) -> bytes:
    """Readings k .. k + n - 1 (reading k at t0 + k s) as one message's JSON."""
    t0 = 1_780_000_000
    items = [{"phenomenonTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0 + j)),
              "result": j % 97 / 10} for j in range(k, k + n)]  # fmt: skip
    return json.dumps(items[0] if per_message == 1 else items).encode()


def publisher(port: int, ids: list[int], readings: int, per_message: int, part: int,
              parts: int, ready: Any, start: Any) -> None:  # fmt: skip
    """Publish this part's messages (every ``parts``-th one), made before ``start`` is set."""
    import logging

    import aiomqtt

    logging.getLogger("aiomqtt").setLevel(logging.ERROR)
    messages = []
    for m, k in enumerate(range(0, readings, per_message)):
        if m % parts == part:
            ds = ids[m % len(ids)]
            messages.append((f"v1.1/Datastreams({ds})/Observations",
                             payload(k, min(per_message, readings - k), per_message)))  # fmt: skip

    async def go() -> None:
        async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=1000) as client:
            ready.set()
            await asyncio.to_thread(start.wait)
            window = []
            for topic, body in messages:
                # Up to 500 publishes in flight (QoS 1: each waits for its PUBACK).
                window.append(client.publish(topic, body, qos=1))
                if len(window) >= 500:
                    await asyncio.gather(*window)
                    window = []
            await asyncio.gather(*window)

    asyncio.run(go())


def worker(port: int, url: str, k: int, batch: int, wait: float, group: str) -> None:
    """One bridge process of a shared subscription (``--workers``), until terminated."""
    from twin.sense.bridge import Bridge

    bridge = Bridge(f"mqtt://127.0.0.1:{port}", url, base="http://bench/sta/v1.1",
                    batch_size=batch, batch_wait_s=wait, selects=[], publish_back=False,
                    client_id=f"bench-worker-{k}", share_group=group)  # fmt: skip
    asyncio.run(bridge.run())


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backends(url: str) -> dict[int, str]:
    """The server processes of the other connections to the benchmark's database (the
    bridge's), and the cluster's WAL writer, checkpointer and background writer."""
    with psycopg.connect(url) as c:
        return dict(c.execute(
            "SELECT pid, CASE WHEN datname IS NULL THEN backend_type ELSE 'bridge' END"
            " FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (datname ="
            " current_database() OR backend_type IN ('walwriter', 'checkpointer',"
            " 'background writer'))").fetchall())  # fmt: skip


def count_rows(url: str) -> int:
    with psycopg.connect(url) as c:
        row = c.execute("SELECT count(*) FROM twin.observation").fetchone()
        return int(row[0]) if row else 0


def bench_ingest(args: argparse.Namespace) -> dict[str, object]:
    from twin.sense.bridge import Bridge, running

    load_before = os.getloadavg()
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

        ctx = mp.get_context("spawn")
        cpu: dict[str, float] = {}  # CPU seconds each part used during the run

        def prepare() -> tuple[list[mp.process.BaseProcess], Any]:
            """Publisher processes, connected with their messages made, waiting for ``go``."""
            go = ctx.Event()
            procs, ready = [], []
            for i in range(args.publishers):
                ready.append(ctx.Event())
                procs.append(ctx.Process(target=publisher, args=(port, ids, args.readings,
                             args.per_message, i, args.publishers, ready[-1], go)))  # fmt: skip
                procs[-1].start()
            for event in ready:
                assert event.wait(120), "a publisher did not start"
            return procs, go

        async def run() -> tuple[float, int]:
            extra = {"batch_wait_s": args.batch_wait} if args.batch_wait is not None else {}
            bridge = Bridge(f"mqtt://127.0.0.1:{port}", url, base="http://bench/sta/v1.1",
                            batch_size=args.batch, selects=[],
                            publish_back=not args.no_publish_back, **extra)  # fmt: skip
            async with running(bridge):
                await asyncio.wait_for(bridge.ready.wait(), 10)
                server = await asyncio.to_thread(backends, url)  # the bridge connects later
                cpu0 = {"bridge": time.process_time(), "broker": cpu_s(broker.pid),
                        **{f"postgres {w}": cpu_s(p) for p, w in server.items()}}  # fmt: skip
                procs, go = await asyncio.to_thread(prepare)
                start = time.perf_counter()
                go.set()
                deadline = time.monotonic() + 600
                while bridge.stats.stored + bridge.stats.duplicates < args.readings:
                    if time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.01)
                    if args.verbose and int(time.monotonic() * 10) % 20 == 0:
                        print(bridge.stats.as_dict(), flush=True)
                elapsed = time.perf_counter() - start
                server = await asyncio.to_thread(backends, url)
                used = {"bridge": time.process_time(), "broker": cpu_s(broker.pid),
                        **{f"postgres {w}": cpu_s(p) for p, w in server.items()}}  # fmt: skip
                cpu.update({k: round(used[k] - cpu0.get(k, 0.0), 2) for k in used})
                children = resource.getrusage(resource.RUSAGE_CHILDREN)
                for p in procs:
                    p.join(30)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu["publishers (whole processes)"] = round(
                    after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime, 2
                )
            return elapsed, bridge.stats.stored

        async def run_workers() -> tuple[float, int]:
            wait = 0.05 if args.batch_wait is None else args.batch_wait
            workers = [ctx.Process(target=worker, args=(port, url, k, args.batch, wait, "bench"))
                       for k in range(args.workers)]  # fmt: skip
            for w in workers:
                w.start()
            try:
                await asyncio.sleep(3)  # the workers import, connect and subscribe
                procs, go = await asyncio.to_thread(prepare)
                start = time.perf_counter()
                go.set()
                deadline = time.monotonic() + 600
                while (n := count_rows(url)) < args.readings and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - start
                for p in procs:
                    p.join(30)
            finally:
                for w in workers:
                    w.terminate()
                    w.join(10)
            return elapsed, n

        if args.workers > 1:
            elapsed, stored = asyncio.run(run_workers())
        elif args.profile:
            import cProfile

            prof = cProfile.Profile()
            elapsed, stored = prof.runcall(asyncio.run, run())
            prof.dump_stats(args.profile)
        else:
            elapsed, stored = asyncio.run(run())
        with psycopg.connect(url) as c:
            rows = c.execute("SELECT count(*) FROM twin.observation").fetchone()
        messages = -(-args.readings // args.per_message)
        size = len(payload(0, args.per_message, args.per_message))
        return {"readings": args.readings, "stored": stored, "rows": rows[0] if rows else None,
                "seconds": round(elapsed, 2), "readings_per_s": round(stored / elapsed),
                "messages": messages, "messages_per_s": round(messages / elapsed),
                "per_message": args.per_message,
                "payload": ("one Observation JSON object" if args.per_message == 1 else
                            f"a JSON list of {args.per_message} Observations") +
                           f" (phenomenonTime, result), {size} bytes per message",
                "batch": args.batch, "batch_wait_s": args.batch_wait, "workers": args.workers,
                "publishers": args.publishers, "datastreams": args.datastreams,
                "cpu_s": cpu, "load_before": [round(x, 2) for x in load_before],
                "load_after": [round(x, 2) for x in os.getloadavg()],
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
    parser.add_argument("--batch-wait", type=float, help="the bridge's batch_wait_s")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="bridge processes on one shared subscription (no publishing back)",
    )
    parser.add_argument("--publishers", type=int, default=1)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument(
        "--no-publish-back",
        action="store_true",
        help="the bridge does not publish stored Observations back",
    )
    parser.add_argument("--only", choices=["ingest", "paging"])
    parser.add_argument("--profile", help="write a cProfile of the bridge (ingest) to this file")
    args = parser.parse_args()
    result: dict[str, object] = {"cpus": os.cpu_count()}
    if args.only in (None, "ingest"):
        result["ingest"] = bench_ingest(args)
    if args.only in (None, "paging"):
        result["paging"] = bench_paging(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
