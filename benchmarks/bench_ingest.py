"""Ingest and grid refresh at scale.

* ``--buildings N``: N building footprints (a GeoParquet of 12 m x 10 m boxes on a jittered
  lattice over ~40 x 40 km) ingested with `twin ingest buildings` into a database holding the
  small demo city (its roads name the generated addresses).
* ``--refresh SIZE``: `twin grid refresh` on a database holding the demo city of SIZE.

Each runs in fresh databases on the twin's server (the private cluster or TWIN_DATABASE_URL's).

    .venv/bin/python benchmarks/bench_ingest.py --buildings 1000000 --refresh medium
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import geopandas as gpd
import numpy as np
import psycopg
import shapely
from psycopg import sql

from twin.db.engine import database_url
from twin.settings import Settings


def _db(base: str) -> tuple[str, str]:
    admin = base.rsplit("/", 1)[0] + "/postgres"
    name = f"twin_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin, base.rsplit("/", 1)[0] + "/" + name


def _drop(admin: str, url: str) -> None:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(url.rsplit("/", 1)[1])
            )
        )


def _twin(url: str, *args: str) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "TWIN_DATABASE_URL": url}
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "twin", *args, "--json"], env=env, capture_output=True, text=True
    )
    if r.returncode != 0:
        raise SystemExit(r.stderr[-2000:])
    return time.perf_counter() - t0, json.loads(r.stdout)


def bench_buildings(base: str, n: int) -> dict[str, object]:
    rng = np.random.default_rng(1)
    side = int(np.ceil(np.sqrt(n)))
    # ~40 m pitch: a dense city of n buildings around the default centre.
    step = 0.0004
    i, j = np.divmod(np.arange(n), side)
    x = 120.16 - side * step / 2 + i * step + rng.uniform(-0.00005, 0.00005, n)
    y = 30.27 - side * step / 2 + j * step + rng.uniform(-0.00005, 0.00005, n)
    boxes = shapely.box(x, y, x + 0.000125, y + 0.00009)
    gdf = gpd.GeoDataFrame(
        {"id": np.char.add("b", np.arange(n).astype(str)), "height": rng.uniform(3, 60, n).round(1),
         "building": rng.choice(["residential", "commercial", "office"], n)},
        geometry=boxes, crs="EPSG:4326",
    )  # fmt: skip
    admin, url = _db(base)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "buildings.parquet"
            gdf.to_parquet(path)
            _twin(url, "demo", "--size", "small", "--no-serve")
            seconds, out = _twin(url, "ingest", "buildings", str(path), "--id-field", "id")
    finally:
        _drop(admin, url)
    return {"benchmark": "ingest buildings", "rows": n, "wall_s": round(seconds, 1), "report": out}


def bench_refresh(base: str, size: str) -> dict[str, object]:
    admin, url = _db(base)
    try:
        _twin(url, "demo", "--size", size, "--no-serve")
        seconds, out = _twin(url, "grid", "refresh")
    finally:
        _drop(admin, url)
    return {"benchmark": "grid refresh", "size": size, "wall_s": round(seconds, 1), "report": out}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=0)
    ap.add_argument("--refresh", default=None)
    args = ap.parse_args()
    base = database_url(Settings())
    if args.buildings:
        print(json.dumps(bench_buildings(base, args.buildings), ensure_ascii=False), flush=True)
    if args.refresh:
        print(json.dumps(bench_refresh(base, args.refresh), ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
