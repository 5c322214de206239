"""The API under load, and under a database restart during that load.

Builds (or reuses) a demo twin in a throwaway PostgreSQL cluster of its own, starts the real
server (`twin serve`: one uvicorn process, as the README runs it), then runs ``--clients``
concurrent clients for ``--duration`` seconds. Each client loops over a realistic mix without
think time: vector tiles of buildings, cells and roads at z14-16 inside the city's bounds (random
tiles, so the tile cache both hits and misses; a quarter of repeats revalidate with their ETag),
cell cards of random cells that exist, and OGC API Features pages of buildings and events with a
random bbox. Two clients in three are anonymous (the public map: general data only); the third
signs in with a viewer token and also reads events. One flood simulation is started during the
run and polled to completion, and a writer dispatches a task through the API every
``--write-every`` seconds, both with an operator token (users made with `twin users add`).

``--restart-db-at S`` stops the database (fast shutdown) S seconds into the run, keeps it down
for ``--down-for`` seconds and starts it again, then reports: the requests that failed during
the outage and their statuses (expected: 503, no hangs), the longest request (bounded by the pool
timeout), the time from the database being back to the first successful request, and whether
every write answered 2xx is in the database afterwards.

    .venv/bin/python benchmarks/load.py --clients 50 --duration 60 [--restart-db-at 20] [--json]

The cluster lives under ``--cluster-dir`` (default: a new temporary directory, removed at the
end; name one to keep the built city between runs). ``--url`` loads an existing twin database
instead; it cannot be restarted unless ``--cluster-dir`` names the private cluster holding it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg

from tiles import tiles_covering  # benchmarks/tiles.py (scripts run from their folder)
from twin.db.cluster import LocalCluster

TILE_LAYERS = ("buildings", "cells", "roads")
PUBLIC_COLLECTIONS = ("buildings", "parcels")
VIEWER_COLLECTIONS = ("buildings", "events")
OK = {200, 201, 202, 204, 304}


# ------------------------------------------------------------------------------ set-up
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def twin_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(extra)
    return env


def prepare_database(
    args: argparse.Namespace, cluster_dir: Path
) -> tuple[str, LocalCluster | None]:
    """The twin's URL (demo built when missing) and the cluster that may be restarted."""
    if args.url:
        cluster = LocalCluster(cluster_dir) if args.cluster_dir else None
        return args.url, cluster
    cluster = LocalCluster(cluster_dir)
    state, _ = cluster.start()
    url = state.url
    with psycopg.connect(url) as c:
        row = c.execute("SELECT to_regclass('twin.building') IS NOT NULL").fetchone()
        built = bool(row and row[0])
        if built:
            built = c.execute("SELECT 1 FROM twin.building LIMIT 1").fetchone() is not None
    if not built:
        print(f"building the {args.size} demo (seed {args.seed}) in {cluster_dir} ...", flush=True)
        t0 = time.perf_counter()
        r = subprocess.run(
            [sys.executable, "-m", "twin", "demo", "--size", args.size, "--seed", str(args.seed),
             "--no-serve", "--storm-duration", "10min", "--json"],
            env=twin_env({"TWIN_DATA_DIR": str(cluster_dir)}), capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            sys.exit(f"twin demo failed:\n{r.stderr[-3000:]}")
        print(f"  built in {time.perf_counter() - t0:.0f} s", flush=True)
    return url, cluster


def start_server(
    url: str, data_dir: Path, port: int, pool_timeout_s: float, log: Path
) -> subprocess.Popen:
    env = twin_env(
        {
            "TWIN_DATABASE_URL": url,
            "TWIN_DATA_DIR": str(data_dir),
            "TWIN_POOL_TIMEOUT_S": str(pool_timeout_s),
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port), "--log-level", "error"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200:
                return proc
        if proc.poll() is not None:
            sys.exit(f"twin serve exited with {proc.returncode}")
        time.sleep(0.2)
    proc.terminate()
    sys.exit("twin serve did not become healthy within 60 s")


def user_token(url: str, role: str) -> str:
    """A new user of ``role`` for the whole city, through the real CLI; its token."""
    name = f"load-{role}-{os.getpid()}-{int(time.time() * 1000)}"
    r = subprocess.run(
        [sys.executable, "-m", "twin", "users", "add", name, "--role", role, "--json"],
        env=twin_env({"TWIN_DATABASE_URL": url}), capture_output=True, text=True,
    )  # fmt: skip
    if r.returncode != 0:
        sys.exit(f"twin users add failed:\n{r.stderr[-2000:]}")
    return str(json.loads(r.stdout)["token"])


@dataclass
class Inputs:
    bounds: list[float]
    cells: list[str]
    area_code: str
    viewer: dict[str, str] = field(default_factory=dict)  # Authorization header
    operator: dict[str, str] = field(default_factory=dict)
    tiles: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)  # (z, x, y)


def discover(base: str, url: str) -> Inputs:
    tj = httpx.get(f"{base}/tiles/buildings.json", timeout=30).json()
    bounds = [float(v) for v in tj["bounds"]]
    bbox = ",".join(f"{v:.6f}" for v in bounds)
    r = httpx.get(f"{base}/api/cells", params={"bbox": bbox, "res": 9}, timeout=30)
    r.raise_for_status()
    cells = [c["h3"] if isinstance(c, dict) else c for c in r.json()["cells"]]
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT code FROM twin.admin_area WHERE level = 'grid' ORDER BY id LIMIT 1"
        ).fetchone()
    if not cells or row is None:
        sys.exit("the database holds no cells or no grid patch: is it a twin?")
    inputs = Inputs(bounds=bounds, cells=cells, area_code=row[0])
    inputs.viewer = {"Authorization": f"Bearer {user_token(url, 'viewer')}"}
    inputs.operator = {"Authorization": f"Bearer {user_token(url, 'operator')}"}
    inputs.tiles = {z: tiles_covering((bounds[0], bounds[1], bounds[2], bounds[3]), z)
                    for z in (14, 15, 16)}  # fmt: skip
    return inputs


# ------------------------------------------------------------------------------ the load
@dataclass
class Sample:
    kind: str
    start: float  # seconds since the run started
    end: float
    status: int  # 0: exception (connection error, timeout)
    error: str = ""


@dataclass
class Run:
    t0: float
    samples: list[Sample] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)
    restart: dict[str, float] = field(default_factory=dict)
    sim: dict[str, Any] = field(default_factory=dict)
    seen_tiles: set[str] = field(default_factory=set)
    etags: dict[str, str] = field(default_factory=dict)

    def now(self) -> float:
        return time.perf_counter() - self.t0


async def timed(
    run: Run, client: httpx.AsyncClient, kind: str, method: str, url: str, **kw: Any
) -> httpx.Response | None:
    start = run.now()
    try:
        r = await client.request(method, url, **kw)
    except httpx.HTTPError as exc:
        run.samples.append(Sample(kind, start, run.now(), 0, f"{type(exc).__name__}: {exc}"))
        return None
    run.samples.append(Sample(kind, start, run.now(), r.status_code))
    return r


async def client_loop(
    run: Run,
    client: httpx.AsyncClient,
    inputs: Inputs,
    stop_at: float,
    rng: random.Random,
    signed_in: bool,
) -> None:
    auth = inputs.viewer if signed_in else {}
    collections = VIEWER_COLLECTIONS if signed_in else PUBLIC_COLLECTIONS
    while run.now() < stop_at:
        u = rng.random()
        if u < 0.6:
            layer = rng.choice(TILE_LAYERS)
            z = rng.choice((14, 15, 16))
            _, x, y = rng.choice(inputs.tiles[z])
            path = f"/tiles/{layer}/{z}/{x}/{y}.mvt"
            headers = {"Accept-Encoding": "gzip", **auth}
            key = f"{signed_in}:{path}"
            repeat = key in run.seen_tiles
            run.seen_tiles.add(key)
            if repeat and key in run.etags and rng.random() < 0.25:
                headers["If-None-Match"] = run.etags[key]
            kind = "tile (repeat)" if repeat else "tile (first)"
            r = await timed(run, client, kind, "GET", path, headers=headers)
            if r is not None and "etag" in r.headers:
                run.etags[key] = r.headers["etag"]
        elif u < 0.8:
            cell = rng.choice(inputs.cells)
            await timed(run, client, "cell card", "GET", f"/api/cells/{cell}", headers=auth)
        else:
            minx, miny, maxx, maxy = inputs.bounds
            w, h = (maxx - minx) * rng.uniform(0.05, 0.3), (maxy - miny) * rng.uniform(0.05, 0.3)
            x, y = rng.uniform(minx, maxx - w), rng.uniform(miny, maxy - h)
            bbox = f"{x:.6f},{y:.6f},{x + w:.6f},{y + h:.6f}"
            coll = rng.choice(collections)
            await timed(
                run, client, "features", "GET", f"/collections/{coll}/items",
                params={"bbox": bbox, "limit": 50}, headers=auth,
            )  # fmt: skip


async def writer(
    run: Run, client: httpx.AsyncClient, inputs: Inputs, stop_at: float, every_s: float
) -> None:
    """Dispatch tasks with unique titles; every answer is kept to check nothing acked is lost."""
    n = 0
    tag = f"load-{os.getpid()}-{int(time.time())}"
    while run.now() < stop_at:
        n += 1
        title = f"{tag}-{n}"
        body = {"title": title, "area": inputs.area_code, "priority": 4}
        r = await timed(
            run, client, "write (task)", "POST", "/api/tasks", json=body, headers=inputs.operator
        )
        run.writes.append(
            {"title": title, "status": 0 if r is None else r.status_code, "at": run.now()}
        )
        await asyncio.sleep(every_s)


async def simulation(
    run: Run,
    client: httpx.AsyncClient,
    inputs: Inputs,
    start_at: float,
    stop_at: float,
    grace_s: float,
) -> None:
    await asyncio.sleep(max(0.0, start_at - run.now()))
    body = {"return_period_years": 20, "duration_min": 10, "after_min": 10}
    auth = inputs.operator
    r = await timed(
        run, client, "simulation start", "POST", "/api/simulations/flood", json=body, headers=auth
    )
    if r is None or r.status_code != 202:
        run.sim = {"started": False, "status": None if r is None else r.status_code}
        return
    run_id = r.json()["id"]
    run.sim = {"started": True, "id": run_id, "started_at_s": round(run.now(), 1)}
    # Poll until it finishes (even past the end of the load: its duration is worth knowing).
    while run.now() < stop_at + grace_s:
        await asyncio.sleep(2)
        p = await timed(
            run, client, "simulation poll", "GET", f"/api/simulations/{run_id}", headers=auth
        )
        if p is not None and p.status_code == 200:
            status = p.json()["status"]
            run.sim["status"] = status
            if status in ("succeeded", "failed"):
                run.sim["finished_at_s"] = round(run.now(), 1)
                return


async def restarter(run: Run, cluster: LocalCluster, at: float, down_for: float) -> None:
    await asyncio.sleep(max(0.0, at - run.now()))
    run.restart["stop_begin_s"] = run.now()
    await asyncio.to_thread(cluster.stop)
    run.restart["down_s"] = run.now()
    await asyncio.sleep(down_for)
    run.restart["start_begin_s"] = run.now()
    await asyncio.to_thread(cluster.start)
    run.restart["up_s"] = run.now()


async def load(
    base: str,
    inputs: Inputs,
    args: argparse.Namespace,
    cluster: LocalCluster | None,
) -> Run:
    run = Run(t0=time.perf_counter())
    stop_at = float(args.duration)
    # Idle connections expire on the client before uvicorn's 5 s keep-alive timeout closes them:
    # with equal timeouts a request can go out on a connection the server is closing (ReadError).
    limits = httpx.Limits(
        max_connections=args.clients + 4,
        max_keepalive_connections=args.clients + 4,
        keepalive_expiry=2.0,
    )
    timeout = httpx.Timeout(args.client_timeout)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout) as client:
        jobs = [
            client_loop(
                run, client, inputs, stop_at, random.Random(args.seed * 1000 + i), i % 3 == 2
            )
            for i in range(args.clients)
        ]
        jobs.append(writer(run, client, inputs, stop_at, args.write_every))
        jobs.append(simulation(run, client, inputs, min(5.0, stop_at / 4), stop_at, args.sim_grace))
        if args.restart_db_at is not None and cluster is not None:
            jobs.append(restarter(run, cluster, args.restart_db_at, args.down_for))
        await asyncio.gather(*jobs)
    return run


# ------------------------------------------------------------------------------ results
def stats(samples: list[Sample], seconds: float) -> dict[str, Any]:
    lat = np.array([(s.end - s.start) * 1000 for s in samples]) if samples else np.zeros(1)
    errors = [s for s in samples if s.status not in OK]
    return {
        "count": len(samples),
        "errors": len(errors),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "max_ms": round(float(lat.max()), 1),
        "per_s": round(len(samples) / seconds, 1),
    }


def lost_writes(url: str, writes: list[dict[str, Any]]) -> dict[str, Any]:
    titles = [w["title"] for w in writes]
    with psycopg.connect(url) as c:
        rows = c.execute("SELECT title FROM twin.task WHERE title = ANY(%s)", (titles,)).fetchall()
    present = {r[0] for r in rows}
    acked = [w for w in writes if w["status"] in OK]
    failed = [w for w in writes if w["status"] not in OK]
    return {
        "writes": len(writes),
        "acknowledged": len(acked),
        "acknowledged_missing": sorted(w["title"] for w in acked if w["title"] not in present),
        "failed": len(failed),
        "failed_but_present": sum(1 for w in failed if w["title"] in present),
    }


def summarise(run: Run, args: argparse.Namespace, url: str) -> dict[str, Any]:
    seconds = float(args.duration)
    in_run = [s for s in run.samples if s.start < seconds]
    kinds = sorted({s.kind for s in in_run})
    load_kinds = [k for k in kinds if k.startswith(("tile", "cell", "features"))]
    result: dict[str, Any] = {
        "clients": args.clients,
        "duration_s": args.duration,
        "per_kind": {k: stats([s for s in in_run if s.kind == k], seconds) for k in kinds},
        "reads": stats([s for s in in_run if s.kind in load_kinds], seconds),
        "overall": stats(in_run, seconds),
        "distinct_tiles": len(run.seen_tiles),
        "simulation": run.sim,
        "writes": lost_writes(url, run.writes),
        "error_statuses": {},
    }
    for s in in_run:
        if s.status not in OK:
            key = str(s.status) if s.status else s.error.split(":")[0]
            result["error_statuses"][key] = result["error_statuses"].get(key, 0) + 1
    result["error_samples"] = [
        {"kind": s.kind, "at_s": round(s.start, 2), "ms": round((s.end - s.start) * 1000, 1),
         "status": s.status, "error": s.error[:200]}
        for s in in_run if s.status not in OK
    ][:20]  # fmt: skip
    if run.restart:
        r = run.restart
        up = r["up_s"]
        ok_after = [s.end for s in run.samples if s.end > up and s.status in OK]
        first_ok = min(ok_after) if ok_after else None
        window_end = first_ok if first_ok is not None else seconds
        hit = [s for s in run.samples if s.end > r["stop_begin_s"] and s.start < window_end]
        failed = [s for s in hit if s.status not in OK]
        statuses: dict[str, int] = {}
        for s in failed:
            key = str(s.status) if s.status else s.error.split(":")[0]
            statuses[key] = statuses.get(key, 0) + 1
        outside = [
            s for s in in_run
            if s.status not in OK and not (s.end > r["stop_begin_s"] and s.start < window_end)
        ]  # fmt: skip
        result["restart"] = {
            "stop_at_s": round(r["stop_begin_s"], 2),
            "stop_took_s": round(r["down_s"] - r["stop_begin_s"], 2),
            "start_took_s": round(r["up_s"] - r["start_begin_s"], 2),
            "db_unavailable_s": round(up - r["stop_begin_s"], 2),
            "requests_during_outage": len(hit),
            "failed_during_outage": len(failed),
            "failed_statuses": statuses,
            "max_latency_during_outage_ms": round(
                max(((s.end - s.start) * 1000 for s in hit), default=0.0), 1
            ),
            "recovery_after_db_up_s": None if first_ok is None else round(first_ok - up, 2),
            "errors_outside_outage": len(outside),
        }
    return result


def print_table(res: dict[str, Any]) -> None:
    print(f"\n{res['clients']} clients for {res['duration_s']} s; {res['distinct_tiles']} tiles")
    head = f"{'kind':<18}{'count':>8}{'errors':>8}{'p50 ms':>9}{'p95 ms':>9}"
    print(head + f"{'p99 ms':>9}{'max ms':>9}{'req/s':>8}")
    rows = [*res["per_kind"].items(), ("reads (all)", res["reads"]), ("overall", res["overall"])]
    for kind, s in rows:
        print(
            f"{kind:<18}{s['count']:>8}{s['errors']:>8}{s['p50_ms']:>9}{s['p95_ms']:>9}"
            f"{s['p99_ms']:>9}{s['max_ms']:>9}{s['per_s']:>8}"
        )
    print(f"errors by status: {res['error_statuses'] or 'none'}")
    print(f"simulation: {res['simulation']}")
    print(f"server log: {res['server_log']}")
    print(f"writes: {res['writes']}")
    if "restart" in res:
        print("restart: " + json.dumps(res["restart"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--size", default="small", help="demo size to build (default small)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--url", help="an existing twin database instead of building one")
    ap.add_argument("--cluster-dir", type=Path, help="the cluster's directory (kept, stopped)")
    ap.add_argument("--restart-db-at", type=float, help="restart the database at this second")
    ap.add_argument("--down-for", type=float, default=3.0, help="seconds the database stays down")
    ap.add_argument("--pool-timeout", type=float, default=5.0, help="TWIN_POOL_TIMEOUT_S")
    ap.add_argument("--client-timeout", type=float, default=30.0, help="per request (s)")
    ap.add_argument("--write-every", type=float, default=0.25, help="seconds between writes")
    ap.add_argument("--sim-grace", type=float, default=60.0, help="poll the run this long after")
    ap.add_argument("--json", action="store_true", help="print the result as JSON")
    args = ap.parse_args()
    if args.restart_db_at is not None and args.url and not args.cluster_dir:
        ap.error("--restart-db-at with --url needs --cluster-dir (the cluster to restart)")

    cluster_dir = args.cluster_dir or Path(tempfile.mkdtemp(prefix="twin-load-"))
    cluster: LocalCluster | None = None
    server: subprocess.Popen | None = None
    try:
        url, cluster = prepare_database(args, cluster_dir)
        port = free_port()
        log = Path(tempfile.mkstemp(prefix="twin-load-serve-", suffix=".log")[1])
        server = start_server(url, cluster_dir, port, args.pool_timeout, log)
        base = f"http://127.0.0.1:{port}"
        inputs = discover(base, url)
        res = asyncio.run(load(base, inputs, args, cluster))
        if cluster is not None and not LocalCluster(cluster_dir).status().get("accepting"):
            cluster.start()
        result = summarise(res, args, url)
        result["pool_timeout_s"] = args.pool_timeout
        result["server"] = "twin serve (1 uvicorn process)"
        text = log.read_text(errors="replace")
        result["server_log"] = {
            "path": str(log),
            "answered_503": text.count("-> 503"),
            "tracebacks": text.count("Traceback (most recent call last)"),
            "asgi_exceptions": text.count("Exception in ASGI application"),
        }
    finally:
        if server is not None:
            server.terminate()
            server.wait(30)
        if not args.url and cluster is not None:
            cluster.stop()  # a named cluster keeps its data and starts again on the next run
            if not args.cluster_dir:
                shutil.rmtree(cluster_dir, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
