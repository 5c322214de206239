"""The nowcast in the live loop (twin.runs.nowloop) on the tiny demo twin: a step when gauges
read, the nowcast-fed risk layers updated only where they changed and equal, row for row, to a
full `twin risk compute` over the same inputs, the nowcast rules raising alerts with tasks for
the auto one. Expected values come from direct SQL on the stored step, not from the code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from twin.risk.catalog import load_catalog
from twin.risk.compute import compute_risk
from twin.runs.nowcast import NowcastParams
from twin.runs.nowloop import NowcastLoop
from twin.runs.traffic import TrafficParams, run_traffic
from twin.settings import Settings

from .nowcast_world import after_the_latest_step, rain

T0 = datetime(2026, 8, 1, 9, 0, tzinfo=UTC)
MM_H = 150.0
# Every cell stored by any layer, with what it says (computed_at aside: it tells which rows a
# write touched, not what they hold).
SCORES_SQL = """
SELECT layer_id, res, cell, score, level, components::text, small_count,
       md5(ST_AsEWKB(geom)::text)
FROM twin.risk_score
"""


def q(settings: Settings, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


def scores(settings: Settings) -> set[tuple[Any, ...]]:
    return set(q(settings, SCORES_SQL))


def full_compute(settings: Settings, at: datetime) -> None:
    catalog = load_catalog(settings.layers_dir, resolutions=settings.h3_resolutions)
    compute_risk(settings.database_url or "", catalog, resolutions=settings.h3_resolutions,
                 k=settings.suppression_k, as_of=at)  # fmt: skip


def risk_version(settings: Settings) -> int:
    rows = q(settings, "SELECT version FROM twin.layer_version WHERE layer = 'risk_score'")
    return int(rows[0][0]) if rows else 0


@pytest.fixture(scope="module")
def loop(tiny_settings: Settings) -> NowcastLoop:
    global T0  # later than any step other tests left in the shared twin (read at call time)
    url = tiny_settings.database_url or ""
    T0 = after_the_latest_step(url, T0)
    rain(url, "LOOP", T0, MM_H, range(-60, 31))
    from twin.alerts.rules import load_rules

    rules, errors = load_rules(tiny_settings.rules_dir)
    assert not errors
    # A first window of an hour: 150 mm of rain, deep enough for water over 0.3 m. Traffic
    # re-assignment off: these tests follow the incremental risk path (see the test of it).
    settings = tiny_settings.model_copy(update={"nowcast_traffic": False})
    return NowcastLoop(settings, rules, every_s=300, params=NowcastParams(window_s=3600))


@pytest.fixture(scope="module")
def first(loop: NowcastLoop, tiny_settings: Settings) -> dict[str, Any]:
    # The scores the update starts from: a full compute over the same event windows (as_of).
    full_compute(tiny_settings, T0)
    before = risk_version(tiny_settings)
    out = asyncio.run(loop.step_once(as_of=T0))
    out["version_before"] = before
    out["incremental_scores"] = scores(tiny_settings)
    return out


def test_no_step_without_a_fresh_gauge_reading(loop: NowcastLoop, tiny_settings: Settings) -> None:
    early = T0 - timedelta(hours=3)  # the gauges only read from an hour before T0
    n = q(tiny_settings, "SELECT count(*) FROM twin.nowcast_step")[0][0]
    out = asyncio.run(loop.step_once(as_of=early))
    assert "skipped" in out and "step" not in out
    assert q(tiny_settings, "SELECT count(*) FROM twin.nowcast_step")[0][0] == n


def test_a_step_runs_and_feeds_the_waterlogging_layer(
    first: dict[str, Any], tiny_settings: Settings
) -> None:
    assert "error" not in first, first.get("error")
    step_id = first["step"]["step_id"]
    assert sorted(first["step"]["gauges"]["used"]) == ["LOOP-NW", "LOOP-SE"]
    assert first["risk"]["nowcast_step"] == step_id
    # The waterlogging layer's depth input is the nowcast's, now or within the horizon: by SQL.
    expected = dict(q(tiny_settings,
        "SELECT cell, greatest(depth_now_m, max_depth_horizon_m) FROM twin.nowcast_cell"
        " WHERE step_id = %s AND res = 9", step_id))  # fmt: skip
    got = dict(q(tiny_settings,
        "SELECT cell, (components -> 'max_depth_m' ->> 'value')::float8 FROM twin.risk_score"
        " WHERE layer_id = 'waterlogging' AND res = 9"
        " AND components -> 'max_depth_m' ->> 'value' IS NOT NULL"))  # fmt: skip
    assert expected and got == expected
    # The risk tiles' version moved: /api/stream sends a tiles event.
    assert risk_version(tiny_settings) > first["version_before"]


def test_incremental_risk_equals_a_full_compute(
    loop: NowcastLoop, first: dict[str, Any], tiny_settings: Settings
) -> None:
    full_compute(tiny_settings, T0)
    after_full = scores(tiny_settings)
    assert first["incremental_scores"] == after_full
    # A second step five minutes on, from a full compute at its time: the incremental update
    # rewrites only what the new water changed.
    t1 = T0 + timedelta(minutes=5)
    full_compute(tiny_settings, t1)
    out = asyncio.run(loop.step_once(as_of=t1))
    assert "error" not in out, out.get("error")
    incremental = scores(tiny_settings)
    # rows deleted plus rows written, against every row of every layer
    assert 0 < out["risk"]["rows"] < len(incremental) / 2, out["risk"]
    assert out["risk"]["layers"]["waterlogging"] > 0
    full_compute(tiny_settings, t1)
    assert incremental == scores(tiny_settings)


def test_nowcast_rules_raise_alerts_and_the_auto_one_dispatches(
    first: dict[str, Any], tiny_settings: Settings
) -> None:
    step_id = first["step"]["step_id"]
    deep_now = {h for (h,) in q(tiny_settings,
        "SELECT twin.h3_to_hex(cell) FROM twin.nowcast_cell WHERE step_id = %s AND res = 9"
        " AND depth_now_m >= 0.3", step_id)}  # fmt: skip
    deep_ahead = {h for (h,) in q(tiny_settings,
        "SELECT twin.h3_to_hex(cell) FROM twin.nowcast_cell WHERE step_id = %s AND res = 9"
        " AND depth_horizon_m >= 0.3", step_id)}  # fmt: skip
    assert deep_now and deep_ahead
    now_alerts = q(tiny_settings,
        "SELECT a.subject, a.id, a.level, a.area_id, c.area_id FROM twin.alert a"
        " LEFT JOIN twin.cell_stats c ON c.res = 9 AND c.cell = a.cell"
        " WHERE a.rule_id = 'nowcast_depth_cell' AND a.first_seen = %s", T0)  # fmt: skip
    assert {r[0] for r in now_alerts} == deep_now
    assert all(r[2] == "orange" and r[3] == r[4] for r in now_alerts)  # to the cell's patch
    tasks = q(tiny_settings,
        "SELECT t.alert_id, t.area_id, a.status FROM twin.task t JOIN twin.alert a"
        " ON a.id = t.alert_id WHERE a.rule_id = 'nowcast_depth_cell' AND a.first_seen = %s",
        T0)  # fmt: skip
    assert {t[0] for t in tasks} == {r[1] for r in now_alerts}
    assert sorted(first["tasks"]) == sorted(
        r[0] for r in q(tiny_settings, "SELECT t.id FROM twin.task t JOIN twin.alert a"
                        " ON a.id = t.alert_id WHERE a.rule_id = 'nowcast_depth_cell'"
                        " AND a.first_seen = %s", T0))  # fmt: skip
    assert {t[1] for t in tasks} == {r[3] for r in now_alerts}
    assert all(t[2] == "acknowledged" for t in tasks)
    ahead = q(tiny_settings,
        "SELECT a.subject, a.level, a.status, (SELECT count(*) FROM twin.task t"
        " WHERE t.alert_id = a.id) FROM twin.alert a"
        " WHERE a.rule_id = 'nowcast_forecast_cell' AND a.first_seen = %s", T0)  # fmt: skip
    assert {r[0] for r in ahead} == deep_ahead
    assert all(r[1:] == ("yellow", "active", 0) for r in ahead)


def test_closed_roads_feed_a_traffic_reassignment(
    loop: NowcastLoop, first: dict[str, Any], tiny_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    # A loop with re-assignment on, a step after the others: after its alerts, the peak is
    # assigned again with the step's closed and slowed roads (checked by SQL on the step), and
    # the risk map is then scored on the new traffic run.
    if not q(tiny_settings, "SELECT 1 FROM twin.sim_run WHERE kind = 'traffic'"
             " AND status = 'succeeded'"):  # fmt: skip
        run_traffic(tiny_settings, TrafficParams(gap=1e-4, zone_res=8, events=False))
    live = NowcastLoop(tiny_settings, loop.rules, every_s=300, params=loop.params)
    at = after_the_latest_step(tiny_settings.database_url or "", T0 + timedelta(minutes=10))
    if at != T0 + timedelta(minutes=10):
        rain(tiny_settings.database_url or "", "LIVE", at, MM_H, range(-60, 31))
    out = asyncio.run(live.step_once(as_of=at))
    assert "error" not in out, out.get("error")
    assert list(out).index("alerts") < list(out).index("traffic")  # no alert waits for it
    step_id = out["step"]["step_id"]
    states = dict(q(tiny_settings,
        "SELECT state_now, count(*) FROM twin.nowcast_link WHERE step_id = %s"
        " AND state_now <> 'passable' GROUP BY 1", step_id))  # fmt: skip
    assert states.get("closed", 0) > 0, states
    run = out["traffic"]
    assert run["closures"][f"nowcast:{step_id}:closed"] == states.get("closed", 0)
    assert run["closures"][f"nowcast:{step_id}:slowed"] == states.get("slowed", 0)
    assert run["closed_links"] >= states["closed"] and run["converged"]
    assert run["baseline"]["run_id"] != run["run_id"] and live.stats.reassigned == 1
    ((params,),) = q(tiny_settings, "SELECT params FROM twin.sim_run WHERE id = %s",
                     run["run_id"])  # fmt: skip
    assert params["nowcast_steps"] == [step_id] and params["trigger"] == "nowcast"
    ((base,),) = q(tiny_settings, "SELECT params FROM twin.sim_run WHERE id = %s",
                   run["baseline"]["run_id"])  # fmt: skip
    assert base["nowcast_steps"] == [] and base["baseline_for"] == run["run_id"]
    # No flow on a closed road in the stored results (direct SQL).
    ((carried,),) = q(tiny_settings,
        "SELECT coalesce(max(r.flow_vph), 0) FROM twin.traffic_link_result r"
        " JOIN twin.nowcast_link n ON n.link_id = r.link_id AND n.step_id = %s"
        " WHERE r.run_id = %s AND n.state_now = 'closed'", step_id, run["run_id"])  # fmt: skip
    assert carried == 0
    # The risk map was scored in full on the new run.
    after = out["risk_after_traffic"]
    assert after["full"] and after["traffic_run"] == run["run_id"]
    # The same roads again, seen by a loop that never re-assigned (a restart, another
    # worker): the database says they are done.
    fresh = NowcastLoop(tiny_settings, loop.rules, every_s=300, params=loop.params)
    assert "skipped" in fresh.reassign(step_id) and fresh.stats.reassigned == 0
    # The water goes down (a step with no road under water): the peak without closures.
    with psycopg.connect(tiny_settings.database_url or "") as conn:
        (dry,) = conn.execute(
            "INSERT INTO twin.nowcast_step (nowcast_id, as_of, window_s, horizon_s, gauges,"
            " rain_mean_mm_h, rain_max_mm_h, forecast_rain_mean_mm_h, max_depth_now_m,"
            " max_depth_horizon_m) SELECT nowcast_id, as_of + interval '1 day', window_s,"
            " horizon_s, gauges, 0, 0, 0, 0, 0 FROM twin.nowcast_step WHERE id = %s"
            " RETURNING id",
            (step_id,),
        ).fetchone()  # type: ignore[misc]
    clear = fresh.reassign(dry)
    assert clear["closed_links"] == 0 and clear["slowed_links"] == 0 and "baseline" not in clear
    assert "skipped" in fresh.reassign(dry)

    # A failing run is reported and counted, never raised, and leaves nothing marked done.
    def boom(*a: Any, **kw: Any) -> dict[str, Any]:
        raise RuntimeError("no memory left")

    monkeypatch.setattr("twin.runs.nowloop.run_traffic", boom)
    failures = fresh.stats.failures
    assert fresh.reassign(step_id) == {"error": "no memory left"}
    assert fresh.stats.failures == failures + 1 and "no memory left" in fresh.stats.last_error


def test_a_failed_step_is_reported_not_raised(loop: NowcastLoop, first: dict[str, Any]) -> None:
    failures = loop.stats.failures
    out = asyncio.run(loop.step_once(as_of=T0))  # not after the latest step
    assert "not after the last step" in out["error"]
    assert loop.stats.failures == failures + 1


def test_the_timer_keeps_going_after_a_failure(
    tiny_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = NowcastLoop(tiny_settings, [], every_s=0.02)
    calls: list[bool] = []

    async def boom(**kw: Any) -> dict[str, Any]:
        calls.append(kw.get("timed", False))
        raise RuntimeError("surprise")

    monkeypatch.setattr(loop, "step_once", boom)

    async def main() -> None:
        task = asyncio.create_task(loop.run())
        for _ in range(200):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.02)
        task.cancel()

    asyncio.run(main())
    assert len(calls) >= 3 and all(calls)
    assert loop.stats.failures >= 3


def test_off_when_the_period_is_zero(tiny_settings: Settings) -> None:
    loop = NowcastLoop(tiny_settings, [], every_s=0)
    asyncio.run(asyncio.wait_for(loop.run(), 1))  # returns at once


def test_the_api_runs_the_loop(tiny_client: Any) -> None:
    loop = tiny_client.app.state.nowcast_loop
    assert isinstance(loop, NowcastLoop) and loop.every_s == 300
