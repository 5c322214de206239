"""Export throughput (rows/s) per format, against ``ogr2ogr`` reading the same rows from
PostGIS (``PG:`` source), side by side in one run.

Needs a database holding a demo city (``twin demo --size small --no-serve``) in
TWIN_DATABASE_URL (or the private cluster), and ``ogr2ogr`` on PATH (gdal-bin) for the
comparison column (left empty without it).

    TWIN_DATABASE_URL=postgresql://... .venv/bin/python benchmarks/bench_export.py --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

from twin.access.principal import PUBLIC, act_as
from twin.db.engine import database_url
from twin.exports.run import export_sync
from twin.settings import Settings
from twin.tiles.catalog import LAYERS

OGR = {"parquet": "Parquet", "fgb": "FlatGeobuf", "gpkg": "GPKG", "csv": "CSV"}
OGR_OPTS = {"fgb": ["-lco", "SPATIAL_INDEX=YES"], "csv": ["-lco", "GEOMETRY=AS_WKT"],
            "parquet": ["-lco", "COMPRESSION=ZSTD"]}  # fmt: skip


def _ours(settings: Settings, name: str, fmt: str, out: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    with psycopg.connect(database_url(settings)) as conn:
        act_as(conn, PUBLIC, settings.api_db_role)
        tally = export_sync(conn, PUBLIC, LAYERS[name], fmt, out, {}, k=settings.suppression_k)
    return tally.rows, time.perf_counter() - t0


def _ogr(url: str, name: str, fmt: str, out: Path) -> float | None:
    if shutil.which("ogr2ogr") is None or (fmt == "parquet" and not _has_parquet()):
        return None
    layer = LAYERS[name]
    cols = ", ".join(f'{e} AS "{n}"' for n, e in layer.props.items() if "%(" not in e)
    query = f"SELECT {layer.id_expr} AS fid, t.geom, {cols} FROM twin.{layer.table} t"  # noqa: S608
    t0 = time.perf_counter()
    subprocess.run(
        ["ogr2ogr", "-f", OGR[fmt], str(out), f"PG:{url}", "-sql", query, "-nln", name,
         *OGR_OPTS.get(fmt, [])],
        check=True, capture_output=True,
    )  # fmt: skip
    return time.perf_counter() - t0


def _has_parquet() -> bool:
    r = subprocess.run(["ogrinfo", "--formats"], capture_output=True, text=True, check=False)
    return "Parquet" in r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collections", default="buildings,roads")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    settings = Settings()
    url = database_url(settings)
    rows_out = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.collections.split(","):
            for fmt in OGR:
                best, best_ogr, n = float("inf"), float("inf"), 0
                for i in range(args.repeat):
                    n, s = _ours(settings, name, fmt, Path(tmp) / f"t{i}.{fmt}")
                    best = min(best, s)
                    o = _ogr(url, name, fmt, Path(tmp) / f"o{i}.{fmt}")
                    if o is not None:
                        best_ogr = min(best_ogr, o)
                ogr = None if best_ogr == float("inf") else round(n / best_ogr)
                ratio = None if ogr is None else round(ogr / (n / best), 2)
                rows_out.append({"collection": name, "format": fmt, "rows": n,
                                 "twin_rows_per_s": round(n / best), "ogr2ogr_rows_per_s": ogr,
                                 "ratio": ratio})  # fmt: skip
                print(json.dumps(rows_out[-1]), flush=True)


if __name__ == "__main__":
    main()
