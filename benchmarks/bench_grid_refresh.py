"""Issue 21: a full cell-statistics refresh, each named statement timed, then rolled back.

    TWIN_DATABASE_URL=postgresql://.../twin_large OPENBLAS_NUM_THREADS=1 PYTHONPATH=. \\
        .venv/bin/python benchmarks/bench_grid_refresh.py [--compare]

Runs :func:`twin.city.cells.refresh_cell_stats` at the configured resolutions in one
transaction, timing every statement of ``twin/db/sql/cell_stats.sql`` by name, the COPYs and
the Python steps (cell shapes, the suppression audit), prints one line per step and the total,
and rolls back: the twin is left as it was. ``--compare`` first copies the stored rows
(``public.cs_ref``) and then counts the refreshed rows that differ from them, both ways, on
every column and the geometry (0 and 0: the same table as before). The machine is shared:
quote the load average.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import psycopg

import twin.city.cells as cells
from twin.db.engine import database_url
from twin.settings import Settings

# Rows of {a} not in {b}, on every column and the geometry ({a}, {b}: the two fixed tables).
DIFF_SQL = """
SELECT count(*) FROM (
    SELECT res, cell, parent, area_id, population, population_by_age, elderly, jobs, buildings,
           floor_area_m2, height_mean_m, height_max_m, enterprises, hazard_sites,
           hazard_sites_by_category, events_open, events_open_by_type, events_30d,
           events_30d_by_type, road_length_m, land_use_mix, hidden, ST_AsBinary(geom)
    FROM {a}
    EXCEPT
    SELECT res, cell, parent, area_id, population, population_by_age, elderly, jobs, buildings,
           floor_area_m2, height_mean_m, height_max_m, enterprises, hazard_sites,
           hazard_sites_by_category, events_open, events_open_by_type, events_30d,
           events_30d_by_type, road_length_m, land_use_mix, hidden, ST_AsBinary(geom)
    FROM {b}
) x
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--compare", action="store_true", help="compare with the stored rows")
    args = ap.parse_args()
    times: dict[str, float] = {}
    names: dict[int, str] = {}
    query = cells.query

    def named(file: str, name: str) -> Any:
        q = query(file, name)
        names[id(q)] = name
        return q

    def timed(label: str, f: Any) -> Any:
        def run(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return f(*a, **k)
            finally:
                times[label] = times.get(label, 0.0) + time.perf_counter() - t

        return run

    class Timed(psycopg.Connection):
        def execute(self, q: Any, params: Any = None, **kw: Any) -> Any:  # type: ignore[override]
            return timed(names.get(id(q), str(q)[:40]), super().execute)(q, params, **kw)

    cells.query = named  # type: ignore[assignment]
    cells.copy_rows = timed("COPY", cells.copy_rows)  # type: ignore[assignment]
    cells.cell_hidden_fields = timed("suppression audit (Python)", cells.cell_hidden_fields)  # type: ignore[assignment]
    cells._copy_cell_shapes = timed("cell shapes (Python + COPY)", cells._copy_cell_shapes)  # type: ignore[assignment]
    settings = Settings()
    url = database_url(settings)
    if args.compare:
        with psycopg.connect(url) as c:
            c.execute("DROP TABLE IF EXISTS public.cs_ref")
            c.execute("CREATE TABLE public.cs_ref AS SELECT * FROM twin.cell_stats")
    conn = Timed.connect(url)
    try:
        t0 = time.perf_counter()
        rows = cells.refresh_cell_stats(conn, settings.h3_resolutions, k=settings.suppression_k)
        total = time.perf_counter() - t0
        for label, seconds in times.items():
            print(f"{seconds:7.2f} s  {label}")
        print(f"{total:7.2f} s  TOTAL ({rows:,} rows), load average {os.getloadavg()[0]:.2f}")
        if args.compare:
            (new_old,) = conn.execute(
                DIFF_SQL.format(a="twin.cell_stats", b="public.cs_ref")
            ).fetchone()  # type: ignore[misc]
            (old_new,) = conn.execute(
                DIFF_SQL.format(a="public.cs_ref", b="twin.cell_stats")
            ).fetchone()  # type: ignore[misc]
            print(f"rows differing: new-old {new_old}, old-new {old_new}")
    finally:
        conn.rollback()
        conn.close()
    if args.compare:
        with psycopg.connect(url) as c:
            c.execute("DROP TABLE public.cs_ref")


if __name__ == "__main__":
    main()
