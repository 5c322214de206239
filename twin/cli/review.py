"""``twin review``: the after-action review (复盘) of a period: what happened and how fast."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import psycopg
import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings


def review(
    start: Annotated[
        str, typer.Option("--from", help="Start of the period, ISO 8601 (UTC without offset).")
    ],
    end: Annotated[
        str, typer.Option("--to", help="End of the period (excluded), at most 31 days on.")
    ],
    area: Annotated[
        str | None,
        typer.Option("--area", help="An admin area's id or code: its subtree (the city)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Output directory (default: <data_dir>/reviews/<code>-<from>-<to>/)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the after-action review of a period: the rain and water levels observed, the
    nowcast's +60 min predictions against the sensors, every alert and task with how fast each
    step came, and the roads closed with the delay they caused, as review.md and a
    self-contained review.html (inline SVG charts)."""
    from twin.db.engine import DatabaseNotConfiguredError
    from twin.errors import InvalidParameterError, NotFoundError
    from twin.reporting.review import write_review

    settings = load_settings()
    try:
        data = write_review(settings, start=start, end=end, area=area, out=out)
    except InvalidParameterError as exc:
        fail(f"--{exc.parameter.replace('_', '-')}: {str(exc).partition(': ')[2]}", code=2)
    except NotFoundError as exc:
        fail(f"--area: {exc}", code=2)
    except (DatabaseNotConfiguredError, psycopg.OperationalError) as exc:
        fail(f"database: {exc}")
    summary = {k: data[k] for k in ("area", "period", "out_dir", "files")}
    emit(
        data if as_json else summary,
        as_json,
        f"review of {data['area']['code']}, {data['period']['from'][:16]} to "
        f"{data['period']['to'][:16]}: {len(data['alerts']['alerts'])} alerts, "
        f"{len(data['tasks']['tasks'])} tasks, {len(data['tasks']['overdue'])} overdue; "
        f"written to {data['out_dir']}",
    )
