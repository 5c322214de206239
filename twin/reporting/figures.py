"""The figures behind cockpits and reports, read per group of admin areas (async, read-only).

One set of grouped queries (``twin/db/sql/cockpit.sql``) serves an area's own cockpit (its
subtree mapped to itself), the headline figures of its children (each child's subtree mapped to
the child) and a report's sibling comparison (the parent's children). Every number is an exact
aggregate over the model: no sampling, no cached statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import h3
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin import grid
from twin.db.models.ops import RISK_LEVELS
from twin.db.queries import query

SQL = "cockpit.sql"
#: The combined risk layer and the resolution its cells are counted at.
ONEMAP = "onemap"
RISK_RES = 9
#: Resolution of flood cell statistics (flooded area) and of closed-road lookups.
FLOOD_RES = 10
#: Resolution of traffic cell results (VKT-weighted travel-time index).
TRAFFIC_RES = 9
#: |z| above which a sibling is named as standing out in a report.
OUTLIER_Z = 1.5
#: Sibling metrics a report compares: key -> (label, unit).
SIBLING_METRICS: dict[str, tuple[str, str]] = {
    "events_per_1000": ("events per 1,000 residents", "events"),
    "response_h": ("mean task response time", "h"),
    "risk_red_cells": ("red risk cells", "cells"),
}


@dataclass(frozen=True)
class Window:
    """The reporting period ``[start, end)`` and the one before it, ``[prev, start)``.

    Attributes
    ----------
    end
        The instant the cockpit describes (``as_of``), timezone-aware.
    days
        Length of the period in days.
    live
        Whether ``end`` is now (not a past instant): open events are then those whose status
        is open, whatever their date.
    """

    end: datetime
    days: int
    live: bool = False

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)

    @property
    def prev(self) -> datetime:
        return self.end - timedelta(days=2 * self.days)

    def params(self) -> dict[str, Any]:
        return {"end": self.end, "start": self.start, "prev": self.prev, "live": self.live}


@dataclass(frozen=True)
class Groups:
    """Admin areas mapped to the groups whose figures are wanted.

    Attributes
    ----------
    ids
        Admin area ids (every level; an id may appear under several groups).
    grps
        The group of each id (parallel to ``ids``).
    city
        Groups that are a whole city (their delay index is their run's own).
    """

    ids: list[int]
    grps: list[int]
    city: frozenset[int] = frozenset()

    def params(self) -> dict[str, str]:
        # Array literals, not lists: psycopg adapts a list item by item (20 ms per 10 k-id
        # mapping, and each cockpit binds it 16 times: half a city cockpit's time). The SQL
        # casts them (``%(ids)s::bigint[]``); they hold nothing but ints.
        return {"ids": _int_array(self.ids), "grps": _int_array(self.grps)}

    def __add__(self, other: Groups) -> Groups:
        return Groups(self.ids + other.ids, self.grps + other.grps, self.city | other.city)


def _int_array(values: list[int]) -> str:
    """A PostgreSQL array literal of ints (``{1,2,3}``)."""
    return "{" + ",".join(str(int(v)) for v in values) + "}"


@dataclass(frozen=True)
class Run:
    """A succeeded simulation run: id, finish time and summary."""

    id: int
    finished_at: datetime
    summary: dict[str, Any]


async def fetch_all(
    conn: AsyncConnection, name: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Rows of the named statement of ``cockpit.sql`` as dicts."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(SQL, name), params)
        return list(await cur.fetchall())


async def fetch_one(
    conn: AsyncConnection, name: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    rows = await fetch_all(conn, name, params)
    return rows[0] if rows else None


async def subtree_groups(conn: AsyncConnection, area: int, *, city: bool = False) -> Groups:
    """The area's subtree (``twin.area_subtree``) mapped to the area itself."""
    ids = [r["id"] for r in await fetch_all(conn, "subtree", {"id": area})]
    return Groups(ids, [area] * len(ids), frozenset({area}) if city else frozenset())


async def children_groups(conn: AsyncConnection, area: int) -> Groups:
    """Every area below ``area`` mapped to the child of ``area`` it lies under."""
    rows = await fetch_all(conn, "descendants_by_child", {"id": area})
    return Groups([r["id"] for r in rows], [r["grp"] for r in rows])


async def latest_runs(conn: AsyncConnection, kind: str, end: datetime) -> list[Run]:
    """The newest two succeeded runs of ``kind`` finished before ``end`` (newest first).

    Traffic runs that are another run's no-closure baseline are left out.
    """
    rows = await fetch_all(conn, f"latest_{kind}_runs", {"end": end})
    return [Run(r["id"], r["finished_at"], r["summary"] or {}) for r in rows]


def _by_group(rows: list[dict[str, Any]], key: str = "n") -> dict[int, Any]:
    return {r["grp"]: r[key] for r in rows}


async def populations(conn: AsyncConnection, groups: Groups) -> dict[int, int]:
    """Residents per group (people whose home building's grid patch is in the group)."""
    rows = await fetch_all(conn, "population", groups.params())
    found = _by_group(rows)
    return {g: int(found.get(g, 0)) for g in dict.fromkeys(groups.grps)}


async def flooded_area(conn: AsyncConnection, groups: Groups, run: int) -> dict[int, float]:
    """Flooded area per group (m²): sum over the run's cells at :data:`FLOOD_RES` of the
    flooded share times the cell's area (``h3.cell_area``)."""
    rows = await fetch_all(conn, "flooded_cells", {**groups.params(), "run": run, "res": FLOOD_RES})
    out: dict[int, float] = {}
    hexes = grid.to_hex([r["cell"] for r in rows]) if rows else []
    for r, hx in zip(rows, hexes, strict=True):
        out[r["grp"]] = out.get(r["grp"], 0.0) + r["flooded_share"] * h3.cell_area(hx, "m^2")
    return out


async def closed_roads(conn: AsyncConnection, groups: Groups, run: int) -> dict[int, int]:
    """Road links closed by a flood run per group (count of ``flood_link_result`` rows in state
    ``closed`` whose link midpoint cell's grid patch is in the group)."""
    rows = await fetch_all(conn, "closed_links", {**groups.params(), "run": run, "res": FLOOD_RES})
    return {g: int(n) for g, n in _by_group(rows).items()}


async def delay_indices(conn: AsyncConnection, groups: Groups, run: Run) -> dict[int, float]:
    """Travel-time index per group (dimensionless, 1 = free flow): the run's own delay index
    for a city group, else the VKT-weighted mean travel-time index of its cells at
    :data:`TRAFFIC_RES` (groups without traffic are left out)."""
    rows = await fetch_all(
        conn, "traffic_cells", {**groups.params(), "run": run.id, "res": TRAFFIC_RES}
    )
    out = {r["grp"]: r["vkt_tti"] / r["vkt"] for r in rows if r["vkt"] and r["vkt"] > 0}
    city_index = run.summary.get("delay_index")
    for g in groups.city:
        if city_index is not None:
            out[g] = float(city_index)
    return out


def _levels(rows: list[dict[str, Any]], key: str) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = {}
    for r in rows:
        out.setdefault(r["grp"], dict.fromkeys(RISK_LEVELS, 0))[r["level"]] = int(r[key])
    return out


async def figures(
    conn: AsyncConnection,
    groups: Groups,
    window: Window,
    *,
    flood: list[Run],
    traffic: list[Run],
    risk_computed: bool,
) -> dict[int, dict[str, Any]]:
    """All grouped figures of the groups for the window, raw (nothing suppressed).

    Parameters
    ----------
    conn
        An async connection.
    groups
        Areas mapped to groups.
    window
        The period and the one before it.
    flood, traffic
        The latest and previous runs (:func:`latest_runs`); empty when there are none.
    risk_computed
        Whether the one map has scores at all (else risk counts are None, not zeros).

    Returns
    -------
    dict
        Per group: ``population``, ``buildings`` (counts); ``events_open``/``_before``,
        ``events_reported``/``_prev``, ``events_closed``/``_prev`` (events);
        ``tasks_created``/``_prev``, ``tasks_open``/``_before``, ``tasks_overdue``/``_before``
        (tasks); ``response_h``/``_prev``, ``done_h``/``_prev`` (hours, None without data);
        ``risk`` (cells per level or None); ``alerts``/``alerts_before`` (per level);
        ``flooded_area_m2``/``_prev`` (m²), ``roads_closed``/``_prev`` (links) and
        ``delay_index``/``_prev`` (dimensionless), None without a run.
    """
    p = {**groups.params(), **window.params()}
    keys = list(dict.fromkeys(groups.grps))
    out: dict[int, dict[str, Any]] = {g: {} for g in keys}
    pop = await populations(conn, groups)
    bld = _by_group(await fetch_all(conn, "buildings", groups.params()))
    ev = {r["grp"]: r for r in await fetch_all(conn, "events", p)}
    tk = {r["grp"]: r for r in await fetch_all(conn, "tasks", p)}
    risk = _levels(
        await fetch_all(conn, "risk_cells", {**groups.params(), "layer": ONEMAP, "res": RISK_RES}),
        "n",
    )
    alert_rows = await fetch_all(conn, "alerts", p)
    alerts, alerts_before = _levels(alert_rows, "n_now"), _levels(alert_rows, "n_before")
    runs: dict[str, list[dict[int, Any]]] = {"flooded": [], "closed": [], "delay": []}
    for run in flood:
        runs["flooded"].append(await flooded_area(conn, groups, run.id))
        runs["closed"].append(await closed_roads(conn, groups, run.id))
    for run in traffic:
        runs["delay"].append(await delay_indices(conn, groups, run))
    zero_levels = dict.fromkeys(RISK_LEVELS, 0)
    for g in keys:
        e, t = ev.get(g, {}), tk.get(g, {})
        f = out[g]
        f["population"] = pop[g]
        f["buildings"] = int(bld.get(g, 0))
        for k in ("open_now", "open_before", "reported", "reported_prev", "closed", "closed_prev"):
            name = "events_" + k.replace("open_now", "open")
            f[name] = int(e.get(k) or 0)
        for k in (
            "created",
            "created_prev",
            "open_now",
            "open_before",
            "overdue_now",
            "overdue_before",
        ):
            f["tasks_" + k.replace("_now", "")] = int(t.get(k) or 0)
        for k in ("response_h", "response_h_prev", "done_h", "done_h_prev"):
            f[k] = float(t[k]) if t.get(k) is not None else None
        f["risk"] = dict(risk.get(g, zero_levels)) if risk_computed else None
        f["alerts"] = dict(alerts.get(g, zero_levels))
        f["alerts_before"] = dict(alerts_before.get(g, zero_levels))
        for name, series, default in (
            ("flooded_area_m2", runs["flooded"], 0.0),
            ("roads_closed", runs["closed"], 0),
            ("delay_index", runs["delay"], None),
        ):
            values = [s.get(g, default) for s in series] + [None, None]
            f[name], f[name + "_prev"] = values[0], values[1]
    return out


async def risk_trend(
    conn: AsyncConnection, area: int, end: datetime, live: dict[str, int] | None
) -> tuple[dict[str, int] | None, dict[str, Any] | None]:
    """The one-map cells per level to show for an area at ``end`` and the snapshot to compare.

    When the current one-map scores were computed at or before ``end``, the live counts
    (``live``, from :func:`figures`) are shown against the newest ``risk_snapshot`` of the area
    taken before that compute. When ``end`` precedes the current compute, the newest snapshot
    at or before ``end`` is shown against the one before it.

    Returns
    -------
    tuple
        (cells per level to show, or None when nothing was computed by ``end``; the previous
        snapshot row, or None).
    """
    row = await fetch_one(conn, "risk_computed_at", {"layer": ONEMAP, "res": RISK_RES})
    computed_at = row["at"] if row else None
    if computed_at is None:
        return None, None
    if end >= computed_at:
        prev = await fetch_one(
            conn, "risk_snapshot_before", {"layer": ONEMAP, "area": area, "before": computed_at}
        )
        return live, prev
    snaps = await fetch_all(conn, "risk_snapshots", {"layer": ONEMAP, "area": area, "before": end})
    if not snaps:
        return None, None
    return {lvl: int(snaps[0][lvl]) for lvl in RISK_LEVELS}, (snaps[1] if len(snaps) > 1 else None)


async def risk_computed(conn: AsyncConnection) -> bool:
    """Whether the one map has scores at :data:`RISK_RES`."""
    row = await fetch_one(conn, "risk_computed_at", {"layer": ONEMAP, "res": RISK_RES})
    return row is not None and row["at"] is not None
