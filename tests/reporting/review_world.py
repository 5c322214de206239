"""A storm on one day of the tiny demo twin, written row by row at chosen times for the
after-action review tests: readings, nowcast steps, alerts, tasks and runs in district A (and a
few in district B), with every figure the review must find worked out by hand below.

The day (``2021-05-DD``) is the test's own: nothing else in the suite writes there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from tests.api.scope_world import District
from twin.settings import Settings


@dataclass
class Storm:
    day: int
    start: datetime
    end: datetime
    codes: dict[str, str]  # role -> sensor code
    sensors: dict[str, int] = field(default_factory=dict)
    alerts: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    links_a: list[int] = field(default_factory=list)
    link_b: int = 0
    flood_run: int = 0
    traffic_run: int = 0
    baseline_run: int = 0
    steps: dict[str, int] = field(default_factory=dict)


def at(day: int, hh: int, mm: int) -> datetime:
    return datetime(2021, 5, day, hh, mm, tzinfo=UTC)


# Readings (time, value) of the period 09:00-12:00.
RAIN_MM_H = [((10, 0), 12.0), ((10, 5), 60.0), ((10, 10), 30.0), ((11, 0), 6.0)]
RAIN_MM = [((10, 0), 2.0), ((10, 20), 3.0), ((10, 40), 1.0)]
LEVEL_M = [((9, 0), 0.55), ((9, 30), 0.2), ((10, 0), 0.3), ((10, 5), 0.6), ((10, 10), 0.7),
           ((10, 20), 0.4)]  # fmt: skip


def _patch_point(c: psycopg.Connection, patch: int) -> str:
    return str(
        c.execute(
            "SELECT ST_AsText(ST_PointOnSurface(geom)) FROM twin.admin_area WHERE id = %s",
            (patch,),
        ).fetchone()[0]  # type: ignore[index]
    )


def _links_in(c: psycopg.Connection, district: District, n: int) -> list[int]:
    rows = c.execute(
        """SELECT l.id FROM twin.road_link l WHERE EXISTS (
             SELECT 1 FROM twin.admin_area a WHERE a.level = 'grid' AND a.id = ANY(%s)
             AND ST_Intersects(a.geom, ST_LineInterpolatePoint(l.geom, 0.5)))
           ORDER BY l.id LIMIT %s""",
        (list(district.areas), n),
    ).fetchall()
    assert len(rows) == n, f"district {district.code} needs {n} road links"
    return [r[0] for r in rows]


def make_storm(settings: Settings, day: int, a: District, b: District) -> Storm:
    """Write the day's storm; ``a`` and ``b`` are districts (tests/api/scope_world.py)."""
    tag = f"RV{day:02d}"
    s = Storm(day, at(day, 9, 0), at(day, 12, 0),
              {"rain": f"{tag}-RAIN", "depth": f"{tag}-DEPTH", "level": f"{tag}-LEVEL",
               "level_b": f"{tag}-LEVEL-B", "datum": f"{tag}-DATUM"})  # fmt: skip
    with psycopg.connect(settings.database_url or "") as c:
        pa, pb = _patch_point(c, a.patch), _patch_point(c, b.patch)
        cell = c.execute(
            "SELECT max(cell) FROM twin.cell_stats WHERE area_id = %s AND res = "
            "(SELECT max(res) FROM twin.cell_stats)",
            (a.patch,),
        ).fetchone()[0]  # type: ignore[index]
        for role, kind, unit, point in (
            ("rain", "rain_gauge", "mm/h", pa), ("depth", "rain_gauge", "mm", pa),
            ("level", "water_level", "m", pa), ("level_b", "water_level", "m", pb),
            ("datum", "water_level", "m", pa),
        ):  # fmt: skip
            attrs = '{"datum": "elevation"}' if role == "datum" else "{}"
            s.sensors[role] = c.execute(
                "INSERT INTO twin.sensor (code, kind, unit, cell, geom, attrs) VALUES "
                "(%s, %s, %s, %s, ST_GeomFromText(%s, 4326), %s) RETURNING id",
                (s.codes[role], kind, unit, cell, point, attrs),
            ).fetchone()[0]  # type: ignore[index]
        for role, rows in (("rain", RAIN_MM_H), ("depth", RAIN_MM), ("level", LEVEL_M),
                           ("level_b", [((10, 0), 0.9)])):  # fmt: skip
            for (hh, mm), v in rows:
                c.execute(
                    "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s,%s,%s)",
                    (s.sensors[role], at(day, hh, mm), v),
                )
        # A reading just outside the period: never counted.
        c.execute(
            "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, 99)",
            (s.sensors["rain"], at(day, 12, 0)),
        )
        _nowcast(c, s, cell)
        _alerts(c, s, a, b)
        _tasks(c, s, a, b)
        _runs(c, s, a, b)
        c.commit()
    return s


def _nowcast(c: psycopg.Connection, s: Storm, cell: int) -> None:
    d = s.day
    nid = c.execute(
        "INSERT INTO twin.nowcast (origin, as_of, grid, state) VALUES (%s, %s, '{}', '') "
        "RETURNING id",
        (at(d, 9, 0), at(d, 11, 5)),
    ).fetchone()[0]  # type: ignore[index]
    steps = {}
    for name, (hh, mm) in {"s0": (10, 4), "s1": (10, 0), "s2": (11, 0), "s3": (11, 5)}.items():
        steps[name] = c.execute(
            "INSERT INTO twin.nowcast_step (nowcast_id, as_of, window_s, horizon_s, gauges,"
            " rain_mean_mm_h, rain_max_mm_h, forecast_rain_mean_mm_h, max_depth_now_m,"
            " max_depth_horizon_m) VALUES (%s, %s, 300, 3600, '{}', 0, 0, 0, 0, 0) RETURNING id",
            (nid, at(d, hh, mm)),
        ).fetchone()[0]  # type: ignore[index]
    # s1 (10:00) predicts 0.35 m in the level sensor's cell at 11:00; s0 (10:04) stores
    # nothing there (dry).
    c.execute(
        "INSERT INTO twin.nowcast_cell (step_id, res, cell, depth_now_m, depth_horizon_m,"
        " max_depth_horizon_m) VALUES (%s, twin.h3_resolution(%s), %s, 0.1, 0.35, 0.4)",
        (steps["s1"], cell, cell),
    )
    # s2 (11:00) and s3 (11:05) compare their readings with the model.
    for name, obs in (("s2", 0.40), ("s3", 0.42)):
        c.execute(
            "INSERT INTO twin.nowcast_skill (step_id, sensor_id, observed_at, observed_m,"
            " modelled_depth_m, modelled_level_m, difference_m) VALUES (%s,%s,%s,%s,0.3,10.3,%s)",
            (steps[name], s.sensors["level"], at(d, 10, 20), obs, obs - 0.3),
        )
    # A sensor reading a level (datum elevation): 10.5 m over ground at 10.0 m is 0.5 m deep.
    c.execute(
        "INSERT INTO twin.nowcast_skill (step_id, sensor_id, observed_at, observed_m,"
        " modelled_depth_m, modelled_level_m, difference_m) VALUES (%s,%s,%s,10.5,0.3,10.3,0.2)",
        (steps["s2"], s.sensors["datum"], at(d, 10, 55)),
    )
    s.steps = steps


def _alert(c: psycopg.Connection, s: Storm, key: str, rule: str, subject: str, area: int,
           threshold: float, times: tuple[datetime, datetime | None, datetime | None]) -> None:  # fmt: skip
    first, ack, res = times
    s.alerts[key] = c.execute(
        "INSERT INTO twin.alert (rule_id, dedup_key, subject, level, status, area_id, threshold,"
        " message, first_seen, last_seen, acknowledged_at, resolved_at)"
        " VALUES (%s, %s, %s, 'orange', %s, %s, %s, 'review test', %s, %s, %s, %s) RETURNING id",
        (
            rule,
            f"{subject}-{key}-{s.day}",
            subject,
            "resolved" if res else "acknowledged",
            area,
            threshold,
            first,
            first,
            ack,
            res,
        ),
    ).fetchone()[0]  # type: ignore[index]


def _alerts(c: psycopg.Connection, s: Storm, a: District, b: District) -> None:
    d = s.day
    _alert(c, s, "level", "water_level_high", s.codes["level"], a.patch, 0.5,
           (at(d, 10, 12), at(d, 10, 20), at(d, 10, 50)))  # fmt: skip
    _alert(c, s, "cell", "flood_depth_cell", "8a0000000000000", a.patch, 0.3,
           (at(d, 10, 30), at(d, 10, 45), None))  # fmt: skip
    _alert(c, s, "rain", "rain_gauge_intense", s.codes["rain"], a.patch, 50.0,
           (at(d, 10, 7), at(d, 13, 0), None))  # fmt: skip
    _alert(c, s, "b", "flood_depth_cell", "8a0000000000001", b.patch, 0.3,
           (at(d, 10, 15), at(d, 10, 16), None))  # fmt: skip
    # Raised before the period: not in it.
    _alert(c, s, "before", "flood_depth_cell", "8a0000000000002", a.patch, 0.3,
           (at(d, 8, 0), None, None))  # fmt: skip


def _task(c: psycopg.Connection, s: Storm, key: str, area: int, created: datetime,
          due: datetime | None, moves: list[tuple[str, datetime]]) -> None:  # fmt: skip
    state = moves[-1][0] if moves else "open"
    tid = c.execute(
        "INSERT INTO twin.task (title, state, priority, area_id, due_at, created_at, updated_at)"
        " VALUES (%s, %s, 2, %s, %s, %s, %s) RETURNING id",
        (f"review {key} {s.day}", state, area, due, created, created),
    ).fetchone()[0]  # type: ignore[index]
    prev = None
    for to_state, when in [("open", created), *moves]:
        c.execute(
            "INSERT INTO twin.task_transition (task_id, from_state, to_state, at)"
            " VALUES (%s, %s, %s, %s)",
            (tid, prev, to_state, when),
        )
        prev = to_state
    s.tasks[key] = tid


def _tasks(c: psycopg.Connection, s: Storm, a: District, b: District) -> None:
    d = s.day
    p = a.patch
    _task(
        c,
        s,
        "t1",
        p,
        at(d, 10, 15),
        at(d, 11, 0),
        [("accepted", at(d, 10, 25)), ("in_progress", at(d, 10, 30)), ("done", at(d, 10, 55))],
    )
    _task(
        c,
        s,
        "t2",
        p,
        at(d, 10, 20),
        at(d, 10, 40),
        [("accepted", at(d, 10, 35)), ("done", at(d, 10, 50))],
    )
    _task(c, s, "t3", p, at(d, 10, 40), at(d, 11, 30), [])
    _task(c, s, "t4", p, at(d, 11, 0), None, [])
    _task(c, s, "t5", p, at(d, 10, 50), at(d, 11, 10), [("closed", at(d, 11, 5))])
    _task(c, s, "b", b.patch, at(d, 10, 30), at(d, 10, 31), [])  # fmt: skip


def _runs(c: psycopg.Connection, s: Storm, a: District, b: District) -> None:
    d = s.day
    s.links_a = _links_in(c, a, 3)
    s.link_b = _links_in(c, b, 1)[0]

    def run(kind: str, finished: datetime, summary: dict[str, Any], params: dict[str, Any],
            baseline: int | None = None) -> int:  # fmt: skip
        return int(c.execute(
            "INSERT INTO twin.sim_run (kind, status, params, summary, baseline_run_id,"
            " created_at, started_at, finished_at, progress)"
            " VALUES (%s, 'succeeded', %s, %s, %s, %s, %s, %s, 1) RETURNING id",
            (kind, json.dumps(params), json.dumps(summary), baseline,
             finished - timedelta(minutes=5), finished - timedelta(minutes=5), finished),
        ).fetchone()[0])  # type: ignore[index]  # fmt: skip

    s.flood_run = run("flood", at(d, 11, 30), {"rain_mm": 40}, {})
    for link, state, depth in ((s.links_a[0], "closed", 0.5), (s.links_a[1], "closed", 0.35),
                               (s.links_a[2], "slowed", 0.2), (s.link_b, "closed", 0.6)):  # fmt: skip
        c.execute(
            "INSERT INTO twin.flood_link_result (run_id, link_id, max_depth_m, state)"
            " VALUES (%s, %s, %s, %s)",
            (s.flood_run, link, depth, state),
        )
    s.baseline_run = run("traffic", at(d, 11, 35), {"closed_links": 0, "tstt_veh_h": 1000.0}, {})
    s.traffic_run = run(
        "traffic", at(d, 11, 40),
        {"closed_links": 3, "tstt_veh_h": 1200.0, "baseline": {"tstt_veh_h": 1000.0},
         "change": {"tstt_veh_h": 200.0, "tstt_pct": 20.0, "delay_index": 0.1}},
        {"flood_runs": [s.flood_run]}, s.baseline_run,
    )  # fmt: skip
    steps = s.steps
    for name, depth in (("s2", 0.4), ("s3", 0.45)):
        c.execute(
            "INSERT INTO twin.nowcast_link (step_id, link_id, depth_now_m, depth_horizon_m,"
            " state_now, state_horizon) VALUES (%s, %s, %s, %s, 'closed', 'closed')",
            (steps[name], s.links_a[0], depth, depth),
        )
    c.execute(
        "INSERT INTO twin.nowcast_link (step_id, link_id, depth_now_m, depth_horizon_m,"
        " state_now, state_horizon) VALUES (%s, %s, 0.2, 0.4, 'slowed', 'closed')",
        (steps["s2"], s.links_a[1]),
    )
