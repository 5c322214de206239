"""Tile throughput with 0, 1 and 2 read replicas (``TWIN_READ_DATABASE_URLS``).

Builds a throwaway private cluster of its own in a temporary directory (``twin db start
--replica 2``, the shared one is left alone), fills it with a synthetic grid of building
footprints, then for each replica count starts `twin serve` with the tile cache off (every
tile a PostGIS query: the work replicas take over) and requests the building tiles covering
the grid from ``--concurrency`` connections for ``--rounds`` passes. Reports tiles/s, p50/p99
latency, and how the transactions split between the primary and the replicas (from
``pg_stat_database`` on each server), so the routing itself is visible.

On a machine with few cores the primary, the replicas, the API and the client share them:
the mechanism shows (queries move to the replicas), a gain in tiles/s needs cores (or hosts)
for the replicas to run on.

    .venv/bin/python benchmarks/bench_replicas.py [--buildings 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from benchmarks.tiles import run, tiles_covering
from twin.db.cluster import LocalCluster
from twin.db.migrate import upgrade

CENTER = (120.16, 30.27)
FILL_SQL = (
    "INSERT INTO twin.building (use, height_m, floors, geom)"
    " SELECT 'residential', 3 * (1 + i %% 10), 1 + i %% 10, ST_Multi(ST_Transform(ST_Expand("
    " ST_Translate(ST_Transform(ST_SetSRID(ST_Point(%(lon)s, %(lat)s), 4326), 3857),"
    " (i %% %(side)s) * 30.0, (i / %(side)s) * 30.0), 10), 4326))"
    " FROM generate_series(0, %(n)s - 1) i"
)
BUMP_SQL = (
    "INSERT INTO twin.layer_version (layer) VALUES ('building') ON CONFLICT (layer)"
    " DO UPDATE SET version = twin.layer_version.version + 1"
)
XACTS_SQL = "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = 'twin'"


def twin(data: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PG"))}
    env["TWIN_DATA_DIR"] = str(data)
    return subprocess.run(
        [sys.executable, "-m", "twin", *args], env=env, capture_output=True, text=True, check=True
    ).stdout


def serve(
    data: Path, primary: str, replicas: list[str], port: int, workers: int
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWIN_", "PG"))}
    env.update(
        TWIN_DATA_DIR=str(data), TWIN_DATABASE_URL=primary, TWIN_TILE_CACHE_MB="0",
        TWIN_READ_DATABASE_URLS=",".join(replicas), TWIN_POOL_MAX_SIZE="8",
        TWIN_SENSE_MAINTENANCE_INTERVAL_S="0",
    )  # fmt: skip
    cmd = ["serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", *cmd], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(150):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def xacts(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as c:
        row = c.execute(XACTS_SQL).fetchone()
    return int(row[0]) if row else 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=20_000)
    ap.add_argument("--zoom", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3, help="passes over the tiles per run")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="twin serve processes")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="twin-bench-replicas-")) / "data"
    cluster = LocalCluster(data)
    try:
        out = json.loads(twin(data, "db", "start", "--replica", "2", "--json"))
        primary, replicas = out["url"], [r["url"] for r in out["replicas"]]
        upgrade(primary)
        side = int(args.buildings**0.5) + 1
        with psycopg.connect(primary) as c:
            c.execute(FILL_SQL, {"lon": CENTER[0], "lat": CENTER[1], "side": side,
                                 "n": args.buildings})  # fmt: skip
            c.execute(BUMP_SQL)
            c.execute("ANALYZE twin.building")
            row = c.execute(
                "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)"
                " FROM (SELECT ST_Extent(geom) e FROM twin.building) x"
            ).fetchone()
        assert row is not None
        n = args.buildings
        for url in replicas:  # every replica has the buildings before any run
            while True:
                with psycopg.connect(url, autocommit=True) as c:
                    got = c.execute("SELECT count(*) FROM twin.building").fetchone()
                if got and got[0] == n:
                    break
                time.sleep(0.2)
        paths = [f"/tiles/buildings/{z}/{x}/{y}.mvt" for z, x, y in tiles_covering(row, args.zoom)]
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        results = []
        for count in (0, 1, 2):
            proc = serve(data, primary, replicas[:count], port, args.workers)
            base = f"http://127.0.0.1:{port}"
            try:
                asyncio.run(run([base + p for p in paths], args.concurrency))  # warm-up pass
                before = [xacts(u) for u in [primary, *replicas]]
                res = asyncio.run(run([base + p for p in paths] * args.rounds, args.concurrency))
                time.sleep(1.5)  # backends report their statistics within a second of idling
                after = [xacts(u) for u in [primary, *replicas]]
            finally:
                proc.terminate()
                proc.wait(10)
            # Each count includes this script's own probe (one transaction per server).
            split = [a - b for a, b in zip(after, before, strict=True)]
            results.append({"replicas": count, "zoom": args.zoom, **res,
                            "xacts_primary": split[0], "xacts_replicas": split[1:]})  # fmt: skip
            print(json.dumps(results[-1]), flush=True)
        if not args.json:
            print(f"\n{'replicas':>8} {'tiles':>6} {'tiles/s':>8} {'p50 ms':>7} {'p99 ms':>7}"
                  "  transactions primary / replicas")  # fmt: skip
            for r in results:
                print(f"{r['replicas']:>8} {r['tiles']:>6} {r['tiles_per_s']:>8} "
                      f"{r['p50_ms']:>7} {r['p99_ms']:>7}  {r['xacts_primary']} / "
                      f"{r['xacts_replicas']}")  # fmt: skip
            print(f"({os.cpu_count()} cores shared by the primary, 2 replicas, {args.workers} "
                  "API processes and the client)")  # fmt: skip
    finally:
        twin(data, "db", "stop")
        state = cluster.load()
        if state is not None:
            shutil.rmtree(Path(state.pgdata).parent, ignore_errors=True)
        shutil.rmtree(data.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
