"""Tile serving throughput: dynamic (no cache) and cached, per layer and zoom.

Starts `twin serve` (one process) on the twin's database, requests every tile covering the city
at each zoom with a fixed number of concurrent clients, and reports tiles/s and p50/p99
latency. ``--tipg URL`` adds the same requests against a running tipg server for comparison
(tile URL ``{url}/collections/twin.{table}/tiles/WebMercatorQuad/{z}/{x}/{y}``).

    .venv/bin/python benchmarks/tiles.py [--zooms 14 15 16] [--concurrency 8] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import psycopg

from twin.db.engine import database_url
from twin.settings import Settings

TABLE = {"buildings": "building", "cells": "cell_stats"}


def tiles_covering(bounds: tuple[float, float, float, float], z: int) -> list[tuple[int, int, int]]:
    def xy(lon: float, lat: float) -> tuple[int, int]:
        n = 2**z
        return int((lon + 180) / 360 * n), int(
            (1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n
        )

    x0, y1 = xy(bounds[0], bounds[1])
    x1, y0 = xy(bounds[2], bounds[3])
    return [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]


async def run(urls: list[str], concurrency: int) -> dict[str, float]:
    lat: list[float] = []
    queue: asyncio.Queue[str] = asyncio.Queue()
    for u in urls:
        queue.put_nowait(u)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        limits=limits, timeout=60, headers={"Accept-Encoding": "gzip"}
    ) as client:

        async def worker() -> None:
            while not queue.empty():
                u = queue.get_nowait()
                t = time.perf_counter()
                r = await client.get(u)
                if r.status_code not in (200, 204):
                    raise SystemExit(f"{u}: {r.status_code} {r.text[:200]}")
                lat.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    a = np.array(lat) * 1000
    return {
        "tiles": len(urls),
        "tiles_per_s": round(len(urls) / wall, 1),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
    }


def serve(port: int, cache_mb: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWIN_TILE_CACHE_MB": str(cache_mb), "TWIN_POOL_MAX_SIZE": "8"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zooms", type=int, nargs="+", default=[14, 15, 16])
    ap.add_argument("--layers", nargs="+", default=["buildings", "cells"])
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--tipg", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with psycopg.connect(database_url(Settings())) as c:
        row = c.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
            " (SELECT ST_Extent(geom) e FROM twin.admin_area WHERE level = 'city') x"
        ).fetchone()
    assert row is not None and row[0] is not None, (
        "load a city first (twin demo --size medium --no-serve)"
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = []
    for mode, cache_mb in (("dynamic", 0), ("cached", 512)):
        proc = serve(port, cache_mb)
        try:
            for layer in args.layers:
                for z in args.zooms:
                    urls = [
                        f"http://127.0.0.1:{port}/tiles/{layer}/{z}/{x}/{y}.mvt"
                        for z, x, y in tiles_covering(row, z)
                    ]
                    if mode == "cached":
                        asyncio.run(run(urls, args.concurrency))  # warm
                    res = asyncio.run(run(urls, args.concurrency))
                    results.append({"server": "twin", "mode": mode, "layer": layer, "z": z, **res})
                    print(json.dumps(results[-1]), flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    if args.tipg:
        for layer in args.layers:
            for z in args.zooms:
                urls = [
                    f"{args.tipg}/collections/twin.{TABLE[layer]}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                    for z, x, y in tiles_covering(row, z)
                ]
                res = asyncio.run(run(urls, args.concurrency))
                results.append({"server": "tipg", "mode": "dynamic", "layer": layer, "z": z, **res})
                print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
