"""Cockpits: every figure of a city, a district and a grid patch equals an independent aggregate
(spatial joins on the area polygons, explicit recursive CTEs, Python over raw rows); trends
compare with the period, snapshot or run before; small people counts are hidden."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import h3
import psycopg
import pytest

from twin import grid
from twin.api.errors import InvalidParameterError
from twin.city.demo import build_demo
from twin.reporting.cockpit import cockpit, parse_as_of, parse_period, trend
from twin.runs.flood import FloodParams, run_flood
from twin.runs.traffic import TrafficParams, run_traffic
from twin.settings import Settings

K = 10
DAYS = 30
LEVELS = ("blue", "yellow", "orange", "red")
SUBTREE = """
WITH RECURSIVE sub(id) AS (
    SELECT %s::bigint
    UNION ALL
    SELECT a.id FROM twin.admin_area a JOIN sub ON a.parent_id = sub.id
)
SELECT id FROM sub
"""


@dataclass
class City:
    settings: Settings
    as_of: datetime
    city: int
    district: int
    other_district: int
    community: int
    patch: int
    other_patch: int
    flood: tuple[int, int]  # previous, latest
    traffic: tuple[int, int]  # previous, latest (non-baseline)
    risk_at: datetime


def q(s: Settings, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(s.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


def _insert_tasks(conn: psycopg.Connection, c: City) -> None:
    t = c.as_of
    h = timedelta(hours=1)
    d = timedelta(days=1)
    # (area, created, [(state, hours after creation)], due, state without transitions)
    tasks = [
        (c.patch, t - 5 * d, [("open", 0), ("accepted", 2), ("in_progress", 3), ("done", 10)],
         t - 4 * d, "done"),
        (c.community, t - 3 * d, [("open", 0), ("accepted", 5)], t - d, "accepted"),
        (c.district, t - 40 * d, [("open", 0), ("accepted", 8), ("in_progress", 9),
                                  ("done", 30), ("closed", 40)], t - 39 * d, "closed"),
        (c.patch, t - 35 * d, [("open", 0)], t - 34 * d, "open"),
        (c.other_patch, t - 2 * d, [("open", 0), ("accepted", 1)], t + d, "accepted"),
        (c.patch, t - d, [], t + d, "open"),  # no transitions at all
        (c.patch, t - 2 * h, [("open", 0), ("accepted", 3)], t + d, "accepted"),  # after as_of
        (c.patch, t + h, [("open", 0)], t + d, "open"),  # created after as_of
        (c.patch, t - 6 * d, [("open", 0), ("rejected", 1)], t - 5 * d, "rejected"),
        (c.community, t - 45 * d, [("open", 0), ("accepted", 20)], t - 44 * d, "accepted"),
    ]  # fmt: skip
    for area, created, moves, due, state in tasks:
        (tid,) = conn.execute(
            "INSERT INTO twin.task (title, state, area_id, created_at, updated_at, due_at)"
            " VALUES ('t', %s, %s, %s, %s, %s) RETURNING id",
            (state, area, created, created, due),
        ).fetchone()
        prev = None
        for to, hours in moves:
            conn.execute(
                "INSERT INTO twin.task_transition (task_id, from_state, to_state, at)"
                " VALUES (%s, %s, %s, %s)",
                (tid, prev, to, created + hours * h),
            )
            prev = to


def _insert_alerts(conn: psycopg.Connection, c: City) -> None:
    t, d = c.as_of, timedelta(days=1)
    alerts = [
        (c.patch, "red", "active", t - 2 * d, None),
        (c.community, "orange", "acknowledged", t - 40 * d, None),
        (c.district, "yellow", "pending", t - d, None),
        (c.patch, "red", "resolved", t - 35 * d, t - 10 * d),
        (c.patch, "yellow", "resolved", t - 5 * d, t - 4 * d),
        (c.other_patch, "blue", "active", t - d, None),
        (c.patch, "orange", "active", t + timedelta(hours=1), None),
    ]
    for i, (area, level, status, first, resolved) in enumerate(alerts):
        conn.execute(
            "INSERT INTO twin.alert (rule_id, dedup_key, level, status, area_id, message,"
            " first_seen, last_seen, resolved_at) VALUES ('r', %s, %s, %s, %s, 'm', %s, %s, %s)",
            (f"k{i}", level, status, area, first, first, resolved),
        )


def _insert_risk(conn: psycopg.Connection, c: City) -> None:
    conn.execute(
        "INSERT INTO twin.risk_score (layer_id, res, cell, score, level, computed_at, geom)"
        " SELECT 'onemap', 9, cell, (row_number() OVER (ORDER BY cell) * 7) %% 100,"
        "        (ARRAY['blue','yellow','orange','red'])[1 + (row_number() OVER (ORDER BY cell)) %% 4],"
        "        %s, geom FROM twin.cell_stats WHERE res = 9",
        (c.risk_at,),
    )
    # Another layer and another resolution must not count.
    conn.execute(
        "INSERT INTO twin.risk_score (layer_id, res, cell, score, level, computed_at, geom)"
        " SELECT 'fire', 9, cell, 90, 'red', %s, geom FROM twin.cell_stats WHERE res = 9",
        (c.risk_at,),
    )
    d = timedelta(days=1)
    for area in (c.city, c.district, c.patch):
        for at, counts in ((c.risk_at - 3 * d, (1, 2, 3, 4)), (c.risk_at - 2 * d, (5, 6, 7, 8)),
                           (c.risk_at, (50, 60, 70, 80))):  # fmt: skip
            conn.execute(
                "INSERT INTO twin.risk_snapshot (computed_at, layer_id, area_id, blue, yellow,"
                " orange, red) VALUES (%s, 'onemap', %s, %s, %s, %s, %s)",
                (at, area, *counts),
            )


@pytest.fixture(scope="module")
def city(make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> City:
    s = Settings(
        _env_file=None, database_url=make_database("twin_cockpit"),
        data_dir=tmp_path_factory.mktemp("cockpit"), suppression_k=K,
    )  # fmt: skip
    build_demo(s, size="tiny", seed=8)
    f1 = run_flood(s, FloodParams(return_period_years=5, duration_s=1800, after_s=900))
    f2 = run_flood(s, FloodParams(return_period_years=50, duration_s=3600, after_s=900))
    t1 = run_traffic(s, TrafficParams(events=False))
    t2 = run_traffic(s, TrafficParams(flood_runs=(f2["run_id"],), peak_share=1.0))
    assert "baseline" in t2  # a baseline run exists and must be skipped
    as_of = datetime.now(UTC)
    (city_id,) = q(s, "SELECT id FROM twin.admin_area WHERE level = 'city'")[0]
    districts = [r[0] for r in q(s, "SELECT id FROM twin.admin_area WHERE level = 'district'"
                                    " ORDER BY code")]  # fmt: skip
    # A populated patch of the first district that holds a res-9 cell.
    patch, community = q(
        s,
        "SELECT a.id, a.parent_id FROM twin.admin_area a"
        " WHERE a.level = 'grid' AND twin.area_at_level(a.id, 'district') = %s"
        "   AND EXISTS (SELECT 1 FROM twin.cell_stats cs WHERE cs.res = 9 AND cs.area_id = a.id)"
        "   AND EXISTS (SELECT 1 FROM twin.building b JOIN twin.person p"
        "               ON p.home_building_id = b.id WHERE b.area_id = a.id)"
        " ORDER BY a.code LIMIT 1",
        districts[0],
    )[0]
    (other_patch,) = q(
        s, "SELECT id FROM twin.admin_area WHERE level = 'grid'"
        " AND twin.area_at_level(id, 'district') = %s ORDER BY code LIMIT 1", districts[1],
    )[0]  # fmt: skip
    c = City(s, as_of, city_id, districts[0], districts[1], community, patch, other_patch,
             (f1["run_id"], f2["run_id"]), (t1["run_id"], t2["run_id"]),
             as_of - timedelta(hours=1))  # fmt: skip
    with psycopg.connect(s.database_url or "") as conn:
        _insert_tasks(conn, c)
        _insert_alerts(conn, c)
        _insert_risk(conn, c)
    return c


def board(c: City, level: str, area: Any, **kw: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(c.settings.database_url or "") as conn:
            as_of = kw.pop("as_of", c.as_of)
            return await cockpit(
                conn, level=level, area=area, as_of=as_of, period_days=DAYS, k=kw.pop("k", K),
                allowed=kw.pop("allowed", True), live=kw.pop("live", None if as_of is None else False),
            )  # fmt: skip

    return asyncio.run(go())


# ------------------------------------------------------------------ independent expectations
def _state_at(created: datetime, state: str, moves: list[tuple[datetime, str]], t: datetime):
    if created >= t:
        return None
    before = [m for m in moves if m[0] < t]
    if before:
        return before[-1][1]
    return "open" if moves else state


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def expected(c: City, area: int) -> dict[str, tuple[Any, Any]]:
    """indicator id -> (value, previous) computed without the code under test."""
    s, end = c.settings, c.as_of
    start, prev = end - timedelta(days=DAYS), end - timedelta(days=2 * DAYS)
    out: dict[str, tuple[Any, Any]] = {}
    # People and buildings: buildings whose centroid lies in the area polygon.
    (pop,) = q(s, "SELECT count(*) FROM twin.person p JOIN twin.building b ON b.id ="
                  " p.home_building_id JOIN twin.admin_area a ON a.id = %s"
                  " WHERE ST_Contains(a.geom, ST_Centroid(b.geom))", area)[0]  # fmt: skip
    (nb,) = q(s, "SELECT count(*) FROM twin.building b JOIN twin.admin_area a ON a.id = %s"
                 " WHERE ST_Contains(a.geom, ST_Centroid(b.geom))", area)[0]  # fmt: skip
    out["population"], out["buildings"] = (pop, None), (nb, None)
    # Events: points in the area polygon; windows in Python.
    ev = q(s, "SELECT e.status, e.occurred_at, e.closed_at FROM twin.event e JOIN"
              " twin.admin_area a ON a.id = %s WHERE ST_Contains(a.geom, e.geom)", area)  # fmt: skip

    def open_at(t: datetime) -> int:
        return sum(1 for st, occ, cl in ev
                   if occ < t and (st != "closed" or (cl is not None and cl >= t)))  # fmt: skip

    out["events_open"] = (open_at(end), open_at(start))
    out["events_reported"] = (sum(start <= o < end for _, o, _ in ev),
                              sum(prev <= o < start for _, o, _ in ev))  # fmt: skip
    out["events_closed"] = (
        sum(st == "closed" and cl is not None and start <= cl < end for st, _, cl in ev),
        sum(st == "closed" and cl is not None and prev <= cl < start for st, _, cl in ev),
    )
    # Tasks of the subtree (recursive CTE), states replayed in Python.
    sub = [r[0] for r in q(s, SUBTREE, area)]
    tasks = q(s, "SELECT id, created_at, due_at, state FROM twin.task WHERE area_id = ANY(%s)", sub)
    moves: dict[int, list[tuple[datetime, str]]] = {}
    for tid, at, to in q(s, "SELECT task_id, at, to_state FROM twin.task_transition"
                            " ORDER BY at, id"):  # fmt: skip
        moves.setdefault(tid, []).append((at, to))

    def first(tid: int, state: str) -> datetime | None:
        hits = [a for a, st in moves.get(tid, []) if st == state and a < end]
        return hits[0] if hits else None

    def hours(lo: datetime, hi: datetime, state: str) -> float | None:
        xs = []
        for tid, created, _, _ in tasks:
            when = first(tid, state)
            if lo <= created < hi and when is not None:
                xs.append((when - created).total_seconds() / 3600)
        return _mean(xs)

    out["task_response_h"] = (hours(start, end, "accepted"), hours(prev, start, "accepted"))
    out["task_done_h"] = (hours(start, end, "done"), hours(prev, start, "done"))
    finished = {"done", "closed", "rejected", None}

    def open_tasks(t: datetime, overdue: bool) -> int:
        n = 0
        for tid, created, due, state in tasks:
            st = _state_at(created, state, moves.get(tid, []), t)
            n += st not in finished and (not overdue or (due is not None and due < t))
        return n

    out["tasks_open"] = (open_tasks(end, False), open_tasks(start, False))
    out["tasks_overdue"] = (open_tasks(end, True), open_tasks(start, True))
    # Risk: one-map res-9 cells whose patch is in the subtree; previous snapshot in Python.
    risk = dict(q(s, "SELECT r.level, count(*) FROM twin.risk_score r JOIN twin.cell_stats cs"
                     " ON cs.res = 9 AND cs.cell = r.cell WHERE r.layer_id = 'onemap'"
                     " AND r.res = 9 AND cs.area_id = ANY(%s) GROUP BY r.level", sub))  # fmt: skip
    snaps = q(s, "SELECT computed_at, blue, yellow, orange, red FROM twin.risk_snapshot"
                 " WHERE layer_id = 'onemap' AND area_id = %s", area)  # fmt: skip
    older = sorted(r for r in snaps if r[0] < c.risk_at)
    for i, lvl in enumerate(LEVELS):
        out[f"risk_cells_{lvl}"] = (risk.get(lvl, 0), older[-1][1 + i] if older else None)
    # Alerts in Python.
    al = q(s, "SELECT level, status, first_seen, resolved_at FROM twin.alert"
              " WHERE area_id = ANY(%s)", sub)  # fmt: skip

    def alerts(t: datetime, level: str | None) -> int:
        return sum(1 for lv, st, fs, rs in al if (level is None or lv == level) and fs < t and (
            st in ("active", "acknowledged") or (st == "resolved" and rs >= t)))  # fmt: skip

    out["alerts_active"] = (alerts(end, None), alerts(start, None))
    for lvl in LEVELS:
        out[f"alerts_active_{lvl}"] = (alerts(end, lvl), alerts(start, lvl))

    # Flood: latest and previous runs; res-10 cells whose patch is in the subtree.
    def flooded(run: int) -> float:
        rows = q(s, "SELECT f.cell, f.flooded_share FROM twin.flood_cell_result f JOIN"
                    " twin.cell_stats cs ON cs.res = 10 AND cs.cell = f.cell WHERE f.run_id = %s"
                    " AND f.res = 10 AND cs.area_id = ANY(%s)", run, sub)  # fmt: skip
        return sum(share * h3.cell_area(grid.to_hex([cell])[0], "m^2") for cell, share in rows)

    def closed(run: int) -> int:
        return q(s, "SELECT count(*) FROM twin.flood_link_result fl JOIN twin.road_link l"
                    " ON l.id = fl.link_id JOIN twin.cell_stats cs ON cs.res = 10"
                    " AND cs.cell = l.cell WHERE fl.run_id = %s AND fl.state = 'closed'"
                    " AND cs.area_id = ANY(%s)", run, sub)[0][0]  # fmt: skip

    old, new = c.flood
    out["flooded_area_m2"] = (flooded(new), flooded(old))
    out["roads_closed"] = (closed(new), closed(old))

    def delay(run: int) -> float | None:
        if area == c.city:
            return q(s, "SELECT (summary->>'delay_index')::float8 FROM twin.sim_run"
                        " WHERE id = %s", run)[0][0]  # fmt: skip
        (v, w), = q(s, "SELECT sum(t.vkt), sum(t.vkt * t.tti) FROM twin.traffic_cell_result t"
                       " JOIN twin.cell_stats cs ON cs.res = 9 AND cs.cell = t.cell"
                       " WHERE t.run_id = %s AND t.res = 9 AND cs.area_id = ANY(%s)",
                    run, sub)  # fmt: skip
        return w / v if v else None

    old, new = c.traffic
    out["delay_index"] = (delay(new), delay(old))
    return out


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return a == pytest.approx(b, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("which", ["city", "district", "patch"])
def test_every_figure_equals_an_independent_aggregate(city: City, which: str) -> None:
    area = getattr(city, which)
    level = {"city": "city", "district": "district", "patch": "grid"}[which]
    got = board(city, level, str(area))
    want = expected(city, area)
    inds = {i["id"]: i for i in got["indicators"]}
    assert set(inds) == set(want)
    for ind_id, (value, previous) in want.items():
        i = inds[ind_id]
        assert _close(i["value"], value), (ind_id, i["value"], value)
        assert _close(i["previous"], previous), (ind_id, i["previous"], previous)
        if value is not None and previous is not None:
            assert _close(i["change"], value - previous)
            assert i["trend"] == trend(value, previous)
        else:
            assert i["change"] is None and i["trend"] is None
    assert got["sources"]["flood_run"] == city.flood[1]
    assert got["sources"]["flood_previous_run"] == city.flood[0]
    assert got["sources"]["traffic_run"] == city.traffic[1]
    assert got["sources"]["traffic_previous_run"] == city.traffic[0]


def test_the_fixture_exercises_every_figure(city: City) -> None:
    """Guards the test above against vacuous zeros: the seeded rows show up."""
    want = expected(city, city.district)
    assert want["task_response_h"][0] == pytest.approx((2 + 5) / 2)  # patch + community tasks
    assert want["task_response_h"][1] == pytest.approx((8 + 20) / 2)  # district + community
    assert want["task_done_h"] == (pytest.approx(10), pytest.approx(30))
    assert want["tasks_open"][0] >= 3 and want["tasks_overdue"][0] >= 2
    assert want["alerts_active"] == (2, 2)  # red active + orange ack; before: orange + red
    assert want["risk_cells_red"][1] == 8  # the snapshot before the current compute
    assert want["flooded_area_m2"][0] > 0 and want["roads_closed"][0] > 0
    assert want["events_reported"][0] + want["events_reported"][1] > 0
    assert want["delay_index"][0] is not None
    # Every road link's midpoint cell has statistics (so the expectation needs no fallback).
    assert (
        q(
            city.settings,
            "SELECT count(*) FROM twin.road_link l WHERE NOT EXISTS (SELECT 1"
            " FROM twin.cell_stats cs WHERE cs.res = 10 AND cs.cell = l.cell)",
        )[0][0]
        == 0
    )


def test_codes_and_ids_name_the_same_area(city: City) -> None:
    (code,) = q(city.settings, "SELECT code FROM twin.admin_area WHERE id = %s", city.district)[0]
    by_code, by_id = board(city, "district", code), board(city, "district", city.district)
    assert by_code["indicators"] == by_id["indicators"]
    assert by_code["area"]["parent"]["id"] == city.city and by_code["area"]["level"] == "district"
    assert board(city, "city", None)["area"]["id"] == city.city


def test_children_partition_their_parent(city: City) -> None:
    got = board(city, "district", city.district)
    kids = got["children"]
    inds = {i["id"]: i["value"] for i in got["indicators"]}
    assert {k["id"] for k in kids} == {
        r[0] for r in q(city.settings, "SELECT id FROM twin.admin_area WHERE parent_id = %s",
                        city.district)}  # fmt: skip
    # Everything but tasks and alerts on the district itself is held by exactly one child.
    for key, ind in (
        ("buildings", "buildings"),
        ("population", "population"),
        ("events_open", "events_open"),
        ("events_reported", "events_reported"),
        ("risk_red_cells", "risk_cells_red"),
        ("roads_closed", "roads_closed"),
    ):
        assert sum(k["figures"][key] for k in kids) == inds[ind], key
    assert sum(k["figures"]["flooded_area_m2"] for k in kids) == pytest.approx(
        inds["flooded_area_m2"]
    )
    assert sum(k["figures"]["tasks_open"] for k in kids) <= inds["tasks_open"]
    # A child's headline figures are those of its own cockpit.
    child = kids[0]
    own = {i["id"]: i["value"] for i in board(city, child["level"], child["code"])["indicators"]}
    assert child["figures"]["events_open"] == own["events_open"]
    assert child["figures"]["alerts_active"] == own["alerts_active"]
    assert child["figures"]["flooded_area_m2"] == pytest.approx(own["flooded_area_m2"])
    assert child["cockpit"] == f"/api/cockpit?level={child['level']}&area={child['code']}"


def test_small_populations_are_hidden_unless_allowed(city: City) -> None:
    (pop,) = q(city.settings, "SELECT count(*) FROM twin.person p JOIN twin.building b"
                              " ON b.id = p.home_building_id WHERE b.area_id = %s",
               city.patch)[0]  # fmt: skip
    assert pop > 0
    k = pop + 1  # the patch is now a small area
    hidden = board(city, "grid", city.patch, k=k, allowed=False)
    shown = board(city, "grid", city.patch, k=k, allowed=True)
    value = {i["id"]: i["value"] for i in hidden["indicators"]}
    assert value["population"] is None and hidden["suppressed"] == ["population"]
    assert {i["id"]: i["value"] for i in shown["indicators"]}["population"] == pop
    assert shown["suppressed"] == []
    # At the default k the patch's count is visible to all unless hiding a sibling needs it.
    community = board(city, "community", city.community, k=k, allowed=False)
    kids = {c["id"]: c["figures"]["population"] for c in community["children"]}
    assert kids[city.patch] is None


@pytest.mark.parametrize("k", [5, 50, 200, 600])
def test_hidden_children_cannot_be_recovered_from_the_parent(city: City, k: int) -> None:
    for level, area in (("city", city.city), ("district", city.district),
                        ("community", city.community)):  # fmt: skip
        got = board(city, level, area, k=k, allowed=False)
        parent = {i["id"]: i["value"] for i in got["indicators"]}["population"]
        shown = [c["figures"]["population"] for c in got["children"]]
        if parent is None or None not in shown:
            continue
        residual = parent - sum(v for v in shown if v is not None)
        hidden = [c for c in got["children"] if c["figures"]["population"] is None]
        # Whatever is hidden is hidden in twos or more and sums to k or more (or to nothing).
        assert residual == 0 or (len(hidden) >= 2 and residual >= k)
        # A child hidden here is hidden in its own cockpit too.
        for c in hidden:
            own = board(city, c["level"], c["id"], k=k, allowed=False)
            assert own["suppressed"] == ["population"]


def test_risk_as_of_before_the_compute_reads_snapshots(city: City) -> None:
    got = board(city, "district", city.district, as_of=city.risk_at - timedelta(hours=1))
    red = {i["id"]: i for i in got["indicators"]}["risk_cells_red"]
    assert (red["value"], red["previous"], red["trend"]) == (8, 4, "up")
    early = board(city, "district", city.district, as_of=city.risk_at - timedelta(days=10))
    assert {i["id"]: i["value"] for i in early["indicators"]}["risk_cells_red"] is None


def test_runs_after_as_of_are_not_seen(city: City) -> None:
    (first_done,) = q(city.settings, "SELECT finished_at FROM twin.sim_run WHERE id = %s",
                      city.flood[0])[0]  # fmt: skip
    got = board(city, "city", None, as_of=first_done + timedelta(microseconds=1))
    assert got["sources"]["flood_run"] == city.flood[0]
    assert got["sources"]["flood_previous_run"] is None
    assert got["sources"]["traffic_run"] is None
    flood = {i["id"]: i for i in got["indicators"]}["flooded_area_m2"]
    assert flood["previous"] is None and flood["trend"] is None


def test_live_cockpit_counts_open_events_by_status(city: City) -> None:
    got = board(city, "city", None, as_of=None)
    (n,) = q(city.settings, "SELECT count(*) FROM twin.event WHERE status IN ('open',"
                            " 'in_progress')")[0]  # fmt: skip
    assert {i["id"]: i["value"] for i in got["indicators"]}["events_open"] == n


def test_bad_requests(city: City) -> None:
    with pytest.raises(InvalidParameterError) as e:
        board(city, "district", city.patch)
    assert e.value.parameter == "level"
    with pytest.raises(InvalidParameterError):
        board(city, "borough", city.patch)
    with pytest.raises(InvalidParameterError) as e:
        board(city, "grid", None)
    assert e.value.parameter == "area"
    # An unknown area is a bad parameter, as in every lookup (twin.city.areas).
    for ref in ("no-such-code", "99999999999"):
        with pytest.raises(InvalidParameterError) as e:
            board(city, "grid", ref)
        assert e.value.parameter == "area"


def test_period_and_as_of_parsing() -> None:
    assert parse_period("30d") == 30 and parse_period("4w") == 28 and parse_period("7") == 7
    for bad in ("0d", "367d", "30x", "", "-1d", "1.5d"):
        with pytest.raises(InvalidParameterError) as e:
            parse_period(bad)
        assert e.value.parameter == "period"
    assert parse_as_of("2026-01-02T03:04:05") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_as_of("2026-01-02T03:04:05Z").tzinfo is not None
    with pytest.raises(InvalidParameterError) as e:
        parse_as_of("yesterday")
    assert e.value.parameter == "as_of"
