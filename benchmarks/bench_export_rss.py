"""Peak memory (maximum resident set size) of bulk exports: ``twin export`` per collection and
format, each in a fresh process measured by ``/usr/bin/time -v``; the API server while it
streams the same downloads (``GET /collections/{id}/items?f=...``, the server's peak RSS reset
before each through ``/proc/<pid>/clear_refs``); and the exporter on synthetic rows (default
1 M polygons with ten numeric properties, read from ``generate_series`` through the same
cursor, batches and writers), to show that memory does not grow with the rows.

Goal (issue 22): under 300 MB whatever the table's size. Needs a database holding a demo
city (``twin demo --size medium --no-serve``) in TWIN_DATABASE_URL, and GNU time.

    TWIN_DATABASE_URL=postgresql://... .venv/bin/python benchmarks/bench_export_rss.py
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

FORMATS = ("parquet", "fgb", "gpkg", "csv")
CITY = ("cityjson", "cityjsonseq")
#: A query shaped like an export row (fid, WKB, bounds, properties), N rows, no table needed.
SYNTHETIC_SQL = """
SELECT i AS fid, ST_AsBinary(e) AS geometry, ST_XMin(e) AS xmin, ST_YMin(e) AS ymin,
  ST_XMax(e) AS xmax, ST_YMax(e) AS ymax, i %% 97 AS population, i %% 13 AS elderly,
  (i %% 31)::float8 AS jobs, i %% 7 AS buildings, (i * 1.5)::float8 AS floor_area_m2,
  (i %% 40)::float8 AS height_mean_m, i %% 3 AS events_open, i %% 5 AS events_30d,
  i %% 2 AS hazard_sites, md5(i::text) AS h3
FROM generate_series(1, %(n)s) i,
  LATERAL (SELECT ST_MakeEnvelope(120 + (i %% 1000) * 1e-4, 30 + (i / 1000) * 1e-4,
    120 + (i %% 1000) * 1e-4 + 9e-5, 30 + (i / 1000) * 1e-4 + 9e-5, 4326) AS e) g
"""


def _peak_kb(stderr: str) -> int:
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr)
    if m is None:
        raise RuntimeError(f"no RSS in /usr/bin/time's output: {stderr[-500:]}")
    return int(m.group(1))


def cli(collection: str, fmt: str, out: Path, bbox: str | None = None) -> dict[str, object]:
    """``twin export`` in its own process under ``/usr/bin/time -v``."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "twin", "export", collection,
           "--format", fmt, "--out", str(out), "--json"]  # fmt: skip
    if bbox:
        cmd += ["--bbox", bbox]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[2:])}: {r.stderr[-1500:]}")
    rows = json.loads(r.stdout)["rows"]
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    return {"via": "twin export", "collection": collection, "format": fmt, "rows": rows,
            "peak_rss_mb": round(_peak_kb(r.stderr) / 1024), "file_mb": round(size / 2**20, 1),
            "wall_s": round(wall, 2)}  # fmt: skip


def _status_kb(pid: int, key: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{key}:\s+(\d+) kB", text, re.M)
    assert m is not None
    return int(m.group(1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http(pairs: list[tuple[str, str]], tmp: Path) -> list[dict[str, object]]:
    """One ``twin serve`` (one process); per download its peak RSS, reset before each."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "TWIN_MQTT_URL"}
    server = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    out = []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("twin serve did not come up")
            time.sleep(0.3)
        # Warm the app (routes, imports of the writers) so the first download is not charged
        # with them; then every figure is: peak during the download, the server's own baseline.
        for fmt in FORMATS:
            httpx.get(f"{base}/collections/events/items", params={"f": fmt}, timeout=60)
        idle = _status_kb(server.pid, "VmRSS")
        for collection, fmt in pairs:
            Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # peak RSS := current RSS
            before = _status_kb(server.pid, "VmRSS")
            t0 = time.perf_counter()
            size = 0
            with httpx.stream("GET", f"{base}/collections/{collection}/items",
                              params={"f": fmt}, timeout=600) as r:  # fmt: skip
                r.raise_for_status()
                rows = int(r.headers.get("x-row-count", -1))
                for chunk in r.iter_bytes(1 << 20):
                    size += len(chunk)
            wall = time.perf_counter() - t0
            peak = _status_kb(server.pid, "VmHWM")
            out.append({"via": "HTTP server", "collection": collection, "format": fmt,
                        "rows": rows, "peak_rss_mb": round(peak / 1024),
                        "before_mb": round(before / 1024), "idle_mb": round(idle / 1024),
                        "file_mb": round(size / 2**20, 1), "wall_s": round(wall, 2)})  # fmt: skip
            print(json.dumps(out[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return out


def synthetic_child(fmt: str, n: int, out: Path) -> None:
    """In this process: N synthetic rows through the export's cursor, batches and writer."""
    import psycopg

    from twin.db.engine import database_url
    from twin.exports.source import CHUNK_ROWS, arrow_schema, chunks
    from twin.exports.writers import write
    from twin.settings import Settings

    with psycopg.connect(database_url(Settings())) as conn, conn.cursor(name="bench") as cur:
        cur.itersize = CHUNK_ROWS
        cur.execute(SYNTHETIC_SQL, {"n": n})
        first = cur.fetchmany(CHUNK_ROWS)
        desc = cur.description or []
        schema = arrow_schema([d.name for d in desc], [d.type_code for d in desc])
        pending = [first]

        def fetch(k: int) -> list[tuple[object, ...]]:
            return pending.pop() if pending else cur.fetchmany(k)

        tally = write(fmt, chunks(fetch, schema), schema, out)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"rows": tally.rows, "peak_kb": peak}))


def synthetic(fmt: str, n: int, out: Path) -> dict[str, object]:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--child", fmt, "--rows", str(n),
           "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-1500:])
    wall = time.perf_counter() - t0
    size = out.stat().st_size if out.exists() else 0
    out.unlink(missing_ok=True)
    return {"via": "exporter, synthetic rows", "collection": "synthetic", "format": fmt,
            "rows": json.loads(r.stdout.splitlines()[-1])["rows"],
            "peak_rss_mb": round(_peak_kb(r.stderr) / 1024), "file_mb": round(size / 2**20, 1),
            "wall_s": round(wall, 2)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collections", default="buildings,roads,parcels")
    ap.add_argument("--formats", default=",".join(FORMATS + CITY))
    ap.add_argument("--rows", type=int, default=1_000_000, help="synthetic rows (0: none)")
    ap.add_argument("--parts", default="cli,synthetic,http", help="which measurements")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        synthetic_child(args.child, args.rows, args.out)
        return
    fmts = args.formats.split(",")
    parts = set(args.parts.split(","))
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # The process's fixed cost: the same command on no rows (a bbox off the city).
        pairs = [(name, fmt) for name in args.collections.split(",") for fmt in fmts
                 if fmt not in CITY or name == "buildings"]  # fmt: skip
        if "cli" in parts:
            for fmt in ("parquet", "gpkg"):
                rows.append(cli("buildings", fmt, tmp / f"empty.{fmt}", bbox="0,0,0.001,0.001"))
                print(json.dumps(rows[-1]), flush=True)
            for name, fmt in pairs:
                rows.append(cli(name, fmt, tmp / f"{name}.{fmt}"))
                print(json.dumps(rows[-1]), flush=True)
        if args.rows and "synthetic" in parts:
            for fmt in FORMATS:
                rows.append(synthetic(fmt, args.rows, tmp / f"synthetic.{fmt}"))
                print(json.dumps(rows[-1]), flush=True)
        if "http" in parts:
            rows += http(pairs, tmp)
    worst = max(int(str(r["peak_rss_mb"])) for r in rows)
    print(json.dumps({"worst_peak_rss_mb": worst, "goal_mb": 300, "met": worst < 300}))


if __name__ == "__main__":
    main()
