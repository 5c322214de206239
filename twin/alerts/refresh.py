"""After new data: recompute the risk one map, then evaluate the alert rules on it.

Called on demand (`twin risk compute`), after a simulation run (CLI and API) and by the demo,
so the map, the alerts and the cockpits always describe the latest runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

import psycopg

from twin.access.principal import Principal, act_as
from twin.alerts.evaluate import evaluate, evaluate_on
from twin.alerts.rules import RuleError, load_rules
from twin.db.engine import database_url
from twin.risk.catalog import CatalogError, load_catalog
from twin.risk.compute import ComputeError, compute_risk
from twin.risk.incremental import can_refresh, refresh_cells
from twin.settings import Settings

log = logging.getLogger(__name__)


def refresh(
    settings: Settings,
    *,
    at: datetime | None = None,
    caller: Principal | None = None,
    cells: list[int] | None = None,
    rowset_cells: list[int] | None = None,
) -> dict[str, Any]:
    """Compute every layer and the one map, then evaluate every rule.

    ``cells``: the cells a building ingest changed; only those are rescored
    (:func:`twin.risk.incremental.refresh_cells`, the same scores as a full compute) when the
    stored scores are a full compute of the current catalog, else everything is.
    ``rowset_cells``: of those, the cells that gained or lost their ``cell_stats`` row (the
    ingest's report; None: not known, looked for).

    ``caller``: the rules are evaluated as that API caller, under row-level security (only
    alerts of its scope change; see :func:`twin.alerts.evaluate.evaluate_on`); the risk map is
    the city's, the same for every caller, and is computed in full. Raises CatalogError,
    RuleError or ComputeError (naming the file) before anything is written when a layer or
    rule file is broken.
    """
    url = database_url(settings)
    catalog = load_catalog(settings.layers_dir, resolutions=settings.h3_resolutions)
    rules, errors = load_rules(settings.rules_dir)
    if errors:
        raise errors[0]
    risk: dict[str, Any]
    if cells is not None and can_refresh(url, catalog):
        risk = refresh_cells(url, catalog, cells, resolutions=settings.h3_resolutions,
                             k=settings.suppression_k, as_of=at,
                             rowset_cells=rowset_cells)  # fmt: skip
    else:
        risk = compute_risk(
            url, catalog, resolutions=settings.h3_resolutions, k=settings.suppression_k, as_of=at
        ).as_dict()
    if caller is None:
        return {"risk": risk, "alerts": evaluate(url, rules, at=at)}
    with psycopg.connect(url) as conn:
        act_as(conn, caller, settings.api_db_role)
        alerts = evaluate_on(conn, rules, at=at)
    return {"risk": risk, "alerts": alerts}


def refresh_quietly(
    settings: Settings,
    *,
    caller: Principal | None = None,
    cells: list[int] | None = None,
    rowset_cells: list[int] | None = None,
) -> dict[str, Any] | None:
    """:func:`refresh` for callers whose own work already succeeded (a simulation run, an
    ingest): a broken layer or rule file is logged, not raised, so it cannot fail the run."""
    try:
        return refresh(settings, caller=caller, cells=cells, rowset_cells=rowset_cells)
    except (CatalogError, RuleError, ComputeError) as exc:
        log.warning("risk refresh skipped: %s", exc)
        return None
