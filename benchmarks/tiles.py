"""Tile serving throughput: dynamic (no cache) and cached, per layer and zoom.

Starts `twin serve` (``--workers`` processes) on the twin's database and loads it with the tiles
covering the city at each zoom from a fixed number of concurrent connections: with wrk (a
compiled client, when installed) cycling through them for ``--seconds``, else with httpx
requesting each tile once. Reports tiles/s and p50/p99 latency. ``--tipg URL`` adds the same
load against a running tipg server for comparison (tile URL
``{url}/collections/twin.{table}/tiles/WebMercatorQuad/{z}/{x}/{y}``), and a summary table.

    .venv/bin/python benchmarks/tiles.py [--zooms 14 15 16] [--concurrency 8] [--tipg URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
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
        "client": "httpx",
    }


WRK_SCRIPT = """
local paths = {%s}
local i = 0
request = function()
  i = i %% #paths + 1
  return wrk.format("GET", paths[i], {["Accept-Encoding"] = "gzip"})
end
"""


def run_wrk(base: str, paths: list[str], seconds: float, connections: int) -> dict[str, float]:
    """Cycle through ``paths`` with wrk (a compiled client: at thousands of tiles/s a Python
    client would be measuring itself). One client thread, so the server keeps a core."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(WRK_SCRIPT % ", ".join(f'"{u}"' for u in paths))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", f.name, base],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(f.name)
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors:\n{out}")
    unit_ms = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    lat = {
        q: float(v) * unit_ms[u]
        for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)
    }
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate is not None, out
    return {
        "tiles": len(paths),
        "tiles_per_s": round(float(rate.group(1)), 1),
        "p50_ms": round(lat["50"], 2),
        "p99_ms": round(lat["99"], 2),
        "client": "wrk",
    }


def serve(
    port: int, cache_mb: int, workers: int, env_extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TWIN_TILE_CACHE_MB": str(cache_mb), "TWIN_POOL_MAX_SIZE": "8",
           **(env_extra or {})}  # fmt: skip
    cmd = ["serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", *cmd],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(600):  # up to two minutes: start-up is slow on a loaded machine
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
    ap.add_argument("--workers", type=int, default=1, help="twin serve processes")
    ap.add_argument(
        "--client",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator (wrk when installed: apt-get install wrk); httpx requests each "
        "tile once, wrk cycles through the tiles for --seconds",
    )
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each wrk run")
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

    def measure(server: str, mode: str, layer: str, z: int, base: str, paths: list[str]) -> None:
        if args.client == "wrk":
            res = run_wrk(base, paths, args.seconds, args.concurrency)
        else:
            res = asyncio.run(run([base + p for p in paths], args.concurrency))
        results.append({"server": server, "mode": mode, "layer": layer, "z": z, **res})
        print(json.dumps(results[-1]), flush=True)

    for mode, cache_mb in (("dynamic", 0), ("cached", 512)):
        proc = serve(port, cache_mb, args.workers)
        base = f"http://127.0.0.1:{port}"
        try:
            for layer in args.layers:
                for z in args.zooms:
                    paths = [
                        f"/tiles/{layer}/{z}/{x}/{y}.mvt" for z, x, y in tiles_covering(row, z)
                    ]
                    if mode == "cached":  # warm every process's cache (each has its own)
                        for _ in range(1 if args.workers == 1 else 3 * args.workers):
                            asyncio.run(run([base + p for p in paths], args.concurrency))
                    measure("twin", mode, layer, z, base, paths)
        finally:
            proc.terminate()
            proc.wait(10)
    if args.tipg:
        for layer in args.layers:
            for z in args.zooms:
                paths = [
                    f"/collections/twin.{TABLE[layer]}/tiles/WebMercatorQuad/{z}/{x}/{y}"
                    for z, x, y in tiles_covering(row, z)
                ]
                measure("tipg", "dynamic", layer, z, args.tipg.rstrip("/"), paths)
    if args.tipg:
        print("\nlayer      z   twin dynamic  tipg   ratio  twin cached  (tiles/s)")
        rate = {(r["server"], r["mode"], r["layer"], r["z"]): r["tiles_per_s"] for r in results}
        for layer in args.layers:
            for z in args.zooms:
                ours, theirs = rate["twin", "dynamic", layer, z], rate["tipg", "dynamic", layer, z]
                print(f"{layer:10} {z:2} {ours:12.1f} {theirs:7.1f} {ours / theirs:6.2f}x"
                      f" {rate['twin', 'cached', layer, z]:11.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
