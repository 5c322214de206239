"""The after-action review (复盘) of a period: what happened and how fast.

:func:`build_review` gathers, for ``[from, to)`` and an admin area's subtree (the whole city
when none is given): the rain and water levels the sensors saw, what the nowcast predicted an
hour ahead against what the sensors then read, every alert raised with the times from the
threshold crossing to raised, acknowledged and resolved, every task dispatched with the times
to accepted and done and the overdue ones, and the roads closed with the delay they caused.
Read-only, as the caller (row-level security scopes alerts and tasks); no people counts.
:func:`write_review` renders ``review.md``, a self-contained ``review.html`` (inline SVG) and
``review.json`` with the report renderer (:mod:`twin.reporting.render`).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from twin.alerts.rules import load_rules
from twin.city.areas import find_area, root_area
from twin.db.engine import database_url
from twin.db.queries import query
from twin.errors import InvalidParameterError
from twin.reporting.figures import fetch_all
from twin.reporting.review_render import render_review
from twin.settings import Settings

SQL = "review.sql"
#: The longest period a review covers.
MAX_SPAN = timedelta(days=31)
#: Longest an intensity reading (mm/h) is held when summing rain depth (s): the nowcast's
#: stale age, so a dead gauge does not keep raining.
HOLD_S = 900.0
#: How far a prediction's step may be from ``t - 60 min`` to pair with a skill row at ``t`` (s).
PAIR_TOLERANCE_S = 150.0
#: How far back from an alert's first_seen its threshold crossing is looked for (s).
CROSSING_LOOKBACK_S = 86400.0
#: Sensor indicators: their alerts' subject is a sensor code.
SENSOR_INDICATORS = ("rain_mm_h", "water_level_m")


@dataclass(frozen=True)
class Period:
    """The review's period ``[start, end)`` (timezone-aware)."""

    start: datetime
    end: datetime


def _instant(text: str | datetime | None, parameter: str) -> datetime:
    if text is None or (isinstance(text, str) and not text.strip()):
        raise InvalidParameterError(parameter, "required: an ISO 8601 date or date-time")
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterError(
                parameter, f"{text!r} is not an ISO 8601 date or date-time"
            ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def parse_period(start: str | datetime | None, end: str | datetime | None) -> Period:
    """The period from ``start`` to ``end`` (ISO 8601; UTC when without offset).

    Raises
    ------
    InvalidParameterError
        naming ``from`` or ``to`` when one is missing or unparseable, ``to`` when it is not
        after ``from`` or more than :data:`MAX_SPAN` after it.
    """
    a, b = _instant(start, "from"), _instant(end, "to")
    if b <= a:
        raise InvalidParameterError("to", f"{b.isoformat()} is not after from ({a.isoformat()})")
    if b - a > MAX_SPAN:
        raise InvalidParameterError(
            "to", f"the period is {b - a}; a review covers at most {MAX_SPAN.days} days"
        )
    return Period(a, b)


def quantile(xs: Sequence[float], q: float) -> float | None:
    """The ``q`` quantile of ``xs`` with linear interpolation between order statistics
    (PostgreSQL's ``percentile_cont``); None for no values."""
    if not xs:
        return None
    s = sorted(xs)
    pos = q * (len(s) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def stats(xs: Sequence[float]) -> dict[str, Any]:
    """Count, median and 90th percentile (``percentile_cont``) of durations (s)."""
    return {"n": len(xs), "median_s": quantile(xs, 0.5), "p90_s": quantile(xs, 0.9)}


def _secs(a: datetime | None, b: datetime | None) -> float | None:
    return (b - a).total_seconds() if a is not None and b is not None else None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


async def _rows(conn: psycopg.AsyncConnection, name: str, p: Mapping[str, Any]) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(SQL, name), p)
        return list(await cur.fetchall())


async def sensors_section(conn: psycopg.AsyncConnection, p: Mapping[str, Any]) -> dict[str, Any]:
    """Rain gauges and water-level sensors: per sensor the readings, the maximum and its
    time, the rain depth (mm); and the largest reading per 5-minute bucket."""
    rows = await _rows(conn, "sensors", {**p, "hold_s": HOLD_S})
    buckets = await _rows(conn, "sensor_buckets", {**p, "sensors": [r["id"] for r in rows]})
    series: dict[int, list[dict[str, Any]]] = {}
    for b in buckets:
        series.setdefault(b["sensor_id"], []).append(
            {"t": b["bucket"].isoformat(), "value": b["value"]}
        )
    out: dict[str, list[dict[str, Any]]] = {"rain_gauge": [], "water_level": []}
    for r in rows:
        out[r["kind"]].append(
            {
                "id": r["id"],
                "code": r["code"],
                "unit": r["unit"],
                "readings": int(r["readings"]),
                "max": r["max_value"],
                "max_at": _iso(r["max_at"]),
                **({"rain_mm": float(r["rain_mm"])} if r["kind"] == "rain_gauge" else {}),
                "buckets": series.get(r["id"], []),
            }
        )
    return {"rain": out["rain_gauge"], "water_level": out["water_level"]}


async def nowcast_section(conn: psycopg.AsyncConnection, p: Mapping[str, Any]) -> dict[str, Any]:
    """Skill rows of the period paired with the +60 min prediction made an hour before:
    error = predicted - observed depth (m); bias (mean error) and RMSE over the pairs."""
    steps = (await _rows(conn, "nowcast_steps", p))[0]
    pairs = []
    for r in await _rows(conn, "nowcast_pairs", {**p, "tol_s": PAIR_TOLERANCE_S}):
        pred = r["predicted_depth_m"]
        pairs.append(
            {
                "sensor": r["code"],
                "t": r["t"].isoformat(),
                "observed_depth_m": r["observed_depth_m"],
                "modelled_now_m": r["modelled_now_m"],
                "predicted_at": _iso(r["predicted_at"]),
                "predicted_depth_m": pred,
                "error_m": None if pred is None else pred - r["observed_depth_m"],
            }
        )
    errs = [x["error_m"] for x in pairs if x["error_m"] is not None]
    return {
        "steps": int(steps["n"]),
        "first_step": _iso(steps["first"]),
        "last_step": _iso(steps["last"]),
        "skill_rows": len(pairs),
        "paired": len(errs),
        "bias_m": sum(errs) / len(errs) if errs else None,
        "rmse_m": math.sqrt(sum(e * e for e in errs) / len(errs)) if errs else None,
        "pairs": pairs,
    }


def sensor_rules(settings: Settings) -> dict[str, list[str]]:
    """The ids of the sensor alert rules of ``settings.rules_dir`` by comparison."""
    rules, _ = load_rules(settings.rules_dir)
    sensor = [r for r in rules if r.indicator in SENSOR_INDICATORS]
    return {
        "ge": [r.id for r in sensor if r.op == ">="],
        "gt": [r.id for r in sensor if r.op == ">"],
    }


async def alerts_section(
    conn: psycopg.AsyncConnection, p: Mapping[str, Any], rules: Mapping[str, list[str]]
) -> dict[str, Any]:
    """Every alert raised in the period: time to raised (first_seen minus the first reading
    over the threshold, for sensor rules; else 0), to acknowledged and to resolved (s)."""
    alerts = []
    for r in await _rows(conn, "alerts", {**p, **rules, "lookback_s": CROSSING_LOOKBACK_S}):
        derived = r["crossed_at"] is not None
        alerts.append(
            {
                "id": r["id"],
                "rule_id": r["rule_id"],
                "subject": r["subject"],
                "level": r["level"],
                "status": r["status"],
                "area_code": r["area_code"],
                "value": r["value"],
                "threshold": r["threshold"],
                "crossed_at": _iso(r["crossed_at"]),
                "first_seen": r["first_seen"].isoformat(),
                "acknowledged_at": _iso(r["acknowledged_at"]),
                "resolved_at": _iso(r["resolved_at"]),
                "crossing_derived": derived,
                "to_raise_s": _secs(r["crossed_at"], r["first_seen"]) if derived else 0.0,
                "to_ack_s": _secs(r["first_seen"], r["acknowledged_at"]),
                "to_resolve_s": _secs(r["first_seen"], r["resolved_at"]),
            }
        )
    return {
        "alerts": alerts,
        "derived": sum(a["crossing_derived"] for a in alerts),
        **{
            key: stats([a[key] for a in alerts if a[key] is not None])
            for key in ("to_raise_s", "to_ack_s", "to_resolve_s")
        },
    }


async def tasks_section(conn: psycopg.AsyncConnection, p: Mapping[str, Any]) -> dict[str, Any]:
    """Every task dispatched in the period: times from dispatch to accepted, accepted to done
    and dispatch to done (s); overdue when its due time passed before it was done or closed,
    or it was still open at the end of the period."""
    tasks = []
    for r in await _rows(conn, "tasks", p):
        finished = min((t for t in (r["done_at"], r["closed_at"]) if t is not None), default=None)
        due = r["due_at"]
        tasks.append(
            {
                "id": r["id"],
                "title": r["title"],
                "state": r["state"],
                "priority": r["priority"],
                "area_code": r["area_code"],
                "alert_id": r["alert_id"],
                "created_at": r["created_at"].isoformat(),
                "due_at": _iso(due),
                "accepted_at": _iso(r["accepted_at"]),
                "done_at": _iso(r["done_at"]),
                "closed_at": _iso(r["closed_at"]),
                "to_accept_s": _secs(r["created_at"], r["accepted_at"]),
                "accept_to_done_s": _secs(r["accepted_at"], r["done_at"]),
                "to_done_s": _secs(r["created_at"], r["done_at"]),
                "overdue": due is not None and due < (finished or p["to"]),
            }
        )
    return {
        "tasks": tasks,
        "overdue": [t["id"] for t in tasks if t["overdue"]],
        **{
            key: stats([t[key] for t in tasks if t[key] is not None])
            for key in ("to_accept_s", "accept_to_done_s", "to_done_s")
        },
    }


async def roads_section(conn: psycopg.AsyncConnection, p: Mapping[str, Any]) -> dict[str, Any]:
    """Road links closed by storm runs finished in the period and seen closed by the nowcast,
    and the extra travel time (veh-h) traffic runs with closures found against their baseline."""
    flood = {r["id"]: {"run_id": r["id"], "finished_at": r["finished_at"].isoformat(),
                       "closed": []} for r in await _rows(conn, "flood_runs", p)}  # fmt: skip
    for r in await _rows(conn, "flood_closures", p):
        flood[r["run_id"]]["closed"].append(
            {k: r[k] for k in ("link_id", "name", "road_class", "max_depth_m")}
        )
    nowcast = [
        {**r, "first_closed": r["first_closed"].isoformat(),
         "last_closed": r["last_closed"].isoformat(), "steps": int(r["steps"])}
        for r in await _rows(conn, "nowcast_closures", p)
    ]  # fmt: skip
    traffic = [
        {**r, "finished_at": r["finished_at"].isoformat(), "flood_runs": r["flood_runs"] or []}
        for r in await _rows(conn, "traffic_delays", p)
    ]
    return {
        "flood_runs": list(flood.values()),
        "closed_links": len({c["link_id"] for f in flood.values() for c in f["closed"]}),
        "nowcast": nowcast,
        "traffic": traffic,
    }


async def build_review(
    conn: psycopg.AsyncConnection,
    *,
    start: str | datetime | None,
    end: str | datetime | None,
    area: str | int | None = None,
    rules: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Everything the review of ``[start, end)`` says, as plain data.

    Parameters
    ----------
    conn
        An async connection, as the caller (row-level security scopes alerts and tasks).
    start, end
        The period (ISO 8601 text or aware datetimes; UTC without offset), at most 31 days.
    area
        An admin area's id or code: its subtree only; the whole city when None.
    rules
        Sensor alert rules by comparison: ``{"ge": [ids], "gt": [ids]}`` (none when None).

    Raises
    ------
    InvalidParameterError
        naming ``from``, ``to`` or ``area``.
    """
    period = parse_period(start, end)
    whole = area is None or (isinstance(area, str) and not area.strip())
    row = await (root_area(conn) if whole else find_area(conn, area if area is not None else ""))
    ids = [] if whole else [r["id"] for r in await fetch_all(conn, "subtree", {"id": row.id})]
    p = {"from": period.start, "to": period.end, "whole": whole, "ids": ids}
    return {
        "area": {**asdict(row), "whole_city": whole},
        "period": {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "hours": (period.end - period.start).total_seconds() / 3600,
        },
        "generated_at": datetime.now(UTC).isoformat(),
        "sensors": await sensors_section(conn, p),
        "nowcast": await nowcast_section(conn, p),
        "alerts": await alerts_section(conn, p, rules or {"ge": [], "gt": []}),
        "tasks": await tasks_section(conn, p),
        "roads": await roads_section(conn, p),
    }


def default_dir(settings: Settings, data: Mapping[str, Any]) -> Path:
    """``<data_dir>/reviews/<area code>-<from>-<to>/`` (dates and times in UTC)."""

    def stamp(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y%m%dT%H%M")

    p = data["period"]
    return (
        settings.data_dir
        / "reviews"
        / f"{data['area']['code']}-{stamp(p['from'])}-{stamp(p['to'])}"
    )


async def _build(settings: Settings, **kw: Any) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(database_url(settings)) as conn:
        await conn.set_read_only(True)
        return await build_review(conn, rules=sensor_rules(settings), **kw)


def write_review(
    settings: Settings,
    *,
    start: str | datetime | None,
    end: str | datetime | None,
    area: str | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Build the review and write ``review.md``, ``review.html``, ``review.json`` and the
    charts (``*.svg``) into ``out`` (default: :func:`default_dir`). Returns the data with
    ``out_dir`` and ``files``."""
    data = asyncio.run(_build(settings, start=start, end=end, area=area))
    target = out or default_dir(settings, data)
    target.mkdir(parents=True, exist_ok=True)
    files = render_review(data, target)
    (target / "review.json").write_text(
        json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    files.append(target / "review.json")
    return {**data, "out_dir": str(target), "files": [str(p) for p in files]}
