"""``twin risk ...``: the one map (layer catalog and scores)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from twin.cli.support import JsonOpt, emit, fail, load_settings
from twin.cli.support import parse_as_of as _as_of

risk_app = typer.Typer(help="The risk one map: layer catalog and scores.", no_args_is_help=True)


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
    from twin.alerts.evaluate import evaluate
    from twin.alerts.rules import RuleError, load_rules
    from twin.db.engine import DatabaseNotConfiguredError, database_url
    from twin.risk.catalog import CatalogError, load_catalog
    from twin.risk.compute import ComputeError, compute_risk

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
