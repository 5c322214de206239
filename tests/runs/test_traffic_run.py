"""The morning peak on the tiny demo city: demand, stored results, closures, baseline."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from twin import grid as h3grid
from twin.city.demo import build_demo
from twin.cli import app
from twin.runs.traffic import TrafficParams, TrafficRunError, run_traffic
from twin.settings import Settings

runner = CliRunner()


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_traffic"),
        data_dir=tmp_path_factory.mktemp("traffic"),
    )  # fmt: skip
    build_demo(s, size="tiny", seed=3)
    return s


def q(settings: Settings, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def peak(settings: Settings) -> dict:
    seen: list[float] = []
    summary = run_traffic(settings, TrafficParams(gap=1e-6), progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == pytest.approx(0.95)
    return summary


def test_demand_totals_match_residents_and_jobs(settings: Settings, peak: dict) -> None:
    ((commuters,),) = q(
        settings,
        "SELECT count(*) FROM twin.person WHERE home_cell IS NOT NULL AND work_cell IS NOT NULL",
    )
    assert commuters > 1000
    assert peak["commuters"] == commuters
    assert peak["trips"] == pytest.approx(0.3 * commuters, rel=1e-9)
    assert peak["trips"] == pytest.approx(
        peak["intrazonal_trips"] + peak["assigned_trips"] + peak["unreachable_trips"], rel=1e-9
    )
    # Zones are the res-8 cells holding commuters' homes or workplaces (SQL, h3 independently).
    both = "FROM twin.person WHERE home_cell IS NOT NULL AND work_cell IS NOT NULL"
    homes = q(settings, f"SELECT DISTINCT home_cell {both}")
    works = q(settings, f"SELECT DISTINCT work_cell {both}")
    cells = {h3grid.to_hex(h3grid.parent(np.array([c]), 8))[0] for (c,) in homes + works}
    assert peak["zones"] == len(cells)
    # The gravity model reproduced its target mean trip time and the run converged.
    assert peak["beta_per_min"] > 0 and peak["demand_note"] == ""
    assert peak["converged"] and peak["relative_gap"] <= 1e-6


def test_link_results_cover_every_road_and_are_consistent(settings: Settings, peak: dict) -> None:
    rows = q(
        settings,
        "SELECT t.flow_vph, t.time_min, t.vc_ratio, t.tti, l.length_m, l.free_speed_kmh,"
        " l.capacity_vph, t.closed FROM twin.traffic_link_result t"
        " JOIN twin.road_link l ON l.id = t.link_id WHERE t.run_id = %s",
        peak["run_id"],
    )
    ((n_links,),) = q(settings, "SELECT count(*) FROM twin.road_link")
    assert len(rows) == n_links
    a = np.array([r[:7] for r in rows], dtype=float)
    flow, t, vc, tti, length, speed, cap = a.T
    assert (flow >= 0).all() and flow.max() > 0
    free = length / (speed / 3.6) / 60
    # BPR with alpha 0.15, beta 4, recomputed here from the stored flow.
    np.testing.assert_allclose(t, free * (1 + 0.15 * (flow / cap) ** 4), rtol=1e-9)
    np.testing.assert_allclose(vc, flow / cap, rtol=1e-12)
    np.testing.assert_allclose(tti[free > 0], (t / free)[free > 0], rtol=1e-9)
    assert not any(r[7] for r in rows)
    # City delay index: congested over free-flow vehicle time.
    assert peak["delay_index"] == pytest.approx(np.dot(flow, t) / np.dot(flow, free), rel=1e-9)
    assert peak["road_veh_h"] == pytest.approx(np.dot(flow, t) / 60, rel=1e-9)
    assert peak["tstt_veh_h"] > peak["road_veh_h"]  # plus access time on centroid connectors
    assert peak["delay_band"] == "free-flowing" if peak["delay_index"] < 1.5 else True


def test_cell_vkt_adds_up_per_resolution(settings: Settings, peak: dict) -> None:
    ((vkt,),) = q(
        settings,
        "SELECT sum(t.flow_vph * l.length_m) / 1000 FROM twin.traffic_link_result t"
        " JOIN twin.road_link l ON l.id = t.link_id WHERE t.run_id = %s AND l.cell IS NOT NULL",
        peak["run_id"],
    )
    for res in settings.h3_resolutions:
        ((total, lo, hi),) = q(
            settings,
            "SELECT sum(vkt), min(tti), max(tti) FROM twin.traffic_cell_result"
            " WHERE run_id = %s AND res = %s",
            peak["run_id"], res,
        )  # fmt: skip
        assert total == pytest.approx(vkt, rel=1e-9)
        assert lo >= 1.0 - 1e-12 and hi >= lo


def _fake_flood(settings: Settings, closed: list[int], slowed: list[int]) -> int:
    with psycopg.connect(settings.database_url or "") as conn:
        (run_id,) = conn.execute(
            "INSERT INTO twin.sim_run (kind, status) VALUES ('flood', 'succeeded') RETURNING id"
        ).fetchone()  # type: ignore[misc]
        for ids, state, depth in ((closed, "closed", 0.5), (slowed, "slowed", 0.2)):
            for link in ids:
                conn.execute(
                    "INSERT INTO twin.flood_link_result VALUES (%s, %s, %s, %s)",
                    (run_id, link, depth, state),
                )
    return int(run_id)


def test_flood_closures_move_flow_and_are_compared_with_the_baseline(
    settings: Settings, peak: dict
) -> None:
    busiest = q(
        settings,
        "SELECT link_id FROM twin.traffic_link_result WHERE run_id = %s"
        " ORDER BY flow_vph DESC LIMIT 3",
        peak["run_id"],
    )
    closed, slowed = [busiest[0][0]], [busiest[1][0], busiest[2][0]]
    flood = _fake_flood(settings, closed, slowed)
    out = run_traffic(settings, TrafficParams(gap=1e-6, flood_runs=(flood,)))
    assert out["closed_links"] == 1 and out["slowed_links"] == 2
    assert out["closures"][f"flood:{flood}:closed"] == 1
    rows = dict(
        (r[0], r[1:])
        for r in q(
            settings,
            "SELECT link_id, flow_vph, closed, vc_ratio FROM twin.traffic_link_result"
            " WHERE run_id = %s",
            out["run_id"],
        )
    )
    assert rows[closed[0]][0] == 0 and rows[closed[0]][1] is True
    # The baseline is stored as its own run and linked; the closure costs time.
    ((base_id,),) = q(
        settings, "SELECT baseline_run_id FROM twin.sim_run WHERE id = %s", out["run_id"]
    )
    assert base_id == out["baseline"]["run_id"]
    ((base_flow,),) = q(
        settings,
        "SELECT flow_vph FROM twin.traffic_link_result WHERE run_id = %s AND link_id = %s",
        base_id, closed[0],
    )  # fmt: skip
    assert base_flow > 0
    assert out["baseline"]["delay_index"] == pytest.approx(peak["delay_index"], rel=1e-6)
    assert out["change"]["tstt_veh_h"] > 0 and out["tstt_veh_h"] > peak["tstt_veh_h"]


def test_a_road_closure_event_closes_the_road_there(settings: Settings, peak: dict) -> None:
    ((link, lon, lat),) = q(
        settings,
        "SELECT l.id, ST_X(ST_LineInterpolatePoint(l.geom, 0.5)),"
        " ST_Y(ST_LineInterpolatePoint(l.geom, 0.5)) FROM twin.traffic_link_result t"
        " JOIN twin.road_link l ON l.id = t.link_id WHERE t.run_id = %s"
        " ORDER BY t.flow_vph DESC LIMIT 1",
        peak["run_id"],
    )
    with psycopg.connect(settings.database_url or "") as conn:
        conn.execute(
            "INSERT INTO twin.event (type, source, occurred_at, geom) VALUES"
            " ('road_closure', 'patrol', now(), ST_SetSRID(ST_MakePoint(%s, %s), 4326))",
            (lon, lat),
        )
    try:
        out = run_traffic(settings, TrafficParams(gap=1e-5))
        assert out["closures"]["road_closure_events"] >= 1
        ((flow, closed),) = q(
            settings,
            "SELECT flow_vph, closed FROM twin.traffic_link_result"
            " WHERE run_id = %s AND link_id = %s",
            out["run_id"], link,
        )  # fmt: skip
        assert closed is True and flow == 0
    finally:
        q(settings, "DELETE FROM twin.event WHERE type = 'road_closure' RETURNING id")


def test_closing_every_road_reports_the_cut_off_trips(settings: Settings, peak: dict) -> None:
    ids = tuple(r[0] for r in q(settings, "SELECT id FROM twin.road_link"))
    out = run_traffic(settings, TrafficParams(gap=1e-4, close_links=ids, events=False))
    assert out["closed_links"] == len(ids)
    assert out["assigned_trips"] == 0
    assert out["unreachable_trips"] == pytest.approx(out["trips"] - out["intrazonal_trips"])
    assert out["unreachable_pairs"] and out["unreachable_pairs"][0]["trips"] > 0
    assert out["delay_index"] == 1.0


def test_no_commuters_is_refused_before_anything_is_written(settings: Settings, peak: dict) -> None:
    saved = q(settings, "SELECT id, work_cell FROM twin.person WHERE work_cell IS NOT NULL")
    ((before,),) = q(settings, "SELECT count(*) FROM twin.sim_run")
    q(settings, "UPDATE twin.person SET work_cell = NULL RETURNING id")
    try:
        with pytest.raises(TrafficRunError, match=r"no commuters.*twin ingest population"):
            run_traffic(settings, TrafficParams(events=False))
        ((after,),) = q(settings, "SELECT count(*) FROM twin.sim_run")
    finally:
        with psycopg.connect(settings.database_url or "") as conn:
            conn.cursor().executemany(
                "UPDATE twin.person SET work_cell = %s WHERE id = %s", [(w, i) for i, w in saved]
            )
    assert after == before


def test_bad_references_fail_before_anything_is_written(settings: Settings, peak: dict) -> None:
    ((before,),) = q(settings, "SELECT count(*) FROM twin.sim_run")
    with pytest.raises(TrafficRunError, match="flood:999999 is not a flood run"):
        run_traffic(settings, TrafficParams(flood_runs=(999_999,)))
    with pytest.raises(TrafficRunError, match="no road link 999999"):
        run_traffic(settings, TrafficParams(close_links=(999_999,)))
    with pytest.raises(TrafficRunError, match="period"):
        TrafficParams(period="midnight")
    ((after,),) = q(settings, "SELECT count(*) FROM twin.sim_run")
    assert after == before


def test_cli_simulate_traffic(
    settings: Settings, peak: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("TWIN_DATA_DIR", str(settings.data_dir))
    result = runner.invoke(app, ["simulate", "traffic", "--period", "pm_peak", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["period"] == "pm_peak" and out["trips"] == pytest.approx(peak["trips"])
    bad = runner.invoke(app, ["simulate", "traffic", "--closures", "storm:1"])
    assert bad.exit_code == 2 and "flood:RUN_ID" in bad.output


def test_two_traffic_threads_reach_the_same_peak(settings: Settings, peak: dict) -> None:
    # TWIN_TRAFFIC_THREADS shares the solver's read-only steps among threads: the same
    # equilibrium to the gap, stored like any run; more threads than numba offers is refused
    # before a run is recorded.
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    ((before,),) = q(settings, "SELECT count(*) FROM twin.sim_run")
    with pytest.raises(TrafficRunError, match="TWIN_TRAFFIC_THREADS"):
        run_traffic(settings.model_copy(update={"traffic_threads": most + 1}), TrafficParams())
    ((after,),) = q(settings, "SELECT count(*) FROM twin.sim_run")
    assert after == before
    if most < 2:
        import os

        assert not os.environ.get("CI"), "CI needs NUMBA_NUM_THREADS >= 2"
        pytest.skip("one core: numba offers no second thread")
    two = run_traffic(
        settings.model_copy(update={"traffic_threads": 2}), TrafficParams(gap=1e-6, events=False)
    )
    one = run_traffic(settings, TrafficParams(gap=1e-6, events=False))
    assert two["converged"] and two["relative_gap"] <= 1e-6
    assert two["tstt_veh_h"] == pytest.approx(one["tstt_veh_h"], rel=1e-5)
    assert two["assigned_trips"] == pytest.approx(one["assigned_trips"], rel=1e-12)
