"""``twin report``: the decision report of an admin area over a period."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings


def report(
    area: Annotated[str, typer.Option("--area", help="The admin area's id or code.")],
    period: Annotated[str, typer.Option(help="Period length: 7d, 30d, 90d, 4w, ...")] = "30d",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="End of the period, ISO 8601 (UTC without offset); now."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory (default: <data_dir>/reports/<code>-<date>/)."),
    ] = None,
    unsuppressed: Annotated[
        bool,
        typer.Option(
            "--unsuppressed", help="Show people counts below k (needs the right to see them)."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the decision report of an area: what happened (events, storm and traffic runs),
    what was done (tasks), how fast, and what stands out against the areas beside it, as
    report.md and a self-contained report.html (inline SVG charts)."""
    from twin.db.engine import DatabaseNotConfiguredError
    from twin.errors import InvalidParameterError, NotFoundError
    from twin.reporting.cockpit import parse_as_of, parse_period
    from twin.reporting.report import write_report

    settings = load_settings()
    try:
        days = parse_period(period)
        when = parse_as_of(as_of) if as_of else None
        data = write_report(
            settings, area=area, period_days=days, as_of=when, out=out, allowed=unsuppressed
        )
    except InvalidParameterError as exc:
        fail(f"--{exc.parameter.replace('_', '-')}: {str(exc).partition(': ')[2]}", code=2)
    except NotFoundError as exc:
        fail(f"--area: {exc}", code=2)
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        fail(f"database: {exc}")
    summary = {k: data[k] for k in ("area", "as_of", "period", "out_dir", "files")}
    ev, tasks = data["events"], data["tasks"]
    emit(
        data if as_json else summary,
        as_json,
        f"report of {data['area']['name']} ({data['area']['code']}), "
        f"{data['period']['days']} days to {data['as_of'][:16]}: {ev['total']} events, "
        f"{tasks['dispatched']['current']} tasks dispatched; written to {data['out_dir']}",
    )
