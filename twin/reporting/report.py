"""The decision report of an admin area over a period: what happened, what was done, how fast,
and what stands out against the areas beside it.

:func:`build_report` gathers the figures (async, read-only; exact aggregates, people counts
suppressed as in the API); :func:`write_report` renders ``report.md`` and a self-contained
``report.html`` (inline SVG charts, no external assets) with ``report.json`` beside them.
"""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from twin.access.suppression import coarsen
from twin.db.engine import database_url
from twin.db.queries import query
from twin.reporting import figures as cq
from twin.reporting.cockpit import area_or_city, cockpit, parse_as_of, shown_populations
from twin.reporting.figures import OUTLIER_Z, SIBLING_METRICS, Groups, Run, Window
from twin.reporting.render import render
from twin.settings import Settings

SQL = "report.sql"
#: Task states whose entries are counted per period.
TASK_STATES = ("accepted", "in_progress", "done", "closed", "rejected", "reassigned")
#: Depth at a building's walls from which it counts as affected, when a run does not say (m).
BUILDING_DEPTH_M = 0.15


async def _rows(conn: psycopg.AsyncConnection, name: str, params: dict[str, Any]) -> list[dict]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(SQL, name), params)
        return list(await cur.fetchall())


def _day_labels(start: datetime, days: int) -> list[str]:
    return [(start + timedelta(days=i)).date().isoformat() for i in range(days)]


async def events_section(
    conn: psycopg.AsyncConnection, ids: list[int], window: Window
) -> dict[str, Any]:
    """Events by type and per day in the period and the one before (counts of events)."""
    p = {"ids": ids, **window.params()}
    by_type = await _rows(conn, "events_by_type", p)
    daily = {r["day"]: int(r["n"]) for r in await _rows(conn, "events_daily", p)}
    days = window.days
    return {
        "by_type": [
            {"type": r["type"], "current": int(r["current"]), "previous": int(r["previous"])}
            for r in by_type
        ],
        "total": sum(int(r["current"]) for r in by_type),
        "previous_total": sum(int(r["previous"]) for r in by_type),
        "daily": [
            {"day": label, "current": daily.get(i, 0), "previous": daily.get(i - days, 0)}
            for i, label in enumerate(_day_labels(window.start, days))
        ],
    }


async def tasks_section(
    conn: psycopg.AsyncConnection, ids: list[int], window: Window, f: Mapping[str, Any]
) -> dict[str, Any]:
    """Tasks dispatched and moved through their states, open and overdue at the end, and their
    response and completion times (hours)."""
    p = {"ids": ids, **window.params()}
    moves = {r["state"]: r for r in await _rows(conn, "task_transitions", p)}
    times = {r["current"]: r for r in await _rows(conn, "task_times", p)}
    states = {
        s: {
            "current": int(moves[s]["current"]) if s in moves else 0,
            "previous": int(moves[s]["previous"]) if s in moves else 0,
        }
        for s in TASK_STATES
    }

    def stats(row: Mapping[str, Any] | None, what: str, n: str) -> dict[str, Any]:
        row = row or {}
        return {
            "n": int(row.get(n) or 0),
            "mean": row.get(f"{what}_mean"),
            "median": row.get(f"{what}_median"),
            "p90": row.get(f"{what}_p90"),
        }

    now, before = times.get(True), times.get(False)
    return {
        "dispatched": {"current": f["tasks_created"], "previous": f["tasks_created_prev"]},
        "states": states,
        "open_at_end": f["tasks_open"],
        "overdue_at_end": f["tasks_overdue"],
        "response_h": {
            "current": stats(now, "response", "responded"),
            "previous": stats(before, "response", "responded"),
        },
        "done_h": {
            "current": stats(now, "done", "completed"),
            "previous": stats(before, "done", "completed"),
        },
    }


async def runs_section(
    conn: psycopg.AsyncConnection, own: Groups, window: Window, k: int, *, allowed: bool
) -> dict[str, Any]:
    """Flood and traffic runs finished in the period with their headline numbers for the area."""
    p = {"ids": own.ids, **window.params()}
    aid = own.grps[0]
    flood = []
    for r in await _rows(conn, "flood_runs", p):
        s = r["summary"] or {}
        depth = (s.get("thresholds_m") or {}).get("building", BUILDING_DEPTH_M)
        hit = (await _rows(conn, "flood_affected", {**p, "run": r["id"], "depth": depth}))[0]
        people = int(hit["people"])
        flood.append(
            {
                "id": r["id"],
                "finished_at": r["finished_at"].isoformat(),
                "rain_mm": s.get("rain_mm"),
                "max_depth_m": s.get("max_depth_m"),
                "flooded_area_m2": (await cq.flooded_area(conn, own, r["id"])).get(aid, 0.0),
                "roads_closed": (await cq.closed_roads(conn, own, r["id"])).get(aid, 0),
                "affected_buildings": int(hit["buildings"]),
                "affected_people": people if allowed else coarsen(people, k),
            }
        )
    traffic = []
    for r in await _rows(conn, "traffic_runs", p):
        s = r["summary"] or {}
        run = Run(r["id"], r["finished_at"], s)
        traffic.append(
            {
                "id": r["id"],
                "finished_at": r["finished_at"].isoformat(),
                "period": s.get("period"),
                "delay_index": (await cq.delay_indices(conn, own, run)).get(aid),
                "city_delay_index": s.get("delay_index"),
                "closed_links": s.get("closed_links"),
                "baseline_run_id": r["baseline_run_id"],
                "baseline_delay_index": r["baseline_delay_index"],
            }
        )
    return {"flood": flood, "traffic": traffic}


def standouts(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    """Mean and standard deviation (population) of a metric over areas, the areas more than
    :data:`OUTLIER_Z` standard deviations from the mean, and the highest and lowest."""
    vals = [(r[key], r["code"], r["name"]) for r in rows if r.get(key) is not None]
    if not vals:
        return {"n": 0, "mean": None, "sd": None, "outliers": [], "top": None, "bottom": None}
    xs = [v for v, _, _ in vals]
    mean = statistics.fmean(xs)
    sd = statistics.pstdev(xs) if len(xs) > 1 else 0.0
    outliers = [
        {"code": c, "name": n, "value": v, "z": (v - mean) / sd}
        for v, c, n in vals
        if sd > 0 and abs(v - mean) / sd > OUTLIER_Z
    ]
    top = max(vals, key=lambda t: (t[0], t[1]))
    bottom = min(vals, key=lambda t: (t[0], t[1]))
    return {
        "n": len(xs),
        "mean": mean,
        "sd": sd,
        "outliers": outliers,
        "top": {"code": top[1], "name": top[2], "value": top[0]},
        "bottom": {"code": bottom[1], "name": bottom[2], "value": bottom[0]},
    }


async def siblings_section(
    conn: psycopg.AsyncConnection,
    area: Mapping[str, Any],
    window: Window,
    k: int,
    *,
    allowed: bool,
) -> dict[str, Any]:
    """The area against the other children of its parent (for the city: its own children) on
    events per 1,000 residents, mean task response time (h) and red risk cells."""
    basis, parent = ("siblings", area["parent_id"])
    if parent is None:
        basis, parent = "children", area["id"]
    groups = await cq.children_groups(conn, parent)
    kids = await cq.fetch_all(conn, "children", {"id": parent})
    figs = await cq.figures(
        conn, groups, window, flood=[], traffic=[], risk_computed=await cq.risk_computed(conn)
    )
    pops = shown_populations(
        {c["id"]: figs[c["id"]]["population"] for c in kids}, k, allowed=allowed
    )
    rows = []
    for c in kids:
        f, pop = figs[c["id"]], pops[c["id"]]
        events = f["events_reported"]
        rows.append(
            {
                "id": c["id"],
                "code": c["code"],
                "name": c["name"],
                "name_en": c["name_en"],
                "subject": c["id"] == area["id"],
                "population": pop,
                "events": events,
                # A rate would reveal a hidden population: hidden with it.
                "events_per_1000": events * 1000.0 / pop if pop else None,
                "response_h": f["response_h"],
                "risk_red_cells": f["risk"]["red"] if f["risk"] is not None else None,
            }
        )
    return {
        "basis": basis,
        "parent_id": parent,
        "rows": rows,
        "metrics": {m: standouts(rows, m) for m in SIBLING_METRICS},
    }


async def build_report(
    conn: psycopg.AsyncConnection,
    *,
    area: str | int,
    as_of: datetime | None = None,
    period_days: int = 30,
    k: int,
    allowed: bool,
) -> dict[str, Any]:
    """Everything the decision report of ``area`` says, as plain data.

    Parameters
    ----------
    conn
        An async connection (read-only use).
    area
        The area's id or code (any level).
    as_of
        End of the period (default: now); the period is ``[as_of - period_days, as_of)``.
    period_days
        Length of the period (days); comparisons are with the period before it.
    k
        Suppression threshold for people counts.
    allowed
        Whether people counts below ``k`` may be shown.

    Raises
    ------
    NotFoundError
        when no area has that id or code.
    InvalidParameterError
        for a period out of range.
    """
    row = await area_or_city(conn, area)
    end = parse_as_of(as_of)
    live = as_of is None or end >= datetime.now(UTC)
    board = await cockpit(
        conn,
        level=row["level"],
        area=row["id"],
        as_of=end,
        period_days=period_days,
        k=k,
        allowed=allowed,
        live=live,
    )
    window = Window(end, period_days, live=live)
    own = await cq.subtree_groups(conn, row["id"], city=row["level"] == "city")
    f = (await cq.figures(conn, own, window, flood=[], traffic=[], risk_computed=False))[row["id"]]
    return {
        "area": board["area"],
        "as_of": board["as_of"],
        "period": board["period"],
        "generated_at": datetime.now(UTC).isoformat(),
        "suppression_k": k,
        "unsuppressed": allowed,
        "indicators": board["indicators"],
        "events": {
            **await events_section(conn, own.ids, window),
            "closed": f["events_closed"],
            "closed_previous": f["events_closed_prev"],
            "open_at_end": f["events_open"],
        },
        "runs": await runs_section(conn, own, window, k, allowed=allowed),
        "tasks": await tasks_section(conn, own.ids, window, f),
        "comparison": await siblings_section(conn, row, window, k, allowed=allowed),
        "children": board["children"],
    }


def default_dir(settings: Settings, data: Mapping[str, Any]) -> Path:
    """``<data_dir>/reports/<area code>-<as_of date>/``."""
    day = datetime.fromisoformat(data["as_of"]).astimezone(UTC).date().isoformat()
    return settings.data_dir / "reports" / f"{data['area']['code']}-{day}"


async def _build(settings: Settings, **kw: Any) -> dict[str, Any]:
    async with await psycopg.AsyncConnection.connect(database_url(settings)) as conn:
        await conn.set_read_only(True)
        return await build_report(conn, k=settings.suppression_k, **kw)


def write_report(
    settings: Settings,
    *,
    area: str,
    period_days: int = 30,
    as_of: datetime | None = None,
    out: Path | None = None,
    allowed: bool = False,
) -> dict[str, Any]:
    """Build the report of ``area`` and write ``report.md``, ``report.html``, ``report.json``
    and the charts (``*.svg``, linked from the Markdown) into ``out`` (default:
    :func:`default_dir`). Returns the report data with ``out_dir`` and ``files``."""
    data = asyncio.run(
        _build(settings, area=area, as_of=as_of, period_days=period_days, allowed=allowed)
    )
    target = out or default_dir(settings, data)
    target.mkdir(parents=True, exist_ok=True)
    files = render(data, target)
    (target / "report.json").write_text(
        json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    files.append(target / "report.json")
    return {**data, "out_dir": str(target), "files": [str(p) for p in files]}
