"""Peak-hour traffic on the twin: ``twin simulate traffic`` and ``POST /api/simulations/traffic``.

Demand comes from the people table: commuters (residents with a workplace) produce trips at
their home cell and attract them at their work cell, aggregated to H3 zones (resolution 8 by
default) and distributed with a doubly constrained gravity model calibrated to a target mean
trip time. The morning peak runs home -> work, the evening peak work -> home.

Closures come from a flood run (links flooded past the passability depth are closed, slowed
links lose capacity), from open ``road_closure`` events and from explicit link ids. With any
closure the no-closure baseline is assigned and stored too, and the run reports the change.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from pyproj import Transformer

from twin import grid as h3grid
from twin.city.load import bump_layer_versions
from twin.city.meta import read_city, with_city
from twin.db.copy import copy_rows
from twin.db.engine import database_url
from twin.runs import store
from twin.runs.roadnet import RoadGraph, load_roads, zone_network
from twin.settings import Settings
from twin.sim.demand import Distribution, gravity
from twin.sim.threads import most_threads
from twin.sim.traffic import Assignment, Network, assign, delay_band, zone_costs

#: Share of commuters who drive in the peak hour (the rest travel earlier, later or otherwise).
PEAK_SHARE = 0.3
#: A partly flooded ("slowed") road keeps this share of its capacity.
SLOWED_CAPACITY = 0.5
#: A road_closure event closes the road links within this distance (m) of its point.
EVENT_RADIUS_M = 30.0
#: Without a target mean trip time: this share of the mean reached with no deterrence.
NO_TARGET_SHARE = 0.75
PERIODS = ("am_peak", "pm_peak")


class TrafficRunError(ValueError):
    """A traffic run that cannot start: unknown flood run or link, bad parameters."""


@dataclass(frozen=True)
class TrafficParams:
    period: str = "am_peak"
    peak_share: float = PEAK_SHARE
    zone_res: int = 8
    target_trip_min: float | None = None
    flood_runs: tuple[int, ...] = ()
    # Nowcast steps whose roads' present state (closed, slowed) closes or slows links.
    nowcast_steps: tuple[int, ...] = ()
    close_links: tuple[int, ...] = ()
    events: bool = True
    slowed_capacity: float = SLOWED_CAPACITY
    gap: float = 1e-5
    max_iter: int = 300
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.period not in PERIODS:
            raise TrafficRunError(f"period: {self.period!r} is not one of {', '.join(PERIODS)}")
        if not 0 < self.peak_share <= 1:
            raise TrafficRunError("peak_share must lie in (0, 1]")
        if not 5 <= self.zone_res <= 10:
            raise TrafficRunError("zone_res must be an H3 resolution from 5 to 10")
        if self.target_trip_min is not None and not 0 < self.target_trip_min <= 240:
            raise TrafficRunError("target_trip_min must lie in (0, 240]")
        if not 0 <= self.slowed_capacity <= 1:
            raise TrafficRunError("slowed_capacity must lie in [0, 1]")
        if not 0 < self.gap < 1 or not 1 <= self.max_iter <= 10_000:
            raise TrafficRunError("gap must lie in (0, 1) and max_iter in 1..10000")

    @property
    def has_closures(self) -> bool:
        return bool(self.flood_runs or self.nowcast_steps or self.close_links or self.events)

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("extra")
        out["flood_runs"] = list(self.flood_runs)
        out["nowcast_steps"] = list(self.nowcast_steps)
        out["close_links"] = list(self.close_links)
        return out | self.extra


def parse_closures(specs: list[str]) -> tuple[int, ...]:
    """``["flood:12", ...]`` -> flood run ids; anything else is an error naming the entry."""
    runs = []
    for spec in specs:
        kind, _, value = spec.partition(":")
        # ASCII digits (int() fails on '²'), few enough for int() and a BIGINT id.
        if kind != "flood" or not (value.isascii() and value.isdigit() and len(value) <= 19):
            raise TrafficRunError(f"closures: {spec!r} is not of the form flood:RUN_ID")
        runs.append(int(value))
    return tuple(runs)


def parse_link_ids(text: str) -> tuple[int, ...]:
    """``"12,13 14"`` -> link ids."""
    parts = [p for p in text.replace(",", " ").split() if p]
    bad = [p for p in parts if not (p.isascii() and p.isdigit() and len(p) <= 19)]
    if bad:
        raise TrafficRunError(f"close-links: {bad[0]!r} is not a link id")
    return tuple(int(p) for p in parts)


@dataclass(frozen=True)
class Zones:
    """Zone cells (int64 H3), metric centroids and productions/attractions (commuters)."""

    cells: npt.NDArray[np.int64]
    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    homes: npt.NDArray[np.float64]
    jobs: npt.NDArray[np.float64]


def load_zones(conn: psycopg.Connection, settings: Settings, res: int) -> Zones:
    """Commuters by home cell and by work cell, aggregated to resolution ``res`` zones."""
    rows = conn.execute(
        "SELECT home_cell, work_cell, count(*) FROM twin.person"
        " WHERE home_cell IS NOT NULL AND work_cell IS NOT NULL GROUP BY 1, 2"
    ).fetchall()
    if not rows:
        empty = np.empty(0)
        return Zones(np.empty(0, dtype=np.int64), empty, empty, empty, empty)
    a = np.array(rows, dtype=np.int64)
    home = h3grid.parent(a[:, 0], res)
    work = h3grid.parent(a[:, 1], res)
    cells = np.unique(np.concatenate([home, work]))
    homes = np.bincount(np.searchsorted(cells, home), weights=a[:, 2], minlength=len(cells))
    jobs = np.bincount(np.searchsorted(cells, work), weights=a[:, 2], minlength=len(cells))
    lon, lat = h3grid.cell_centers(cells)
    x, y = Transformer.from_crs("EPSG:4326", settings.metric_crs, always_xy=True).transform(
        lon, lat
    )
    return Zones(cells, np.asarray(x), np.asarray(y), homes.astype(float), jobs.astype(float))


@dataclass
class Closures:
    """Per road link: closed, capacity factor, and why (for the summary)."""

    closed: npt.NDArray[np.bool_]
    capacity_factor: npt.NDArray[np.float64]
    reasons: dict[str, int] = field(default_factory=dict)


def check_references(conn: psycopg.Connection, params: TrafficParams) -> None:
    """The twin has demand; flood runs named as closures exist and succeeded; explicit links
    exist.

    No commuters means no trips: an assignment would "converge" at once on empty roads and
    look like a free-flowing city. Refuse instead, naming the input that is missing.
    """
    has_demand = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM twin.person"
        " WHERE home_cell IS NOT NULL AND work_cell IS NOT NULL)"
    ).fetchone()
    if not (has_demand and has_demand[0]):
        raise TrafficRunError(
            "demand: the twin has no commuters (residents with a home and a workplace): run "
            "`twin ingest population GRID.tif` and `twin ingest jobs` (or `twin ingest people` "
            "with work addresses), or assign a TNTP demand with `twin traffic run --net NET "
            "--trips TRIPS`"
        )
    for run_id in params.flood_runs:
        run = conn.execute(
            "SELECT kind, status FROM twin.sim_run WHERE id = %s", (run_id,)
        ).fetchone()
        if run is None or run[0] != "flood":
            raise TrafficRunError(f"closures: flood:{run_id} is not a flood run")
        if run[1] != "succeeded":
            raise TrafficRunError(f"closures: flood run {run_id} has not succeeded ({run[1]})")
    for step_id in params.nowcast_steps:
        if (
            conn.execute("SELECT 1 FROM twin.nowcast_step WHERE id = %s", (step_id,)).fetchone()
            is None
        ):
            raise TrafficRunError(f"closures: nowcast step {step_id} does not exist")
    if params.close_links:
        found = conn.execute(
            "SELECT array_agg(id) FROM twin.road_link WHERE id = ANY(%s)",
            (list(params.close_links),),
        ).fetchone()
        missing = sorted(set(params.close_links) - set((found[0] if found else None) or []))
        if missing:
            raise TrafficRunError(f"close_links: no road link {', '.join(map(str, missing[:10]))}")


def load_closures(conn: psycopg.Connection, roads: RoadGraph, params: TrafficParams) -> Closures:
    n = roads.n_links
    out = Closures(np.zeros(n, dtype=bool), np.ones(n))
    index = pd.Series(np.arange(n), index=roads.link_id)
    check_references(conn, params)
    # (source tag, id, query): the links a flood run's maxima or a nowcast step's water now
    # (not at the forecast horizon: what drivers meet) close or slow.
    sources = [
        ("flood", run_id, "SELECT link_id, state FROM twin.flood_link_result"
         " WHERE run_id = %s AND state <> 'passable'") for run_id in params.flood_runs
    ] + [
        ("nowcast", step_id, "SELECT link_id, state_now FROM twin.nowcast_link"
         " WHERE step_id = %s AND state_now <> 'passable'") for step_id in params.nowcast_steps
    ]  # fmt: skip
    for tag, key, sql_text in sources:
        states = conn.execute(sql_text, (key,)).fetchall()
        for link_id, state in states:
            i = index[link_id]
            if state == "closed":
                out.closed[i] = True
            else:
                out.capacity_factor[i] = min(out.capacity_factor[i], params.slowed_capacity)
        out.reasons[f"{tag}:{key}:closed"] = sum(1 for _, s in states if s == "closed")
        out.reasons[f"{tag}:{key}:slowed"] = sum(1 for _, s in states if s == "slowed")
    if params.close_links:
        out.closed[index[list(params.close_links)].to_numpy()] = True
        out.reasons["explicit"] = len(set(params.close_links))
    if params.events:
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT l.id FROM twin.event e JOIN twin.road_link l"
                " ON ST_DWithin(l.geom_3857, e.geom_3857, %s)"
                " WHERE e.type = 'road_closure' AND e.status <> 'closed'",
                (EVENT_RADIUS_M,),
            ).fetchall()
        ]
        if ids:
            out.closed[index[ids].to_numpy()] = True
        out.reasons["road_closure_events"] = len(ids)
    return out


def demand(roads: RoadGraph, zones: Zones, params: TrafficParams) -> tuple[Network, Distribution]:
    """The no-closure network with zone centroids, and the period's trips between zones."""
    base_net = zone_network(roads, zones.x, zones.y)
    origin, dest = (zones.homes, zones.jobs) if params.period == "am_peak" else (
        zones.jobs, zones.homes)  # fmt: skip
    free = zone_costs(base_net)
    # Intrazonal trips cost half the way to the nearest other zone (a common convention);
    # they never load the network but count in the mean trip time.
    off = np.where(np.eye(len(free), dtype=bool), np.inf, free)
    np.fill_diagonal(free, 0.5 * np.min(off, axis=1, initial=np.inf) if len(free) > 1 else 1.0)
    target = params.target_trip_min
    if target is None:
        # No observed mean trip time: ask for trips a quarter shorter than with no deterrence
        # at all, which scales with the city instead of assuming one city's commute.
        target = (
            NO_TARGET_SHARE
            * gravity(origin, dest, free, target_mean_cost=math.inf, check_target=False).mean_cost
        )
    target = target if target > 0 else 1.0  # no trip between zones: any target will do
    dist = gravity(origin * params.peak_share, dest, free, target_mean_cost=target)
    return base_net, dist


def run_traffic(
    settings: Settings,
    params: TrafficParams,
    *,
    run_id: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Assign the peak hour on the twin and store it; returns the run's summary (with
    ``run_id``). A failure marks the run failed with the error and re-raises."""
    most = most_threads()
    if settings.traffic_threads > most:
        raise TrafficRunError(
            f"TWIN_TRAFFIC_THREADS={settings.traffic_threads} is more than numba offers here "
            f"(NUMBA_NUM_THREADS={most})"
        )
    url = database_url(settings)
    return store.record_run(
        url, "traffic", params.as_json(),
        lambda rid: _run(settings, url, rid, params, progress),
        run_id=run_id, check=lambda conn: check_references(conn, params),
    )  # fmt: skip


def _run(
    settings: Settings,
    url: str,
    run_id: int,
    params: TrafficParams,
    progress: Callable[[float], None] | None,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with psycopg.connect(url) as conn:
        settings = with_city(settings, read_city(conn))
        roads = load_roads(conn, settings.metric_crs)
        zones = load_zones(conn, settings, params.zone_res)
        closures = load_closures(conn, roads, params)
    if roads.n_links == 0:
        raise TrafficRunError("the twin has no road links (ingest roads or build the demo)")
    timings["load_s"] = round(time.perf_counter() - t0, 3)

    t1 = time.perf_counter()
    base_net, dist = demand(roads, zones, params)
    timings["demand_s"] = round(time.perf_counter() - t1, 3)

    with store.progress_recorder(url, run_id) as record:
        scenario = params.has_closures and (closures.closed.any() or
                                            (closures.capacity_factor < 1).any())  # fmt: skip
        stages = 2 if scenario else 1

        def reporter(stage: int) -> Callable[[Any], None]:
            span = max(-math.log10(params.gap), 1e-9)

            def report(it: Any) -> None:
                done = min(1.0, -math.log10(max(it.gap, 1e-300)) / span)
                fraction = 0.95 * (stage + done) / stages
                record(fraction)
                if progress is not None:
                    progress(fraction)

            return report

        t2 = time.perf_counter()
        base = assign(base_net, dist.trips, gap=params.gap, max_iter=params.max_iter,
                      threads=settings.traffic_threads, on_iteration=reporter(0))  # fmt: skip
        result = base
        if scenario:
            cut = zone_network(
                roads, zones.x, zones.y, capacity_vph=roads.capacity_vph * closures.capacity_factor
            )
            closed = np.concatenate([closures.closed, np.zeros(cut.n_links - roads.n_links, bool)])
            result = assign(cut, dist.trips, gap=params.gap, max_iter=params.max_iter,
                            closed=closed, threads=settings.traffic_threads,
                            on_iteration=reporter(1))  # fmt: skip
        timings["assign_s"] = round(time.perf_counter() - t2, 3)

    t3 = time.perf_counter()
    with psycopg.connect(url) as conn, conn.transaction():
        baseline = None
        if scenario:
            base_params = replace(params, flood_runs=(), nowcast_steps=(), close_links=(),
                                  events=False, extra={"baseline_for": run_id})  # fmt: skip
            base_id = store.create_run(conn, "traffic", base_params.as_json())
            store.start_run(conn, base_id)
            _store_links(conn, settings, base_id, roads, base, None)
            baseline = _summary(base_id, base_params, roads, zones, dist, base, None, None)
            store.finish_run(conn, base_id, baseline, timings)
            conn.execute("UPDATE twin.sim_run SET baseline_run_id = %s WHERE id = %s",
                         (base_id, run_id))  # fmt: skip
        _store_links(conn, settings, run_id, roads, result, closures if scenario else None)
        timings["store_s"] = round(time.perf_counter() - t3, 3)
        summary = _summary(run_id, params, roads, zones, dist, result,
                           closures if scenario else None, baseline)  # fmt: skip
        store.finish_run(conn, run_id, summary, timings)
        bump_layer_versions(conn, ("traffic",))
    return summary


def _road_part(roads: RoadGraph, result: Assignment) -> tuple[npt.NDArray[Any], ...]:
    n = roads.n_links
    flow = result.flow[:n]
    t = result.time[:n]
    t0 = roads.free_flow_min
    tti = np.divide(t, t0, out=np.ones(n), where=t0 > 0)
    return flow, t, tti


def delay_index(roads: RoadGraph, result: Assignment) -> float:
    """City travel-time index: road time spent over what it would take at free flow (1.0 when
    nobody drives)."""
    flow, t, _ = _road_part(roads, result)
    free = float(np.dot(flow, roads.free_flow_min))
    return float(np.dot(flow, t)) / free if free > 0 else 1.0


def _store_links(
    conn: psycopg.Connection,
    settings: Settings,
    run_id: int,
    roads: RoadGraph,
    result: Assignment,
    closures: Closures | None,
) -> None:
    flow, t, tti = _road_part(roads, result)
    cap = roads.capacity_vph * (closures.capacity_factor if closures else 1.0)
    closed = closures.closed if closures else np.zeros(roads.n_links, dtype=bool)
    links = pd.DataFrame({
        "run_id": run_id, "link_id": roads.link_id, "flow_vph": flow, "time_min": t,
        "vc_ratio": np.divide(flow, cap, out=np.zeros_like(flow), where=cap > 0),
        "tti": tti, "closed": closed,
    })  # fmt: skip
    copy_rows(conn, "twin.traffic_link_result", list(links.columns), links)
    # Per cell at every kept resolution: vehicle-km and their time-weighted index.
    vkt = flow * roads.length_m / 1000.0
    has_cell = roads.cell > 0
    frames = []
    for res in settings.h3_resolutions:
        cells = h3grid.parent(roads.cell[has_cell], res)
        df = pd.DataFrame({"cell": cells, "vkt": vkt[has_cell],
                           "w": (vkt * tti)[has_cell]})  # fmt: skip
        g = df.groupby("cell", sort=True).sum()
        g["tti"] = np.where(g.vkt > 0, g.w / g.vkt.where(g.vkt > 0, 1.0), 1.0)
        frames.append(pd.DataFrame({"run_id": run_id, "res": res, "cell": g.index,
                                    "vkt": g.vkt.to_numpy(), "tti": g.tti.to_numpy()}))  # fmt: skip
    cells_df = pd.concat(frames, ignore_index=True)
    copy_rows(conn, "twin.traffic_cell_result", list(cells_df.columns), cells_df)


def _summary(
    run_id: int,
    params: TrafficParams,
    roads: RoadGraph,
    zones: Zones,
    dist: Distribution,
    result: Assignment,
    closures: Closures | None,
    baseline: dict[str, Any] | None,
) -> dict[str, Any]:
    flow, t, _ = _road_part(roads, result)
    index = delay_index(roads, result)
    lost = sorted(result.unreachable, key=lambda u: -u.demand)
    cells = h3grid.to_hex(zones.cells) if len(zones.cells) else []
    out: dict[str, Any] = {
        "run_id": run_id,
        "period": params.period,
        "zones": len(zones.cells),
        "zone_res": params.zone_res,
        "commuters": float(zones.homes.sum()),
        "trips": float(dist.trips.sum()),
        "intrazonal_trips": float(np.trace(dist.trips)),
        "assigned_trips": result.assigned_demand,
        "unreachable_trips": result.unreachable_demand,
        "unreachable_pairs": [
            {"from": cells[u.origin], "to": cells[u.destination], "trips": u.demand}
            for u in lost[:20]
        ],
        "mean_trip_min": dist.mean_cost,
        "beta_per_min": dist.beta,
        "demand_note": dist.note,
        # Everything travellers spend, centroid connectors (access) included: the measure a
        # closure is judged by, since detours can trade road time for access time.
        "tstt_veh_h": result.tstt / 60.0,
        "road_veh_h": float(np.dot(flow, t)) / 60.0,
        "vkt": float(np.dot(flow, roads.length_m)) / 1000.0,
        "delay_index": index,
        "delay_band": delay_band(index),
        "relative_gap": result.gap,
        "iterations": result.iterations,
        "converged": result.converged,
        "assign_s": round(result.seconds, 3),
        "closed_links": int(closures.closed.sum()) if closures else 0,
        "slowed_links": int((closures.capacity_factor < 1).sum()) if closures else 0,
        "closures": dict(closures.reasons) if closures else {},
    }
    out["warnings"] = (
        [] if out["trips"] > out["intrazonal_trips"]
        else ["no trip leaves its zone: the morning peak puts no car on a road"]
    )  # fmt: skip
    if baseline is not None:
        keys = ("run_id", "delay_index", "delay_band", "tstt_veh_h", "vkt")
        out["baseline"] = {k: baseline[k] for k in keys}
        extra = out["tstt_veh_h"] - baseline["tstt_veh_h"]
        out["change"] = {
            "delay_index": index - baseline["delay_index"],
            "tstt_veh_h": extra,
            "tstt_pct": 100 * extra / baseline["tstt_veh_h"] if baseline["tstt_veh_h"] else 0.0,
        }
    return out
