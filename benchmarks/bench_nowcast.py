"""One nowcast step of the live loop end to end on a demo city, against its window.

The step is :meth:`twin.runs.nowloop.NowcastLoop.step_once`, as the API's loop runs it every
``TWIN_NOWCAST_EVERY_S``: the gauges' rain field, the flood model advanced over the window and
run an hour ahead (persistence), the depths stored per cell and road, the nowcast-fed risk
layers updated where they changed, and the nowcast alert rules evaluated (tasks dispatched).

Synthetic gauge readings: every rain gauge of the city reads each minute of the hour before
the first step and through the last, a storm cell over the city's centre (``--peak`` mm/h at
the centre, ``--base`` mm/h at its edge, a Gaussian in between) growing linearly from half
to full strength over that time. ``--steps`` steps ``--window`` seconds apart: the first from a
dry grid, the next ones from the carried state (water on the ground, smaller time steps).

The run writes readings, steps and risk scores, so it works on a copy of the database
(``CREATE DATABASE ... TEMPLATE``, dropped at the end; ``--in-place`` to skip the copy). The
source database must have no other sessions while it is copied.

    TWIN_DATABASE_URL=postgresql://twin@127.0.0.1:PORT/twin_medium \\
      .venv/bin/python benchmarks/bench_nowcast.py --steps 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from twin.alerts.rules import load_rules
from twin.db.engine import database_url
from twin.runs.nowcast import NowcastParams
from twin.runs.nowloop import NowcastLoop
from twin.settings import Settings

GAUGES_SQL = """
SELECT s.id, ST_X(s.geom), ST_Y(s.geom) FROM twin.sensor s
WHERE s.kind = 'rain_gauge' AND s.unit = 'mm/h'
ORDER BY s.id
"""
CITY_SQL = """
SELECT ST_X(c), ST_Y(c), greatest(ST_XMax(e) - ST_XMin(e), ST_YMax(e) - ST_YMin(e)) / 2
FROM (SELECT ST_Extent(geom)::geometry AS e, ST_Centroid(ST_Extent(geom)::geometry) AS c
      FROM twin.sensor WHERE kind = 'rain_gauge') x
"""
INSERT_SQL = """
INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)
ON CONFLICT DO NOTHING
"""


def _copy(url: str) -> tuple[str, str]:
    """A copy of ``url``'s database (its admin URL, the copy's URL)."""
    server, source = url.rsplit("/", 1)
    name = f"bench_nowcast_{uuid.uuid4().hex[:8]}"
    admin = f"{server}/postgres"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(source)))  # fmt: skip
    return admin, f"{server}/{name}"


def _drop(admin: str, url: str) -> None:
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(url.rsplit("/", 1)[1])))  # fmt: skip


def readings(url: str, start: datetime, end: datetime, *, peak: float, base: float) -> int:
    """A reading a minute per rain gauge over ``[start, end]``; returns the gauges."""
    with psycopg.connect(url) as conn:
        gauges = conn.execute(GAUGES_SQL).fetchall()
        row = conn.execute(CITY_SQL).fetchone()
        assert row is not None and gauges, "no rain gauges in this twin"
        cx, cy, r = float(row[0]), float(row[1]), max(float(row[2]), 1e-6)
        minutes = int((end - start).total_seconds() // 60)
        rows = []
        for sid, x, y in gauges:
            shape = math.exp(-(((x - cx) ** 2 + (y - cy) ** 2) / r**2))
            for m in range(minutes + 1):
                grow = 0.5 + 0.5 * m / max(minutes, 1)
                rows.append((sid, start + timedelta(minutes=m),
                             grow * (base + (peak - base) * shape)))  # fmt: skip
        with conn.cursor() as cur:
            cur.executemany(INSERT_SQL, rows)
    return len(gauges)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--window", type=float, default=300.0, help="window (s)")
    ap.add_argument("--horizon", type=float, default=3600.0, help="forecast horizon (s)")
    ap.add_argument("--dtype", default="float64", choices=("float64", "float32"))
    ap.add_argument("--peak", type=float, default=60.0, help="mm/h at the storm's centre")
    ap.add_argument("--base", type=float, default=5.0, help="mm/h at its edge")
    ap.add_argument("--in-place", action="store_true", help="write into the database itself")
    args = ap.parse_args()
    settings = Settings()
    source = database_url(settings)
    admin, url = (None, source) if args.in_place else _copy(source)
    out: dict[str, Any] = {"database": source.rsplit("/", 1)[1], "window_s": args.window,
                           "horizon_s": args.horizon, "dtype": args.dtype,
                           "load_avg_1m": round(os.getloadavg()[0], 2), "steps": []}  # fmt: skip
    try:
        s = settings.model_copy(update={"database_url": url})
        t0 = datetime.now(UTC).replace(second=0, microsecond=0)
        last = t0 + timedelta(seconds=args.window * (args.steps - 1))
        out["gauges"] = readings(url, t0 - timedelta(hours=1), last, peak=args.peak,
                                 base=args.base)  # fmt: skip
        rules, errors = load_rules(s.rules_dir)
        assert not errors, errors
        params = NowcastParams(window_s=args.window, horizon_s=args.horizon, dtype=args.dtype)
        loop = NowcastLoop(s, rules, every_s=args.window, params=params)
        for i in range(args.steps):
            at = t0 + timedelta(seconds=args.window * i)
            w0 = time.perf_counter()
            got = asyncio.run(loop.step_once(as_of=at))
            wall = time.perf_counter() - w0
            if "error" in got or "skipped" in got:
                raise SystemExit(f"step {i}: {got.get('error') or got.get('skipped')}")
            st, risk = got["step"], got["risk"]
            row = {
                "step": i + 1, "restarted": st["restarted"], "wall_s": round(wall, 2),
                "of_window": round(wall / args.window, 3),
                "flood_load_s": st["load_s"], "flood_simulate_s": st["simulate_s"],
                "flood_store_s": round(st["wall_s"] - st["load_s"] - st["simulate_s"], 2),
                "risk_s": risk["seconds"],
                "alerts_and_tasks_s": round(wall - st["wall_s"] - risk["seconds"], 2),
                "model_steps": st["steps"], "forecast_steps": st["forecast_steps"],
                "rain_mean_mm_h": round(st["rain_mean_mm_h"], 1),
                "max_depth_now_m": round(st["max_depth_now_m"], 3),
                "cells": st["cells"], "links": st["links"],
                "risk_cells_changed": risk["layers"], "alerts": got["alerts"],
                "tasks": len(got["tasks"]),
            }  # fmt: skip
            out["steps"].append(row)
            print(json.dumps(row, default=str), flush=True)
    finally:
        if admin is not None:
            _drop(admin, url)
    worst = max(r["wall_s"] for r in out["steps"])
    out["worst_of_window"] = round(worst / args.window, 3)
    out["load_avg_1m_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps({k: v for k, v in out.items() if k != "steps"}))


if __name__ == "__main__":
    main()
