"""`twin ingest buildings|parcels|roads|events FILE`: one file, one transaction."""

from __future__ import annotations

import math
import time
from pathlib import Path

import psycopg

from twin.city.cells import refresh_cell_stats, refresh_cells_reporting
from twin.city.meta import record_city
from twin.db.engine import database_url
from twin.ingest import layers, write
from twin.ingest.read import read_vector
from twin.ingest.report import IngestError, Progress, Report, quiet
from twin.settings import Settings

FAMILY = {"buildings": "polygon", "parcels": "polygon", "roads": "line", "events": "point"}


def ingest_vector(
    kind: str,
    path: Path,
    settings: Settings,
    *,
    mode: str = "append",
    fields: layers.Fields | None = None,
    crs: str | None = None,
    layer: str | None = None,
    wkt_field: str | None = None,
    lon_field: str | None = None,
    lat_field: str | None = None,
    skip_invalid: bool = False,
    progress: Progress = quiet,
) -> Report:
    """Load ``path`` as ``kind``; on any error nothing is written.

    Rows whose geometry cannot be repaired fail the whole file unless ``skip_invalid``, in
    which case they are left out and listed in the report.
    """
    if kind not in FAMILY:
        raise ValueError(f"kind must be one of {', '.join(FAMILY)}")
    if mode not in ("append", "replace"):
        raise ValueError("mode must be append or replace")
    t0 = time.perf_counter()
    path = Path(path)
    report = Report(str(path), kind)
    f = fields or layers.Fields()
    progress(f"reading {path.name}")
    gdf = read_vector(
        path,
        family=FAMILY[kind],
        crs=crs,
        layer=layer,
        wkt_field=wkt_field,
        lon_field=lon_field,
        lat_field=lat_field,
        report=report,
    )
    if report.n_rejected and not skip_invalid:
        reason, rows = next(iter(report.rejected.items()))
        raise IngestError(path, f"{reason} (--skip-invalid leaves such rows out)", rows=rows)
    res = settings.finest_resolution
    progress(f"writing {report.read:,} {kind}")
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        # The first layer with an extent places the city (its UTM zone) for every later step.
        x0, y0, x1, y1 = (float(v) for v in gdf.total_bounds)
        crs = settings.metric_crs
        if len(gdf) and all(map(math.isfinite, (x0, y0, x1, y1))):
            centre = ((x0 + x1) / 2, (y0 + y1) / 2)
            crs = record_city(conn, settings, centre, source=f"{kind}:{path.name}")
        if kind == "buildings":
            frame, heights = layers.buildings_frame(gdf, path, f)
            report.details["height_from"] = heights
            affected = write.write_buildings(
                conn, frame, mode=mode, res=res, path=path, progress=progress
            )
        elif kind == "parcels":
            frame = layers.parcels_frame(gdf, path, f)
            affected = write.write_parcels(conn, frame, mode=mode, res=res, path=path)
        elif kind == "roads":
            frame = layers.roads_frame(gdf, path, f)
            affected = write.write_roads(conn, frame, mode=mode, res=res, crs=crs, path=path)
        else:
            frame = layers.events_frame(gdf, path, f)
            affected = write.write_events(conn, frame, mode=mode, res=res, path=path)
        progress("refreshing the affected cells")
        if kind == "buildings":  # its incremental risk refresh needs the rows that came or went
            done = refresh_cells_reporting(
                conn, settings.h3_resolutions, cells=affected, k=settings.suppression_k
            )
            report.changed_cells = [int(c) for c in affected]
            report.rowset_cells = done.rowset_changed
            report.details["cells_refreshed"] = done.rows
        else:
            report.details["cells_refreshed"] = refresh_cell_stats(
                conn, settings.h3_resolutions, cells=affected, k=settings.suppression_k
            )
    report.loaded = len(frame)
    report.seconds = time.perf_counter() - t0
    return report
