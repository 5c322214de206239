"""`twin demo`: database up, the synthetic city generated and loaded, cells computed.

The orchestration lives here (the CLI only renders progress and the summary), so tests and the
API can build a demo city the same way.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

from twin.city.cells import refresh_cell_stats
from twin.city.load import CITY_TABLES, bump_layer_versions, load_city
from twin.city.meta import record_city
from twin.city.synth.city import generate_city
from twin.db.engine import database_url
from twin.db.migrate import upgrade
from twin.settings import Settings

# Stage names in order; the CLI shows one progress line per stage.
STAGES = ("migrate", "generate", "load", "cells")


class Reporter(Protocol):
    """Receives progress: a stage starts (with a total, if known), advances, ends."""

    def stage(self, name: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1, detail: str | None = None) -> None: ...

    def done(self, name: str) -> None: ...


class QuietReporter:
    def stage(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, amount: int = 1, detail: str | None = None) -> None:
        pass

    def done(self, name: str) -> None:
        pass


@dataclass
class DemoResult:
    size: str
    seed: int
    url: str
    counts: dict[str, int]
    timings_s: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    raster_dir: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "seed": self.seed,
            "database": self.url,
            "counts": self.counts,
            "timings_s": {k: round(v, 2) for k, v in self.timings_s.items()},
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "raster_dir": self.raster_dir,
        }


def table_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows per city table, counted in the database (what the summary prints)."""
    out = {}
    for t in CITY_TABLES:
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("twin", t))
        ).fetchone()
        out[t] = int(row[0]) if row else 0
    return out


def build_demo(
    settings: Settings,
    *,
    size: str = "small",
    seed: int = 1,
    reporter: Reporter | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> DemoResult:
    """Migrate, generate the city for (size, seed), load it in one transaction, refresh cells."""
    rep: Reporter = reporter or QuietReporter()
    timings: dict[str, float] = {}
    url = database_url(settings)

    t = clock()
    rep.stage("migrate")
    upgrade(url)
    rep.done("migrate")
    timings["migrate"] = clock() - t

    t = clock()
    rep.stage("generate", total=7)
    city = generate_city(
        size,
        seed,
        center=settings.city_center,
        crs=settings.metric_crs,
        res=settings.finest_resolution,
        progress=lambda msg: rep.advance(1, msg),
    )
    rep.done("generate")
    timings["generate"] = clock() - t

    raster_dir = settings.data_dir / "demo" / f"{size}-{seed}"
    t = clock()
    total_rows = sum(city.counts().values()) + 2
    rep.stage("load", total=total_rows)
    with psycopg.connect(url) as conn:
        with conn.transaction():
            load_city(conn, city, raster_dir=raster_dir, step=lambda name, n: rep.advance(n, name))
            record_city(conn, settings, settings.city_center, name=f"demo {size}",
                        source=f"demo:{size}:{seed}", replace=True)  # fmt: skip
            rep.done("load")
            timings["load"] = clock() - t
            t = clock()
            rep.stage("cells")
            refresh_cell_stats(conn, settings.h3_resolutions, k=settings.suppression_k)
            bump_layer_versions(conn)
            rep.done("cells")
            timings["cells"] = clock() - t
        counts = table_counts(conn)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return DemoResult(size, seed, url, counts, timings, peak, str(raster_dir))
