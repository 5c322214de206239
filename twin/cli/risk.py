"""``twin risk ...`` (the one map) and ``twin alerts ...`` (rules and the alerts they raise)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings

risk_app = typer.Typer(help="The risk one map: layer catalog and scores.", no_args_is_help=True)
alerts_app = typer.Typer(help="Alert rules and the alerts they raise.", no_args_is_help=True)


def _as_of(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--as-of: expected an ISO 8601 time, got {text!r}", code=2)
    if at.tzinfo is None:
        fail("--as-of: give a time zone (e.g. 2026-11-01T08:00:00+08:00)", code=2)
    return at


@risk_app.command("compute")
def compute(
    layer: Annotated[
        list[str] | None, typer.Option("--layer", help="Only these layer ids (repeat).")
    ] = None,
    as_of: Annotated[str | None, typer.Option(help="End of event windows (ISO time).")] = None,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Do not evaluate the alert rules afterwards.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Score every layer of the catalog (layers/*.toml) per cell, write risk_score and the
    combined one map, then evaluate the alert rules (rules/*.toml)."""
    from twin.db.engine import DatabaseNotConfiguredError, database_url
    from twin.risk.alerts import evaluate
    from twin.risk.catalog import CatalogError, load_catalog
    from twin.risk.compute import ComputeError, compute_risk
    from twin.risk.rules import RuleError, load_rules

    settings = load_settings()
    at = _as_of(as_of)
    try:
        url = database_url(settings)
        catalog = load_catalog(settings.layers_dir, resolutions=settings.h3_resolutions)
        rules, errors = load_rules(settings.rules_dir)
        if errors and not no_alerts:
            raise errors[0]
        result = compute_risk(
            url, catalog, resolutions=settings.h3_resolutions, k=settings.suppression_k,
            only=layer or None, as_of=at,
        )  # fmt: skip
        alerts = {} if no_alerts else evaluate(url, rules, at=at)
    except (CatalogError, RuleError, ComputeError, DatabaseNotConfiguredError) as exc:
        fail(str(exc), code=2)
    data: dict[str, Any] = {**result.as_dict(), "alerts": alerts}
    lines = [f"{lid:22s} " + "  ".join(f"{lvl} {n:>5}" for lvl, n in counts.items())
             for lid, counts in result.levels.items()]  # fmt: skip
    raised = sum(c["created"] for c in alerts.values())
    lines.append(
        f"{len(result.levels)} layers in {result.seconds:.1f} s (flood run "
        f"{result.flood_run}, traffic run {result.traffic_run}); {raised} new alerts"
    )
    emit(data, as_json, "\n".join(lines))


@risk_app.command("layers")
def layers(as_json: JsonOpt = False) -> None:
    """List the layer catalog (and any file that fails to load)."""
    from twin.risk.catalog import load_catalog

    settings = load_settings()
    catalog = load_catalog(settings.layers_dir, resolutions=settings.h3_resolutions)
    data = {
        "layers": [lyr.describe() for lyr in catalog.all_layers()],
        "errors": [str(e) for e in catalog.errors],
    }
    lines = [f"{lyr.id:22s} {lyr.family:18s} {lyr.classification:9s} {lyr.title} / {lyr.title_zh}"
             for lyr in catalog.all_layers()]  # fmt: skip
    lines += [f"error: {e}" for e in catalog.errors]
    emit(data, as_json, "\n".join(lines))
    if catalog.errors:
        raise typer.Exit(2)


@alerts_app.command("evaluate")
def alerts_evaluate(
    rule: Annotated[list[str] | None, typer.Option("--rule", help="Only these rule ids.")] = None,
    as_of: Annotated[str | None, typer.Option(help="Evaluation time (ISO; default now).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate the alert rules now: new alerts, repeats (deduplicated), escalations and
    resolutions."""
    from twin.db.engine import DatabaseNotConfiguredError, database_url
    from twin.risk.alerts import evaluate
    from twin.risk.rules import RuleError, load_rules

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

    from twin.db.engine import database_url
    from twin.risk.alerts import ALERTS_SQL, alert_row, status_filter

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
