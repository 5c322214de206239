"""Issue 21: the incremental risk refresh after an ingest of 1,000 buildings (goal: <= 2 s).

    TWIN_DATABASE_URL=postgresql://.../twin_medium \\
        .venv/bin/python benchmarks/bench_risk_incremental.py [--buildings 1000] [--check]

On a twin already built (`twin demo --size medium|large --no-serve`): a full `twin risk compute`
(timed: the baseline the refresh patches), then 1,000 synthetic footprints (a GeoJSON; a third
of them towers of 10-40 storeys) in cells that have buildings, loaded by the ingest itself
(timed apart: reading, writing, refreshing the cell statistics), then
:func:`twin.risk.incremental.refresh_cells` on the cells the ingest reports (timed: the goal),
then a full compute again at the same ``as_of`` (timed); ``--check`` compares every stored row
of the refresh with the full compute's. Prints one JSON object. Each run adds its buildings to
the twin (new source ids each time). The machine is shared: quote the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import psycopg
import shapely

from twin import grid
from twin.db.engine import database_url
from twin.ingest.vector import ingest_vector
from twin.risk.catalog import load_catalog
from twin.risk.compute import compute_risk
from twin.risk.incremental import refresh_cells
from twin.settings import Settings


def synthetic_buildings(url: str, path: Path, n: int, seed: int) -> Path:
    """``n`` footprints of about 20 x 17 m around the centres of cells that have buildings."""
    with psycopg.connect(url) as conn:
        cells = [int(c) for (c,) in conn.execute(
            "SELECT cell FROM twin.cell_stats WHERE res = 9 AND buildings > 0"
        )]  # fmt: skip
    rng = np.random.default_rng(seed)
    picked = rng.choice(np.asarray(cells, dtype=np.int64), size=n)
    lon, lat = grid.cell_centers(picked)
    lon = lon + rng.uniform(-0.002, 0.002, n)
    lat = lat + rng.uniform(-0.002, 0.002, n)
    floors = np.where(rng.random(n) < 0.3, rng.integers(10, 40, n), rng.integers(1, 9, n))
    gdf = gpd.GeoDataFrame(
        {"source_id": [f"bench-{seed}-{i}" for i in range(n)], "floors": floors,
         "use": "residential"},
        geometry=shapely.box(lon, lat, lon + 0.0002, lat + 0.00015), crs="EPSG:4326",
    )  # fmt: skip
    gdf.to_file(path, driver="GeoJSON")
    return path


def _rows(url: str) -> dict[tuple[str, int, int], tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT layer_id, res, cell, score, level, components, small_count FROM twin.risk_score"
        ).fetchall()
    return {(lid, res, int(c)): (s, lv, comp, sm) for lid, res, c, s, lv, comp, sm in rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buildings", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=int(time.time()))
    ap.add_argument("--check", action="store_true", help="Compare with a full compute, row by row.")
    args = ap.parse_args()
    settings = Settings()
    url = database_url(settings)
    res, k = settings.h3_resolutions, settings.suppression_k
    catalog = load_catalog(settings.layers_dir, resolutions=res)
    at = datetime.now(UTC)
    out: dict[str, Any] = {"stage": "risk_incremental", "buildings": args.buildings}
    t = time.perf_counter()
    compute_risk(url, catalog, resolutions=res, k=k, as_of=at)
    out["full_compute_before_s"] = round(time.perf_counter() - t, 2)
    with tempfile.TemporaryDirectory() as tmp:
        path = synthetic_buildings(url, Path(tmp) / "b.geojson", args.buildings, args.seed)
        t = time.perf_counter()
        report = ingest_vector("buildings", path, settings)
        out["ingest_s"] = round(time.perf_counter() - t, 2)
    out["cells_changed_finest"] = len(set(report.changed_cells))
    out["cells_rowset_changed"] = len(report.rowset_cells or [])
    t = time.perf_counter()
    refreshed = refresh_cells(url, catalog, report.changed_cells, resolutions=res, k=k, as_of=at,
                              rowset_cells=report.rowset_cells)  # fmt: skip
    out["incremental_s"] = round(time.perf_counter() - t, 3)
    out["goal_s"] = 2.0
    out["rows_rewritten"] = refreshed["rows"]
    out["layers"] = refreshed["layers"]
    incremental = _rows(url) if args.check else {}
    t = time.perf_counter()
    compute_risk(url, catalog, resolutions=res, k=k, as_of=at)
    out["full_compute_after_s"] = round(time.perf_counter() - t, 2)
    if args.check:
        full = _rows(url)
        out["rows_total"] = len(full)
        out["rows_differing"] = sum(1 for key in full.keys() | incremental.keys()
                                    if full.get(key) != incremental.get(key))  # fmt: skip
    out["load_average"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(out), flush=True)
    sys.exit(1 if out.get("rows_differing") else 0)


if __name__ == "__main__":
    main()
