"""Evaluating alert rules: one alert per rule and subject, raised, repeated, escalated, resolved.

:func:`decide` is the whole policy as a pure function (what to do with one rule's readings
given the open alerts and the recent resolutions); :func:`evaluate` reads the indicators, calls
it and writes the result in one transaction. Policy:

- the condition holds and no alert is open: a new alert, ``active`` at once when the rule's
  sensitivity is 1, else ``pending`` until it has held for ``sensitivity`` evaluations in a row,
  unless an alert of the same subject was resolved less than ``cooldown`` ago (no flapping);
- it holds and an alert is open: the same alert counts one more hit (deduplication: never a
  second alert); every ``escalate_after`` hits after it became active it moves one level up
  the admin hierarchy (grid -> community -> street -> district -> city) and one colour up;
- it no longer holds: a pending alert is dropped (resolved, never raised); an active or
  acknowledged one is resolved when the rule says ``auto_resolve``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from twin.alerts.indicators import INDICATORS
from twin.alerts.rules import Rule
from twin.db.runs import latest_run_id
from twin.risk.catalog import LEVELS


@dataclass(frozen=True)
class Reading:
    subject: str
    value: float
    cell: int | None = None
    patch: int | None = None  # admin area holding the subject (a grid patch, or the city)
    run_id: int | None = None


@dataclass(frozen=True)
class OpenAlert:
    id: int
    status: str  # pending, active, acknowledged
    hits: int
    escalation: int
    level: str
    area_id: int | None


@dataclass(frozen=True)
class Repeat:
    """An open alert that fires again."""

    alert_id: int
    reading: Reading
    status: str
    escalation: int
    level: str
    escalated: bool  # moved up a level at this evaluation
    activated: bool  # pending until now


@dataclass
class Decision:
    create: list[tuple[Reading, str]] = field(default_factory=list)  # (reading, status)
    repeat: list[Repeat] = field(default_factory=list)
    resolve: list[int] = field(default_factory=list)
    cooled: list[str] = field(default_factory=list)  # subjects held back by the cooldown
    raised_ids: list[int] = field(default_factory=list)  # alerts that became active now

    def counts(self) -> dict[str, int]:
        return {
            "created": len(self.create),
            "raised": sum(1 for _, s in self.create if s == "active")
            + sum(1 for a in self.repeat if a.activated),
            "repeated": len(self.repeat),
            "escalated": sum(1 for a in self.repeat if a.escalated),
            "resolved": len(self.resolve),
            "cooled": len(self.cooled),
        }


def _up(level: str, steps: int = 1) -> str:
    return LEVELS[min(LEVELS.index(level) + steps, len(LEVELS) - 1)]


def decide(
    rule: Rule,
    readings: list[Reading],
    open_alerts: dict[str, OpenAlert],
    recently_resolved: set[str],
) -> Decision:
    """What one evaluation of ``rule`` does.

    Parameters
    ----------
    rule
        The rule.
    readings
        The indicator's current value per subject.
    open_alerts
        Subject -> the rule's open (pending, active or acknowledged) alert on it.
    recently_resolved
        Subjects whose alert of this rule was resolved less than the cooldown ago.
    """
    out = Decision()
    firing = set()
    for r in readings:
        if r.value is None or not rule.holds(r.value):
            continue
        firing.add(r.subject)
        alert = open_alerts.get(r.subject)
        if alert is None:
            if r.subject in recently_resolved:
                out.cooled.append(r.subject)
                continue
            out.create.append((r, "active" if rule.sensitivity <= 1 else "pending"))
            continue
        hits = alert.hits + 1
        status = alert.status
        if status == "pending" and hits >= rule.sensitivity:
            status = "active"
        escalation, level, escalated = alert.escalation, alert.level, False
        # Hits since the alert became active (it became active at hit number `sensitivity`).
        since = hits - rule.sensitivity
        if (
            status != "pending"
            and rule.escalate_after
            and since > 0
            and since % rule.escalate_after == 0
        ):
            escalation, level, escalated = escalation + 1, _up(level), True
        out.repeat.append(
            Repeat(alert.id, r, status, escalation, level, escalated,
                   activated=alert.status == "pending" and status == "active")
        )  # fmt: skip
    for subject, alert in open_alerts.items():
        if subject in firing:
            continue
        if alert.status == "pending" or rule.auto_resolve:
            out.resolve.append(alert.id)
    return out


def _message(rule: Rule, r: Reading) -> str:
    unit = INDICATORS[rule.indicator].unit
    return (f"{rule.title}: {r.subject} at {r.value:.3g} {unit} "
            f"({rule.op} {rule.threshold:g})")  # fmt: skip


def read_indicator(
    conn: psycopg.Connection, rule: Rule, runs: dict[str, int | None], at: datetime
) -> list[Reading]:
    spec = INDICATORS[rule.indicator]
    params = {**rule.params, "as_of": at}
    params.update(flood_run=runs["flood"], traffic_run=runs["traffic"])
    rows = conn.execute(spec.sql.encode(), params).fetchall()
    return [
        Reading(subject=s, value=float(v), cell=c, patch=p, run_id=run)
        for s, c, p, v, run in rows
        if v is not None
    ]


# New alerts only in areas the connection's scope allows (all for local tools); one already
# open for the key but outside the scope (so unseen) is left alone rather than duplicated.
INSERT_SQL = """
INSERT INTO twin.alert (rule_id, dedup_key, subject, level, status, area_id, cell, value,
                        threshold, message, sim_run_id, first_seen, last_seen)
SELECT %(rule)s, %(key)s, %(subject)s, %(level)s, %(status)s, a.area, %(cell)s, %(value)s,
       %(threshold)s, %(message)s, %(run)s, %(at)s, %(at)s
FROM (SELECT coalesce(twin.area_at_level(%(patch)s, %(area_level)s), %(patch)s) AS area) a
WHERE twin.scope_allows(a.area)
ON CONFLICT (dedup_key) WHERE status <> 'resolved' DO NOTHING
RETURNING id
"""

# An escalation moves the alert to the parent area only where the scope allows the parent.
REPEAT_SQL = """
UPDATE twin.alert SET hits = hits + 1, last_seen = %(at)s, value = %(value)s,
       status = CASE WHEN status = 'acknowledged' THEN status ELSE %(status)s END,
       escalation = %(escalation)s, level = %(level)s, message = %(message)s,
       sim_run_id = coalesce(%(run)s, sim_run_id),
       area_id = CASE WHEN %(escalated)s
           THEN coalesce((SELECT p.parent_id FROM twin.admin_area p
                          WHERE p.id = twin.alert.area_id
                            AND twin.scope_allows(p.parent_id)), area_id)
           ELSE area_id END
WHERE id = %(id)s
"""


def _write(conn: psycopg.Connection, rule: Rule, d: Decision, at: datetime) -> Decision:
    """Apply ``d``; returns what was applied (row security may leave some out)."""
    done = Decision(cooled=d.cooled)
    for r, status in d.create:
        cur = conn.execute(
            INSERT_SQL,
            {"rule": rule.id, "key": f"{rule.id}:{r.subject}", "subject": r.subject,
             "level": rule.level, "status": status, "patch": r.patch,
             "area_level": rule.area_level, "cell": r.cell, "value": r.value,
             "threshold": rule.threshold, "message": _message(rule, r), "run": r.run_id,
             "at": at},
        )  # fmt: skip
        row = cur.fetchone()
        if row is not None:
            done.create.append((r, status))
            if status == "active":
                done.raised_ids.append(int(row[0]))
    for a in d.repeat:
        cur = conn.execute(
            REPEAT_SQL,
            {"at": at, "value": a.reading.value, "status": a.status,
             "escalation": a.escalation, "level": a.level, "message": _message(rule, a.reading),
             "run": a.reading.run_id, "escalated": a.escalated, "id": a.alert_id},
        )  # fmt: skip
        if cur.rowcount:
            done.repeat.append(a)
            if a.activated:
                done.raised_ids.append(a.alert_id)
    if d.resolve:
        cur = conn.execute(
            "UPDATE twin.alert SET status = 'resolved', resolved_at = %s WHERE id = ANY(%s)"
            " RETURNING id",
            (at, d.resolve),
        )
        done.resolve = [row[0] for row in cur.fetchall()]
    return done


def evaluate(
    url: str, rules: list[Rule], *, at: datetime | None = None, only: list[str] | None = None
) -> dict[str, dict[str, int]]:
    """Evaluate ``rules`` (or ``only`` these ids) now (or ``at``); one transaction.

    Returns per rule the counts of created, repeated, escalated, resolved and cooled alerts.
    """
    with psycopg.connect(url) as conn:
        return evaluate_on(conn, rules, at=at, only=only)


def evaluate_on(
    conn: psycopg.Connection,
    rules: list[Rule],
    *,
    at: datetime | None = None,
    only: list[str] | None = None,
    raised: dict[str, list[int]] | None = None,
) -> dict[str, dict[str, int]]:
    """:func:`evaluate` in ``conn``'s transaction (not committed here).

    ``raised``, when given, receives per rule the ids of the alerts that became active at this
    evaluation (new ones, and pending ones activated): those to dispatch tasks for.

    On a connection running as a scoped caller (``twin.access.principal.act_as``) row-level security
    limits the evaluation to the caller's scope: only the alerts it may see are repeated,
    escalated or resolved, new alerts are raised only in areas it may touch, and an escalation
    stops at the top of its scope. Alerts of other areas are left exactly as they were."""
    at = at or datetime.now(UTC)
    chosen = [r for r in rules if not only or r.id in only]
    out: dict[str, dict[str, int]] = {}
    runs = {"flood": latest_run_id(conn, "flood"), "traffic": latest_run_id(conn, "traffic")}
    for rule in chosen:
        # Serialise evaluations of one rule (the API and a CLI may run them together).
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('twin.alert:' || %s))", (rule.id,))
        readings = read_indicator(conn, rule, runs, at)
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT id, subject, status, hits, escalation, level, area_id FROM twin.alert"
                " WHERE rule_id = %s AND status <> 'resolved'",
                (rule.id,),
            )
            open_alerts = {row.pop("subject"): OpenAlert(**row) for row in cur.fetchall()}
        cooled = {
            s for (s,) in conn.execute(
                "SELECT DISTINCT subject FROM twin.alert WHERE rule_id = %s"
                " AND status = 'resolved' AND resolved_at > %s",
                (rule.id, at - rule.cooldown),
            ).fetchall()
        }  # fmt: skip
        d = decide(rule, readings, open_alerts, cooled)
        done = _write(conn, rule, d, at)
        out[rule.id] = done.counts()
        if raised is not None and done.raised_ids:
            raised[rule.id] = done.raised_ids
    return out


def alert_row(row: dict[str, Any]) -> dict[str, Any]:
    """An alert as the API serves it: cells as hex, and where to put it on a map (``lon``,
    ``lat``: the cell's centre, else a point inside its area)."""
    from twin.grid import cell_centers, to_hex

    out = dict(row)
    if out.get("cell") is not None:
        lon, lat = cell_centers([int(out["cell"])])
        out["lon"], out["lat"] = float(lon[0]), float(lat[0])
        out["cell"] = to_hex([int(out["cell"])])[0]
    return out


OPEN_STATUSES = ("pending", "active", "acknowledged")
ALERT_STATUSES = (*OPEN_STATUSES, "resolved")

ALERTS_SQL = """
SELECT al.id, al.rule_id, al.subject, al.level, al.status, al.cell, al.value, al.threshold,
       al.message, al.hits, al.escalation, al.sim_run_id, al.first_seen, al.last_seen,
       al.acknowledged_at, al.resolved_at, al.area_id, a.code AS area_code, a.name AS area_name,
       a.level AS area_level, ST_X(ST_PointOnSurface(a.geom)) AS lon,
       ST_Y(ST_PointOnSurface(a.geom)) AS lat
FROM twin.alert al LEFT JOIN twin.admin_area a ON a.id = al.area_id
WHERE al.status = ANY(%(statuses)s)
  AND (%(rule)s::text IS NULL OR al.rule_id = %(rule)s)
  AND (%(level)s::text IS NULL OR al.level = %(level)s)
  AND (%(area)s::bigint IS NULL OR al.area_id IN (SELECT twin.area_subtree(%(area)s)))
  AND (%(id)s::bigint IS NULL OR al.id = %(id)s)
ORDER BY al.last_seen DESC, al.id DESC
LIMIT %(limit)s
"""


def status_filter(text: str) -> list[str]:
    """'open' (pending, active, acknowledged), 'all', 'active' (active and acknowledged) or one
    status -> the statuses to list."""
    if text == "open":
        return list(OPEN_STATUSES)
    if text == "all":
        return list(ALERT_STATUSES)
    if text == "active":
        return ["active", "acknowledged"]
    if text in ALERT_STATUSES:
        return [text]
    raise ValueError(f"one of open, active, all, {', '.join(ALERT_STATUSES)}; got {text!r}")
