"""City scale: the stages of issue 21 on a twin already built (`twin demo --size large`).

    TWIN_DATABASE_URL=postgresql://.../twin_large .venv/bin/python benchmarks/bench_city_scale.py

Measures, each against its goal, and prints one JSON object per stage:

- ``twin grid refresh`` (full, every configured resolution), wall time of the command;
- ``twin risk compute`` (every layer and the one map), wall time of the command;
- overview tiles: every tile of every public layer covering the city at z8-z11, the largest
  tile in bytes (goal: none over 500 KB) and how many there were;
- dynamic building tiles at z14 (tile cache off): p50/p99 with 8 concurrent clients;
- ``/api/cells`` over the whole city (res 7) and the city cockpit: p50/p99 with 8 clients; the
  cockpit also with its answers not shared (``TWIN_COCKPIT_CACHE_SECONDS=0``), with 8 clients
  and with one.

Each HTTP stage starts its own `twin serve` on a free port. The machine is shared: quote
ratios and say what else ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiles import run, serve, tiles_covering
from twin.db.engine import database_url
from twin.settings import Settings
from twin.tiles.catalog import LAYERS

OVERVIEW_ZOOMS = (8, 9, 10, 11)
MAX_TILE_BYTES = 500_000


def emit(d: dict[str, object]) -> None:
    print(json.dumps(d), flush=True)


def _twin(*args: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "twin", *args], check=True, capture_output=True)
    return round(time.perf_counter() - t, 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _sizes(base: str, paths: list[str], concurrency: int) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:

        async def worker() -> None:
            while not queue.empty():
                p = queue.get_nowait()
                r = await client.get(p, headers={"Accept-Encoding": "identity"})
                if r.status_code == 401:  # a layer the public may not see: not a public tile
                    continue
                if r.status_code not in (200, 204):
                    raise SystemExit(f"{p}: {r.status_code} {r.text[:200]}")
                out.append((p, len(r.content)))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return out


def _latency(urls: list[str], concurrency: int) -> dict[str, float]:
    res = asyncio.run(run(urls, concurrency))
    return {k: res[k] for k in ("tiles", "tiles_per_s", "p50_ms", "p99_ms")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip", nargs="*", default=[], help="stages to leave out: grid risk http")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=40, help="requests per API route")
    args = ap.parse_args()
    settings = Settings()
    with psycopg.connect(database_url(settings)) as c:
        row = c.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
            " (SELECT ST_Extent(geom) e FROM twin.admin_area WHERE level = 'city') x"
        ).fetchone()
        counts = c.execute(
            "SELECT (SELECT count(*) FROM twin.building), (SELECT count(*) FROM twin.person),"
            " (SELECT count(*) FROM twin.cell_stats), pg_database_size(current_database())"
        ).fetchone()
        city = c.execute("SELECT id FROM twin.admin_area WHERE level = 'city' LIMIT 1").fetchone()
    assert row is not None and row[0] is not None and counts is not None and city is not None
    emit(
        {
            "stage": "twin",
            "buildings": counts[0],
            "people": counts[1],
            "cells": counts[2],
            "database_mb": round(counts[3] / 2**20),
        }
    )
    if "grid" not in args.skip:
        s = _twin("grid", "refresh", "--json")
        emit({"stage": "grid refresh (full)", "wall_s": s, "goal_s": 60})
    if "risk" not in args.skip:
        s = _twin("risk", "compute", "--json")
        emit({"stage": "risk compute", "wall_s": s, "goal_s": 30})
    if "http" in args.skip:
        return
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = serve(port, 0, 1)  # tile cache off: every tile is built
    try:
        for z in OVERVIEW_ZOOMS:
            layers = [lyr.id for lyr in LAYERS.values() if lyr.minzoom <= z]
            paths = [
                f"/tiles/{layer}/{z}/{x}/{y}.mvt"
                for layer in layers
                for _, x, y in tiles_covering(row, z)
            ]
            t = time.perf_counter()
            sizes = asyncio.run(_sizes(base, paths, args.concurrency))
            biggest = max(sizes, key=lambda s: s[1])
            emit(
                {
                    "stage": f"overview tiles z{z}",
                    "tiles": len(sizes),
                    "layers": layers,
                    "max_bytes": biggest[1],
                    "max_tile": biggest[0],
                    "over_500KB": sum(n > MAX_TILE_BYTES for _, n in sizes),
                    "wall_s": round(time.perf_counter() - t, 1),
                }
            )
        tiles = tiles_covering(row, 14)
        rng = np.random.default_rng(0)
        pick = [tiles[i] for i in rng.choice(len(tiles), size=min(400, len(tiles)), replace=False)]
        urls = [f"{base}/tiles/buildings/{z}/{x}/{y}.mvt" for z, x, y in pick]
        emit(
            {
                "stage": "buildings z14, dynamic, 8 clients",
                "goal_p99_ms": 100,
                **_latency(urls, args.concurrency),
            }
        )
        bbox = ",".join(f"{v:.5f}" for v in row)
        routes = {
            "/api/cells (whole city, res 7)": f"{base}/api/cells?bbox={bbox}&res=7",
            "/api/cockpit (city)": f"{base}/api/cockpit?level=city",
        }
        for name, url in routes.items():
            r = httpx.get(url, timeout=60)
            if r.status_code != 200:
                raise SystemExit(f"{url}: {r.status_code} {r.text[:200]}")
            emit(
                {
                    "stage": name,
                    "goal_p99_ms": 200,
                    **_latency([url] * args.repeat, args.concurrency),
                }
            )
    finally:
        proc.terminate()
        proc.wait(10)
    # The cockpit computed for every request (answers not shared): what a request that finds
    # no answer younger than TWIN_COCKPIT_CACHE_SECONDS waits, with 8 clients at once.
    proc = serve(port, 0, 1, {"TWIN_COCKPIT_CACHE_SECONDS": "0"})
    try:
        url = f"{base}/api/cockpit?level=city"
        httpx.get(url, timeout=60)
        emit(
            {
                "stage": "/api/cockpit (city), not shared",
                "goal_p99_ms": 200,
                **_latency([url] * args.repeat, args.concurrency),
            }
        )
        one = [url] * 10
        emit({"stage": "/api/cockpit (city), not shared, 1 client", **_latency(one, 1)})
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
