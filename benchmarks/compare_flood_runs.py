"""How far apart two stored flood runs are: the same storm in float32 and float64 (issue 21),
or any two runs of one grid.

    TWIN_DATABASE_URL=... .venv/bin/python benchmarks/compare_flood_runs.py RUN_A RUN_B [--json]

Reads each run's max-depth raster (``max_depth.tif`` under the run's directory) and its road
and H3 cell results, and prints one JSON object:

- ``grid``: over the grid cells wet in either run (max depth >= ``--wet`` m), the largest and
  the 99th / 99.9th percentile absolute difference in max depth (m), and how many cells are on
  different sides of 0.15 m and 0.3 m (the slowed and closed thresholds);
- ``cells``: the same at the finest stored H3 resolution (mean max depth per cell);
- ``roads``: the road links whose state (passable, slowed, closed) differs, and the largest
  difference in a link's max depth.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import rasterio

from twin.db.engine import database_url
from twin.settings import Settings

THRESHOLDS_M = (0.15, 0.3)


def _raster(runs: Path, run_id: int) -> np.ndarray:
    with rasterio.open(runs / str(run_id) / "max_depth.tif") as src:
        return np.asarray(src.read(1), dtype=np.float64)


def _spread(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    d = np.abs(a - b)
    out: dict[str, Any] = {
        "compared": int(d.size),
        "max_abs_m": round(float(d.max()), 6) if d.size else 0.0,
        "p99_abs_m": round(float(np.percentile(d, 99)), 6) if d.size else 0.0,
        "p999_abs_m": round(float(np.percentile(d, 99.9)), 6) if d.size else 0.0,
    }
    for t in THRESHOLDS_M:
        out[f"other_side_of_{t:g}_m"] = int(np.count_nonzero((a >= t) != (b >= t)))
    return out


def compare(url: str, runs: Path, a: int, b: int, *, wet: float) -> dict[str, Any]:
    """The differences between runs ``a`` and ``b`` (see the module docstring)."""
    ra, rb = _raster(runs, a), _raster(runs, b)
    if ra.shape != rb.shape:
        raise SystemExit(f"runs {a} and {b} are on different grids: {ra.shape} and {rb.shape}")
    mask = (ra >= wet) | (rb >= wet)
    out: dict[str, Any] = {"runs": [a, b], "wet_m": wet, "grid": _spread(ra[mask], rb[mask])}
    with psycopg.connect(url) as conn:
        res = conn.execute(
            "SELECT max(res) FROM twin.flood_cell_result WHERE run_id = %s", (a,)
        ).fetchone()
        cells = conn.execute(
            "SELECT coalesce(x.mean_max_depth_m, 0), coalesce(y.mean_max_depth_m, 0)"
            " FROM (SELECT * FROM twin.flood_cell_result WHERE run_id = %(a)s AND res = %(r)s) x"
            " FULL JOIN (SELECT * FROM twin.flood_cell_result WHERE run_id = %(b)s"
            "            AND res = %(r)s) y USING (cell)",
            {"a": a, "b": b, "r": res[0] if res else None},
        ).fetchall()
        roads = conn.execute(
            "SELECT count(*) FILTER (WHERE x.state IS DISTINCT FROM y.state),"
            " coalesce(max(abs(coalesce(x.max_depth_m, 0) - coalesce(y.max_depth_m, 0))), 0),"
            " count(*)"
            " FROM (SELECT * FROM twin.flood_link_result WHERE run_id = %(a)s) x"
            " FULL JOIN (SELECT * FROM twin.flood_link_result WHERE run_id = %(b)s) y"
            " USING (link_id)",
            {"a": a, "b": b},
        ).fetchone()
    ca = np.array([c[0] for c in cells], dtype=np.float64)
    cb = np.array([c[1] for c in cells], dtype=np.float64)
    out["cells"] = {"res": res[0] if res else None, **_spread(ca, cb)}
    assert roads is not None
    out["roads"] = {"stored": int(roads[2]), "state_differs": int(roads[0]),
                    "max_abs_m": round(float(roads[1]), 6)}  # fmt: skip
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=int)
    ap.add_argument("run_b", type=int)
    ap.add_argument("--wet", type=float, default=0.01, help="wet in either run from (m)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    settings = Settings()
    out = compare(database_url(settings), settings.data_dir / "runs", args.run_a, args.run_b,
                  wet=args.wet)  # fmt: skip
    print(json.dumps(out, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
