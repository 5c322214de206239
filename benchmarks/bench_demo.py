"""Demo city: generation + load time and peak memory, per size.

Each size runs `twin demo --size S --no-serve --json` in a child process against a fresh
database on the twin's server (the private cluster, or TWIN_DATABASE_URL's server), so the peak
resident memory reported is that of the whole build.

    .venv/bin/python benchmarks/bench_demo.py --sizes small medium [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid

import psycopg
from psycopg import sql

from twin.db.engine import database_url
from twin.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=["small", "medium"])
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    base = database_url(Settings())
    admin = base.rsplit("/", 1)[0] + "/postgres"
    results = []
    for size in args.sizes:
        name = f"twin_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            env = {**os.environ, "TWIN_DATABASE_URL": base.rsplit("/", 1)[0] + "/" + name}
            t0 = time.perf_counter()
            r = subprocess.run(
                [sys.executable, "-m", "twin", "demo", "--size", size, "--seed", str(args.seed),
                 "--no-serve", "--json"],
                env=env, capture_output=True, text=True, check=True,
            )  # fmt: skip
            wall = time.perf_counter() - t0
            out = json.loads(r.stdout)
            with psycopg.connect(env["TWIN_DATABASE_URL"]) as c:
                row = c.execute("SELECT pg_database_size(current_database())").fetchone()
            results.append(
                {
                    "size": size,
                    "wall_s": round(wall, 1),
                    "timings_s": out["timings_s"],
                    "peak_rss_mb": out["peak_rss_mb"],
                    "database_mb": round((row[0] if row else 0) / 2**20),
                    "buildings": out["counts"]["building"],
                    "people": out["counts"]["person"],
                    "cells": out["counts"]["cell_stats"],
                }
            )
        finally:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
