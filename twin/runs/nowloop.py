"""The nowcast in the live loop: a step every ``TWIN_NOWCAST_EVERY_S`` seconds, then the risk
layers it feeds and the alert rules on it, with tasks for the rules that dispatch by themselves.

:class:`NowcastLoop` runs in the process that runs the rule watch (the API's lifespan,
``twin sense run``). Every ``every_s`` seconds, when a rain gauge has read in the last
``max_age_s`` (the readings a step may use; with none fresh there is no rain to go on), it:

1. runs one nowcast step (:func:`twin.runs.nowcast.step`, in a thread);
2. updates the nowcast-fed risk layers and the one map at the cells that changed
   (:func:`twin.risk.nowfeed.update_nowcast_layers`; the risk tiles' version is bumped, so
   ``/api/stream`` sends a ``tiles`` event);
3. evaluates the rules on the nowcast (indicator ``nowcast_depth_m``) and on the risk map
   (``risk_level``) at the step's time, and dispatches a task for each alert raised by a rule
   with ``dispatch = "auto"`` (:func:`twin.alerts.watch.dispatch_raised`, as the rule watch);
4. when the roads the step finds closed or slowed differ from those the latest traffic run
   closed for the nowcast (``TWIN_NOWCAST_TRAFFIC``), assigns the peak again with them closed
   or slowed, against a baseline without (:func:`twin.runs.traffic.run_traffic` with
   ``nowcast_steps``), with the settings of the latest traffic run (with no traffic run yet
   there is nothing to re-assign), and then scores the risk map in full, since the
   traffic-fed layers changed too. The next step waits for it.

A failure is logged and counted; the next tick tries again, and nothing here stops the bridge
or the rule watch. A tick is skipped while the latest step is younger than half a period (an
API with several workers runs a loop in each: the first one steps, the others see it).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from twin.alerts.evaluate import evaluate_on
from twin.alerts.rules import Rule, RuleError
from twin.alerts.watch import dispatch_raised
from twin.db.engine import database_url
from twin.db.queries import query
from twin.db.runs import latest_run_id
from twin.risk.catalog import CatalogError, load_catalog
from twin.risk.compute import ComputeError, compute_risk
from twin.risk.nowfeed import update_nowcast_layers
from twin.runs.nowcast import SQL, NowcastError, NowcastParams, step
from twin.runs.traffic import TrafficParams, run_traffic
from twin.settings import Settings

log = logging.getLogger(__name__)
#: The indicators a step changes: rules on them are evaluated after each step.
INDICATORS = ("nowcast_depth_m", "risk_level")
FAILURES = (NowcastError, CatalogError, ComputeError, RuleError, psycopg.Error, OSError)


def _road_states(conn: psycopg.Connection, step_id: int) -> frozenset[tuple[int, str]]:
    """The roads a nowcast step finds closed or slowed now: (link id, state)."""
    rows = conn.execute(
        "SELECT link_id, state_now FROM twin.nowcast_link"
        " WHERE step_id = %s AND state_now <> 'passable'",
        (step_id,),
    ).fetchall()
    return frozenset((int(link), str(state)) for link, state in rows)


def nowcast_rules(rules: list[Rule]) -> list[Rule]:
    """The rules evaluated after a step: on the nowcast and on the risk map."""
    return [r for r in rules if r.indicator in INDICATORS]


@dataclass
class LoopStats:
    steps: int = 0
    skipped: int = 0
    failures: int = 0
    dispatched: int = 0
    reassigned: int = 0
    last_error: str | None = None
    last_as_of: datetime | None = None


class NowcastLoop:
    """A nowcast step every ``every_s`` seconds, with the risk update and the nowcast rules.

    Parameters
    ----------
    settings
        The twin's settings (database, layers, H3 resolutions, suppression k).
    rules
        All alert rules; :func:`nowcast_rules` of them are evaluated after each step.
    every_s
        Period (s); 0 or less: :meth:`run` returns at once.
    params
        The steps' parameters (default :class:`NowcastParams`).
    """

    def __init__(
        self,
        settings: Settings,
        rules: list[Rule],
        *,
        every_s: float,
        params: NowcastParams | None = None,
    ) -> None:
        self.settings = settings
        self.url = database_url(settings)
        self.rules = nowcast_rules(rules)
        self.by_id = {r.id: r for r in self.rules}
        self.every_s = every_s
        self.params = params or NowcastParams()
        self.stats = LoopStats()

    async def run(self) -> None:
        """Until cancelled: every ``every_s`` seconds, :meth:`step_once`."""
        if self.every_s <= 0:
            log.info("nowcast loop off (TWIN_NOWCAST_EVERY_S = 0)")
            return
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.step_once(timed=True)
            except Exception:  # never let a surprise end the loop (or the process's others)
                self.stats.failures += 1
                log.exception("nowcast loop: unexpected failure (retried next time)")

    def _due(self, at: datetime, timed: bool) -> str | None:
        """Why not to step at ``at`` (None: step)."""
        start = at - timedelta(seconds=self.params.max_age_s)
        with psycopg.connect(self.url) as conn:
            row = conn.execute(query(SQL, "loop_due"), {"start": start, "end": at}).fetchone()
        assert row is not None
        fresh, last = row
        if timed and last is not None and at - last < timedelta(seconds=self.every_s / 2):
            return f"the latest step ({last.isoformat()}) is younger than half a period"
        if not fresh:
            return "no rain-gauge reading in the last max_age_s"
        return None

    async def step_once(
        self, *, as_of: datetime | None = None, timed: bool = False
    ) -> dict[str, Any]:
        """One step at ``as_of`` (default now), the risk update, the rules and the tasks.

        Never raises for a failure of the step, the database or a layer or rule file: the
        answer then has ``error`` (and what was done before it). ``skipped`` says why no step
        ran (no fresh gauge reading; for the timer, a step younger than half a period)."""
        at = as_of or datetime.now(UTC)
        out: dict[str, Any] = {"as_of": at.isoformat()}
        try:
            why = await asyncio.to_thread(self._due, at, timed)
            if why is not None:
                self.stats.skipped += 1
                return {**out, "skipped": why}
            out["step"] = await asyncio.to_thread(step, self.settings, self.params, as_of=at)
            self.stats.steps += 1
            self.stats.last_as_of = at
            step_id = out["step"]["step_id"]
            out["risk"] = await asyncio.to_thread(self._risk, at, step_id, False)
            raised: dict[str, list[int]] = {}
            out["alerts"] = await asyncio.to_thread(self._evaluate, at, raised)
            out["raised"] = raised
            out["tasks"] = await dispatch_raised(self.url, self.by_id, raised)
            self.stats.dispatched += len(out["tasks"])
            # Last, so that no alert or task waits for it: a re-assignment is two assignments.
            if self.settings.nowcast_traffic:
                out["traffic"] = await asyncio.to_thread(self.reassign, step_id)
                if "run_id" in out["traffic"]:
                    # The traffic-fed layers changed: everything is scored again (the same as
                    # `twin risk compute`); their rules are evaluated at the next step.
                    out["risk_after_traffic"] = await asyncio.to_thread(
                        self._risk, at, step_id, True
                    )
            self.stats.last_error = None
        except FAILURES as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            log.warning("nowcast loop at %s failed (retried next time): %s", at.isoformat(), exc)
            out["error"] = str(exc)
        return out

    def reassign(self, step_id: int) -> dict[str, Any]:
        """Assign the peak again with the roads step ``step_id`` closes or slows, when they
        differ from those the latest traffic run closed for the nowcast (none, when that run
        came from elsewhere); returns the run's summary, or ``skipped`` with why not.

        What was last re-assigned is read from the database, not kept here: a restarted loop,
        another worker's loop and a run started by hand all see the same latest run. Never
        raises: a refused or failed run is logged and counted like a failed step and reported
        as ``error``; the next step tries again."""
        try:
            with psycopg.connect(self.url) as conn:
                states = _road_states(conn, step_id)
                latest = latest_run_id(conn, "traffic")
                row = conn.execute(
                    "SELECT params FROM twin.sim_run WHERE id = %s", (latest,)
                ).fetchone()
                if row is None:
                    return {"skipped": "no traffic run to re-assign (run `twin simulate traffic`)"}
                last = row[0] or {}
                before = last.get("nowcast_steps") or []
                if states == (_road_states(conn, before[-1]) if before else frozenset()):
                    return {"skipped": "the roads' states are those of the latest traffic run"}
            keep = ("period", "peak_share", "zone_res", "target_trip_min", "events",
                    "slowed_capacity", "gap", "max_iter")  # fmt: skip
            params = TrafficParams(
                **{k: last[k] for k in keep if k in last},
                nowcast_steps=(step_id,),
                extra={"trigger": "nowcast"},
            )
            summary = run_traffic(self.settings, params)
        except Exception as exc:  # a failed re-assignment must not cost the step its alerts
            self.stats.failures += 1
            self.stats.last_error = f"traffic re-assignment: {exc}"
            log.warning("nowcast loop: traffic re-assignment after step %s failed: %s",
                        step_id, exc)  # fmt: skip
            return {"error": str(exc)}
        self.stats.reassigned += 1
        return summary

    def _risk(self, at: datetime, step_id: int, full: bool) -> dict[str, Any]:
        s = self.settings
        catalog = load_catalog(s.layers_dir, resolutions=s.h3_resolutions)
        if full:
            report = compute_risk(self.url, catalog, resolutions=s.h3_resolutions,
                                  k=s.suppression_k, as_of=at)  # fmt: skip
            return {**report.as_dict(), "full": True, "nowcast_step": step_id}
        return update_nowcast_layers(
            self.url, catalog, resolutions=s.h3_resolutions, k=s.suppression_k, as_of=at
        )

    def _evaluate(self, at: datetime, raised: dict[str, list[int]]) -> dict[str, Any]:
        with psycopg.connect(self.url) as conn:
            return evaluate_on(conn, self.rules, at=at, raised=raised)
