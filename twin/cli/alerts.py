"""``twin alerts ...``: alert rules and the alerts they raise."""

from __future__ import annotations

from typing import Annotated

import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.cli.support import parse_as_of as _as_of

alerts_app = typer.Typer(help="Alert rules and the alerts they raise.", no_args_is_help=True)


@alerts_app.command("evaluate")
def alerts_evaluate(
    rule: Annotated[list[str] | None, typer.Option("--rule", help="Only these rule ids.")] = None,
    as_of: Annotated[str | None, typer.Option(help="Evaluation time (ISO; default now).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the alert rules now: new alerts, repeats (deduplicated), escalations and
    resolutions."""
    from twin.alerts.evaluate import evaluate
    from twin.alerts.rules import RuleError, load_rules
    from twin.db.engine import DatabaseNotConfiguredError, database_url

    settings = load_settings()
    try:
        rules, errors = load_rules(settings.rules_dir)
        if errors:
            raise errors[0]
        known = {r.id for r in rules}
        for r in rule or []:
            if r not in known:
                raise RuleError("--rule", r, f"no such rule; rules: {sorted(known)}")
        result = evaluate(database_url(settings), rules, at=_as_of(as_of), only=rule or None)
    except (RuleError, DatabaseNotConfiguredError) as exc:
        fail(str(exc), code=2)
    lines = [f"{rid:22s} " + ", ".join(f"{k} {v}" for k, v in counts.items())
             for rid, counts in result.items()]  # fmt: skip
    emit({"rules": result}, as_json, "\n".join(lines))


@alerts_app.command("list")
def alerts_list(
    status: Annotated[
        str, typer.Option(help="open (pending, active, acknowledged), or one status, or all.")
    ] = "open",
    limit: Annotated[int, typer.Option(min=1)] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The newest alerts."""
    import psycopg
    from psycopg.rows import dict_row

    from twin.alerts.evaluate import ALERTS_SQL, alert_row, status_filter
    from twin.db.engine import database_url

    settings = load_settings()
    try:
        statuses = status_filter(status)
    except ValueError as exc:
        fail(f"--status: {exc}", code=2)
    with psycopg.connect(database_url(settings), row_factory=dict_row) as conn:
        rows = conn.execute(
            ALERTS_SQL,
            {
                "statuses": statuses,
                "rule": None,
                "area": None,
                "level": None,
                "limit": limit,
                "id": None,
            },
        ).fetchall()
    alerts = [alert_row(r) for r in rows]
    lines = [f"#{a['id']:<5} {a['status']:12s} {a['level']:6s} {a['area_code'] or '-':12s} "
             f"x{a['hits']:<3} {a['message']}" for a in alerts]  # fmt: skip
    emit({"alerts": alerts}, as_json, "\n".join(lines) or "no alerts")
