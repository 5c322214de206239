"""The sense -> warn -> dispatch loop: evaluate the sensor alert rules as readings arrive, and
dispatch a task for each alert raised by a rule marked ``dispatch = "auto"``.

A watcher subscribes to the in-process feed of stored readings (:class:`twin.sense.live.LiveHub`,
fed by the MQTT bridge and by SensorThings POSTs after commit). After a reading it waits
``settle_s`` for the rest of the burst (a gateway sends many at once), then evaluates, in one
transaction, only the rules whose indicator reads sensors (rain gauges, water levels): the
others change with simulation runs and the risk map, which evaluate them (twin.alerts.refresh).
A failed evaluation is logged and retried at the next reading; it never stops the bridge.

Evaluation and dispatch run as the database owner, city-wide, as ``twin alerts evaluate`` does;
the alerts and tasks then reach each user through the scoped push channel (``/api/stream``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from twin.alerts.evaluate import evaluate_on
from twin.alerts.indicators import INDICATORS
from twin.alerts.rules import Rule
from twin.errors import TwinError
from twin.sense.live import LiveHub
from twin.tasks import service as tasks

log = logging.getLogger(__name__)
ACTOR = "twin (auto dispatch)"


def sensor_rules(rules: list[Rule]) -> list[Rule]:
    """The rules whose indicator reads the latest sensor readings (its params name a kind)."""
    return [r for r in rules if "kind" in INDICATORS[r.indicator].params]


@dataclass
class WatchStats:
    evaluations: int = 0
    raised: int = 0
    dispatched: int = 0
    failures: int = 0
    last_error: str | None = None
    last_at: datetime | None = None
    counts: dict[str, dict[str, int]] = field(default_factory=dict)


class RuleWatch:
    """Evaluates ``rules`` (the sensor ones) after readings arrive on ``hub``.

    Parameters
    ----------
    db_url
        The database (libpq URL), connected to as its owner.
    rules
        All rules; only :func:`sensor_rules` of them are evaluated here.
    hub
        The live feed of stored readings.
    settle_s
        How long (s) to wait after a reading for the rest of its burst before evaluating.
    """

    def __init__(
        self, db_url: str, rules: list[Rule], *, hub: LiveHub, settle_s: float = 0.2
    ) -> None:
        self.db_url = db_url
        self.rules = sensor_rules(rules)
        self.by_id = {r.id: r for r in self.rules}
        self.hub = hub
        self.settle_s = settle_s
        self.stats = WatchStats()

    async def run(self) -> None:
        """Until cancelled: wait for readings, settle, evaluate, dispatch."""
        if not self.rules:
            log.info("no sensor alert rules: the rule watch is idle")
        async with self.hub.subscribe() as queue:
            while True:
                await queue.get()
                await asyncio.sleep(self.settle_s)
                while not queue.empty():
                    queue.get_nowait()
                if self.rules:
                    await self.evaluate_once()

    async def evaluate_once(self, *, at: datetime | None = None) -> dict[str, Any]:
        """Evaluate the sensor rules now (or ``at``) and dispatch for auto rules; never raises."""
        try:
            raised: dict[str, list[int]] = {}
            counts = await asyncio.to_thread(self._evaluate, at, raised)
            dispatched = await self._dispatch(raised)
        except (psycopg.Error, OSError) as exc:
            self.stats.failures += 1
            self.stats.last_error = str(exc)
            log.warning("sensor rule evaluation failed (retried at the next reading): %s", exc)
            return {"error": str(exc)}
        s = self.stats
        s.evaluations += 1
        s.raised += sum(len(v) for v in raised.values())
        s.dispatched += len(dispatched)
        s.counts, s.last_at, s.last_error = counts, at, None
        return {"counts": counts, "raised": raised, "tasks": dispatched}

    def _evaluate(self, at: datetime | None, raised: dict[str, list[int]]) -> Any:
        with psycopg.connect(self.db_url) as conn:
            return evaluate_on(conn, self.rules, at=at, raised=raised)

    async def _dispatch(self, raised: dict[str, list[int]]) -> list[int]:
        return await dispatch_raised(self.db_url, self.by_id, raised)


async def dispatch_raised(
    db_url: str, rules: dict[str, Rule], raised: dict[str, list[int]]
) -> list[int]:
    """A task for each alert in ``raised`` (rule id -> alert ids that became active) whose
    rule (in ``rules``, by id) says ``dispatch = "auto"``; returns the task ids.

    Shared by the rule watch (sensor readings) and the nowcast loop (twin.runs.nowloop). Each
    task goes to the alert's own area and acknowledges the alert, in its own transaction
    (twin.tasks.service.dispatch); an alert resolved meanwhile gets none (logged)."""
    auto = {rule_id for rule_id, rule in rules.items() if rule.dispatch == "auto"}
    todo = [(rules[rule_id], alert_id) for rule_id, ids in raised.items() if rule_id in auto
            for alert_id in ids]  # fmt: skip
    if not todo:
        return []
    out = []
    async with await psycopg.AsyncConnection.connect(db_url) as conn:
        for rule, alert_id in todo:
            try:
                task = await tasks.dispatch(
                    conn, title=rule.title, actor=ACTOR, alert_id=alert_id,
                    priority=1 if rule.level == "red" else 2,
                    note=f"dispatched automatically by rule {rule.id}",
                )  # fmt: skip
            except TwinError as exc:  # e.g. the alert was resolved meanwhile
                await conn.rollback()
                log.warning("no task for alert %s: %s", alert_id, exc)
                continue
            await conn.commit()
            out.append(int(task["id"]))
    return out
