"""``twin grid refresh``: cell statistics at every configured resolution."""

from __future__ import annotations

import psycopg
import typer

from twin.cli.support import JsonOpt
from twin.cli.support import emit as _emit
from twin.cli.support import fail as _fail
from twin.cli.support import load_settings as _settings
from twin.db.engine import DatabaseNotConfiguredError, database_url

grid_app = typer.Typer(help="H3 cells: statistics of the model per cell.", no_args_is_help=True)


@grid_app.command("refresh")
def grid_refresh(as_json: JsonOpt = False) -> None:
    """Recompute cell statistics at every configured resolution (one transaction)."""
    import time

    from twin.city.cells import refresh_cell_stats
    from twin.city.load import bump_layer_versions

    settings = _settings()
    try:
        url = database_url(settings)
        t0 = time.perf_counter()
        with psycopg.connect(url) as conn, conn.transaction():
            rows = refresh_cell_stats(conn, settings.h3_resolutions, k=settings.suppression_k)
            bump_layer_versions(conn, ("cell_stats",))
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        _fail(f"database: {exc}")
    seconds = time.perf_counter() - t0
    _emit(
        {"rows": rows, "resolutions": settings.h3_resolutions, "seconds": round(seconds, 2)},
        as_json,
        f"cell statistics: {rows:,} cells at resolutions {settings.h3_resolutions} "
        f"in {seconds:.1f} s",
    )
