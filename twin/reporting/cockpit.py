"""Five-level cockpits: the indicators of one admin area and headline figures of its children.

A city, district, street, community or grid manager sees the same cockpit for their own area:
people and buildings, events, tasks and how fast they are handled, risk cells, alerts, the
latest storm and the latest traffic run, each with the value before it and a trend. "Within the
area" means the area's subtree (``twin.area_subtree``) for rows carrying an area (events,
buildings, tasks, alerts) and, for cell results, the cells whose ``cell_stats.area_id`` (the grid
patch holding the cell) is in that subtree. People counts are suppressed below k for callers
without the right and rounded to a multiple of k (:func:`area_population`), so that subtracting
cells or siblings from them pins no hidden count down (docs/privacy.md).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from psycopg import AsyncConnection

from twin.access.suppression import coarsen
from twin.city.areas import check_level, find_area, root_area
from twin.db.models.ops import RISK_LEVELS
from twin.errors import InvalidParameterError
from twin.reporting import figures as cq
from twin.reporting.figures import Window

MAX_PERIOD_DAYS = 366

#: The earliest ``as_of``: the period before the longest period (and a day for UTC offsets)
#: must still be a date, and dates start at year 1.
EARLIEST_AS_OF = datetime(1, 1, 1, tzinfo=UTC) + timedelta(days=2 * MAX_PERIOD_DAYS + 1)
_PERIOD = re.compile(r"^\s*(\d{1,4})\s*([dw]?)\s*$", re.IGNORECASE)

#: id -> (title, Chinese title, unit) of every indicator, in cockpit order.
INDICATORS: dict[str, tuple[str, str, str]] = {
    "population": ("Residents", "常住人口", "people"),
    "buildings": ("Buildings", "建筑", "buildings"),
    "events_open": ("Open events", "未办结事件", "events"),
    "events_reported": ("Events reported in the period", "期内新发事件", "events"),
    "events_closed": ("Events closed in the period", "期内办结事件", "events"),
    "task_response_h": ("Mean task response time", "任务平均响应时长", "h"),
    "task_done_h": ("Mean time to done", "任务平均办结时长", "h"),
    "tasks_open": ("Open tasks", "在办任务", "tasks"),
    "tasks_overdue": ("Overdue tasks", "超期任务", "tasks"),
    "risk_cells_red": ("Red risk cells", "红色风险网格", "cells"),
    "risk_cells_orange": ("Orange risk cells", "橙色风险网格", "cells"),
    "risk_cells_yellow": ("Yellow risk cells", "黄色风险网格", "cells"),
    "risk_cells_blue": ("Blue risk cells", "蓝色风险网格", "cells"),
    "alerts_active": ("Active alerts", "有效预警", "alerts"),
    "alerts_active_red": ("Active red alerts", "红色预警", "alerts"),
    "alerts_active_orange": ("Active orange alerts", "橙色预警", "alerts"),
    "alerts_active_yellow": ("Active yellow alerts", "黄色预警", "alerts"),
    "alerts_active_blue": ("Active blue alerts", "蓝色预警", "alerts"),
    "flooded_area_m2": ("Flooded area, latest storm run", "积水面积（最近一次内涝模拟）", "m²"),  # noqa: RUF001
    "roads_closed": ("Road links closed by water", "积水断行路段", "links"),
    "delay_index": ("Traffic delay index, latest run", "交通延时指数（最近一次模拟）", "ratio"),  # noqa: RUF001
}


def parse_period(text: str | int) -> int:
    """Days in a period written ``30d``, ``4w`` or ``30`` (1 to 366 days).

    Raises
    ------
    InvalidParameterError
        naming ``period`` when the text is not such a length.
    """
    m = _PERIOD.match(str(text))
    days = int(m.group(1)) * (7 if m.group(2).lower() == "w" else 1) if m else 0
    if not 1 <= days <= MAX_PERIOD_DAYS:
        raise InvalidParameterError(
            "period", f"{text!r} is not a period: write days or weeks, 1d to {MAX_PERIOD_DAYS}d"
        )
    return days


def parse_as_of(text: str | datetime | None) -> datetime:
    """An ISO 8601 instant (UTC when it has no offset); now when None or empty.

    Raises
    ------
    InvalidParameterError
        naming ``as_of`` when the text is not an ISO date or date-time, or is before
        :data:`EARLIEST_AS_OF`.
    """
    if text is None or text == "":
        return datetime.now(UTC)
    if isinstance(text, datetime):
        value = text
    else:
        try:
            value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParameterError(
                "as_of", f"{text!r} is not an ISO 8601 date or date-time"
            ) from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if value < EARLIEST_AS_OF:
        raise InvalidParameterError(
            "as_of", f"{text!r} is too early: the earliest is {EARLIEST_AS_OF.date().isoformat()}"
        )
    return value


async def area_or_city(conn: AsyncConnection, area: str | int | None) -> dict[str, Any]:
    """An admin area by id or code (:func:`twin.city.areas.find_area`), the city when
    ``area`` is None or blank, as a row.

    Raises
    ------
    InvalidParameterError
        naming ``area`` when no area has that id or code.
    NotFoundError
        when the twin has no city area yet.
    """
    if area is None or (isinstance(area, str) and not area.strip()):
        return asdict(await root_area(conn))
    return asdict(await find_area(conn, area))


async def resolve_area(conn: AsyncConnection, area: str | int | None, level: str) -> dict[str, Any]:
    """The area of a cockpit: by id or code, which must be at ``level``.

    Raises
    ------
    InvalidParameterError
        naming ``level`` for an unknown level or one the area is not at, ``area`` when it is
        missing below the city level.
    NotFoundError
        when the twin has no city area yet.
    """
    check_level(level)
    if area is None and level != "city":
        raise InvalidParameterError("area", f"give the {level}'s id or code")
    row = await area_or_city(conn, area)
    if row["level"] != level:
        raise InvalidParameterError(
            "level", f"area {row['code']!r} is a {row['level']}, not a {level}"
        )
    return row


def trend(value: float | None, previous: float | None) -> str | None:
    """``up``, ``down`` or ``flat`` (equal to within 1e-9 relative), None without both."""
    if value is None or previous is None:
        return None
    if math.isclose(value, previous, rel_tol=1e-9, abs_tol=1e-12):
        return "flat"
    return "up" if value > previous else "down"


def indicator(ind: str, value: Any, previous: Any = None, *, with_trend: bool = True) -> dict:
    """One cockpit indicator: ``{id, title, title_zh, unit, value, previous, change, trend}``."""
    title, title_zh, unit = INDICATORS[ind]
    if not with_trend:
        previous = None
    change = value - previous if value is not None and previous is not None else None
    return {
        "id": ind,
        "title": title,
        "title_zh": title_zh,
        "unit": unit,
        "value": value,
        "previous": previous,
        "change": change,
        "trend": trend(value, previous),
    }


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


def _area_out(row: Mapping[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "code", "name", "name_en", "level")}


def indicators(
    f: Mapping[str, Any],
    *,
    population: int | None,
    risk: Mapping[str, int] | None,
    risk_prev: Mapping[str, Any] | None,
) -> list[dict[str, Any]]:
    """The cockpit's indicators from an area's figures (:func:`cockpit_sql.figures`)."""
    alerts, before = f["alerts"], f["alerts_before"]
    out = [
        indicator("population", population, with_trend=False),
        indicator("buildings", f["buildings"], with_trend=False),
        indicator("events_open", f["events_open"], f["events_open_before"]),
        indicator("events_reported", f["events_reported"], f["events_reported_prev"]),
        indicator("events_closed", f["events_closed"], f["events_closed_prev"]),
        indicator("task_response_h", f["response_h"], f["response_h_prev"]),
        indicator("task_done_h", f["done_h"], f["done_h_prev"]),
        indicator("tasks_open", f["tasks_open"], f["tasks_open_before"]),
        indicator("tasks_overdue", f["tasks_overdue"], f["tasks_overdue_before"]),
    ]
    for lvl in reversed(RISK_LEVELS):
        out.append(
            indicator(
                f"risk_cells_{lvl}",
                risk[lvl] if risk is not None else None,
                int(risk_prev[lvl]) if risk_prev is not None else None,
            )
        )
    out.append(indicator("alerts_active", sum(alerts.values()), sum(before.values())))
    for lvl in reversed(RISK_LEVELS):
        out.append(indicator(f"alerts_active_{lvl}", alerts[lvl], before[lvl]))
    out += [
        indicator("flooded_area_m2", f["flooded_area_m2"], f["flooded_area_m2_prev"]),
        indicator("roads_closed", f["roads_closed"], f["roads_closed_prev"]),
        indicator("delay_index", f["delay_index"], f["delay_index_prev"]),
    ]
    return out


def child_card(
    row: Mapping[str, Any], f: Mapping[str, Any], population: int | None
) -> dict[str, Any]:
    """A child area with its headline figures and the link to its own cockpit."""
    risk = f["risk"]
    figures = {
        "population": population,
        "buildings": f["buildings"],
        "events_open": f["events_open"],
        "events_reported": f["events_reported"],
        "tasks_open": f["tasks_open"],
        "tasks_overdue": f["tasks_overdue"],
        "response_h": f["response_h"],
        "risk_red_cells": risk["red"] if risk is not None else None,
        "alerts_active": sum(f["alerts"].values()),
        "flooded_area_m2": f["flooded_area_m2"],
        "roads_closed": f["roads_closed"],
        "delay_index": f["delay_index"],
    }
    return {
        **_area_out(row),
        "figures": figures,
        "cockpit": f"/api/cockpit?level={row['level']}&area={row['code']}",
    }


def shown_populations(raw: Mapping[int, int], k: int, *, allowed: bool) -> dict[int, int | None]:
    """Sibling people counts as a caller sees them (see :func:`area_population`)."""
    if allowed:
        return dict(raw)
    return {a: coarsen(v, k) for a, v in raw.items()}


async def area_population(
    conn: AsyncConnection, area: Mapping[str, Any], raw: int, k: int, *, allowed: bool
) -> int | None:
    """An area's people count as a caller sees it: exact for those with the right, else hidden
    below k and rounded to a multiple of k (:func:`twin.access.suppression.coarsen`). Admin
    areas cut across H3 cells, so an exact area total minus the cells inside it could pin down
    a count the cells hide; a rounded total is an interval, not an equation."""
    del conn  # kept for callers: the rule no longer needs the siblings
    if allowed:
        return raw
    return coarsen(raw, k)


async def cockpit(
    conn: AsyncConnection,
    *,
    level: str,
    area: str | int | None,
    as_of: datetime | None = None,
    period_days: int = 30,
    k: int,
    allowed: bool,
    live: bool | None = None,
) -> dict[str, Any]:
    """The cockpit of one admin area at an instant.

    Parameters
    ----------
    conn
        An async connection (read-only use).
    level
        ``city``, ``district``, ``street``, ``community`` or ``grid``: the area's level.
    area
        The area's id or code (None: the city, at the city level only).
    as_of
        The instant described (default: now); the period is ``[as_of - period, as_of)``.
    period_days
        Length of the period (days); trends of period figures compare with the period before.
    k
        Suppression threshold for people counts.
    allowed
        Whether the caller may see people counts below ``k``.
    live
        Whether the cockpit describes now, so that every event whose status is open counts as
        open, simulation events dated ahead included (default: when ``as_of`` is None or not
        in the past).

    Returns
    -------
    dict
        ``area`` (with ``parent``), ``as_of``, ``period``, ``indicators`` (see
        :data:`INDICATORS`), ``children`` (headline figures each), ``sources`` (the runs and
        snapshot compared) and ``suppressed`` (indicator ids hidden).

    Raises
    ------
    InvalidParameterError
        for an unknown level, a level the area is not at, or a period out of range.
    NotFoundError
        when the area does not exist.
    """
    row = await resolve_area(conn, area, level)
    if not 1 <= period_days <= MAX_PERIOD_DAYS:
        raise InvalidParameterError("period", f"must be 1 to {MAX_PERIOD_DAYS} days")
    end = parse_as_of(as_of)
    if live is None:
        live = as_of is None or end >= datetime.now(UTC)
    window = Window(end, period_days, live=live)
    aid = row["id"]
    own = await cq.subtree_groups(conn, aid, city=row["level"] == "city")
    kids = await cq.children_groups(conn, aid)
    flood = await cq.latest_runs(conn, "flood", window.end)
    traffic = await cq.latest_runs(conn, "traffic", window.end)
    computed = await cq.risk_computed(conn)
    figs = await cq.figures(
        conn, own + kids, window, flood=flood, traffic=traffic, risk_computed=computed
    )
    f = figs[aid]
    risk, risk_prev = await cq.risk_trend(conn, aid, window.end, f["risk"])
    population = await area_population(conn, row, f["population"], k, allowed=allowed)
    children = await cq.fetch_all(conn, "children", {"id": aid})
    child_pop = shown_populations(
        {c["id"]: figs[c["id"]]["population"] for c in children}, k, allowed=allowed
    )
    parent = None
    if row["parent_id"] is not None:
        prow = await cq.fetch_one(conn, "area_by_id", {"id": row["parent_id"]})
        parent = _area_out(prow) if prow else None
    return {
        "area": {**_area_out(row), "parent": parent},
        "as_of": _iso(window.end),
        "period": {
            "days": period_days,
            "start": _iso(window.start),
            "end": _iso(window.end),
            "previous_start": _iso(window.prev),
        },
        "indicators": indicators(f, population=population, risk=risk, risk_prev=risk_prev),
        "children": [child_card(c, figs[c["id"]], child_pop[c["id"]]) for c in children],
        "sources": {
            "flood_run": flood[0].id if flood else None,
            "flood_previous_run": flood[1].id if len(flood) > 1 else None,
            "traffic_run": traffic[0].id if traffic else None,
            "traffic_previous_run": traffic[1].id if len(traffic) > 1 else None,
            "risk_layer": cq.ONEMAP,
            "risk_res": cq.RISK_RES,
            "risk_previous_snapshot_at": _iso(risk_prev["computed_at"]) if risk_prev else None,
        },
        "suppressed": ["population"] if population is None else [],
    }
