"""Simulation jobs started through the API: one worker thread, runs queued in ``sim_run``.

The solver's kernels release the GIL, so the API keeps answering (and reporting progress)
while a storm runs. One worker at a time: two storms would only halve each other's speed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg

from twin.access.principal import Principal, act_as
from twin.alerts.refresh import refresh_quietly
from twin.db.engine import database_url
from twin.runs import store
from twin.runs.flood import MM_H, FloodParams, run_flood
from twin.runs.traffic import TrafficParams, check_references, run_traffic
from twin.settings import Settings
from twin.sim.rain import Series

log = logging.getLogger(__name__)


def executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="twin-sim")


def flood_params(body: dict[str, Any]) -> FloodParams:
    """The API's request fields (all present: the request model fills defaults) -> run
    parameters. ValueError on a bad rain series."""
    series = None
    if body["rain_series"]:
        series = Series.from_pairs(body["rain_series"], interp="step", scale=MM_H)
    return FloodParams(
        storm=body["storm"],
        return_period_years=body["return_period_years"],
        duration_s=body["duration_min"] * 60,
        after_s=body["after_min"] * 60,
        peak_ratio=body["peak_ratio"],
        rain_series=series,
        dtype=body["dtype"],
    )


def _submit(
    app: Any,
    kind: str,
    params: dict[str, Any],
    run: Callable[[Settings, int], object],
    check: Callable[[psycopg.Connection], None] | None = None,
    caller: Principal | None = None,
) -> int:
    """Check, record a queued run and hand it to the worker; returns the run id.

    ``caller``: the API caller the run is for. The queued run is recorded as that caller, and
    the alert rules evaluated after the run run as it (its scope only); the run itself and the
    risk map it refreshes are the city's, computed in full."""
    settings: Settings = app.state.settings
    with psycopg.connect(database_url(settings), autocommit=True) as conn, conn.transaction():
        if caller is not None:
            act_as(conn, caller, settings.api_db_role)
        if check is not None:
            check(conn)
        run_id = store.create_run(conn, kind, params,
                                  created_by=caller.user_id if caller else None)  # fmt: skip
    pool: ThreadPoolExecutor = app.state.jobs

    def work() -> None:
        try:
            run(settings, run_id)
        except store.RunCancelled:  # dismissed while queued or running
            log.info("%s run %d cancelled", kind, run_id)
            return
        except Exception:  # recorded on the run itself; the worker must live on
            log.exception("%s run %d failed", kind, run_id)
            return
        # New results change the risk map and may fire rules (flood depth, delay index).
        refresh_quietly(settings, caller=caller)

    pool.submit(work)
    return run_id


def submit_flood(app: Any, params: FloodParams, caller: Principal | None = None) -> int:
    """Queue a storm; returns the run id."""
    # A scoped user's storm raises its simulated events only within the user's scope.
    areas = caller.scope if caller is not None and caller.scoped else None
    return _submit(app, "flood", params.as_json(),
                   lambda s, rid: run_flood(s, params, run_id=rid, event_areas=areas),
                   caller=caller)  # fmt: skip


def submit_traffic(app: Any, params: TrafficParams, caller: Principal | None = None) -> int:
    """Queue a traffic run; TrafficRunError (before anything is written) on an unknown flood
    run or link."""
    return _submit(
        app, "traffic", params.as_json(),
        lambda s, rid: run_traffic(s, params, run_id=rid),
        check=lambda conn: check_references(conn, params), caller=caller,
    )  # fmt: skip
