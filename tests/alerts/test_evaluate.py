"""Alert rules: a rule fires once (deduplicated), waits for its sensitivity, escalates up the
admin hierarchy, resolves, and keeps quiet through its cooldown."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from twin.alerts.evaluate import OpenAlert, Reading, decide, evaluate
from twin.alerts.rules import Rule, read_rule
from twin.city.demo import build_demo
from twin.settings import Settings

T0 = datetime(2026, 7, 1, 8, 0, tzinfo=UTC)


def _rule(**kw: object) -> Rule:
    base = {"id": "r", "title": "R", "title_zh": "", "indicator": "rain_mm_h", "threshold": 50.0}
    return Rule(**{**base, **kw})  # type: ignore[arg-type]


def test_decide_fires_once_then_repeats() -> None:
    rule = _rule(sensitivity=1)
    first = decide(rule, [Reading("g1", 60.0), Reading("g2", 10.0)], {}, set())
    assert [(r.subject, s) for r, s in first.create] == [("g1", "active")]
    open_ = {"g1": OpenAlert(1, "active", 1, 0, "yellow", 7)}
    again = decide(rule, [Reading("g1", 70.0)], open_, set())
    assert again.create == [] and [a.alert_id for a in again.repeat] == [1]


def test_decide_sensitivity_escalation_resolution_cooldown() -> None:
    rule = _rule(sensitivity=2, escalate_after=2, level="yellow")
    d = decide(rule, [Reading("g", 60.0)], {}, set())
    assert d.create[0][1] == "pending"
    d = decide(rule, [Reading("g", 60.0)], {"g": OpenAlert(1, "pending", 1, 0, "yellow", 7)}, set())
    assert d.repeat[0].status == "active" and d.repeat[0].activated
    # Two hits after activation: one level up the hierarchy, one colour up.
    d = decide(rule, [Reading("g", 60.0)], {"g": OpenAlert(1, "active", 3, 0, "yellow", 7)}, set())
    assert d.repeat[0].escalated and d.repeat[0].level == "orange" and d.repeat[0].escalation == 1
    d = decide(rule, [Reading("g", 40.0)], {"g": OpenAlert(1, "active", 4, 1, "orange", 7)}, set())
    assert d.resolve == [1]
    d = decide(rule, [Reading("g", 60.0)], {}, {"g"})
    assert d.create == [] and d.cooled == ["g"]


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(_env_file=None, database_url=make_database("twin_alerts"),
                 data_dir=tmp_path_factory.mktemp("alerts"))  # fmt: skip
    build_demo(s, size="tiny", seed=6)
    return s


RAIN = """
id = "rain"
title = "Rain above 50 mm/h"
indicator = "rain_mm_h"
threshold = 50
area_level = "community"
level = "yellow"
sensitivity = 2
cooldown = "2h"
escalate_after = 2
[params]
max_age = "30min"
"""


def _observe(conn: psycopg.Connection, sensor: int, at: datetime, value: float) -> None:
    conn.execute(
        "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)",
        (sensor, at, value),
    )


def test_rain_gauge_rule_lifecycle(settings: Settings, tmp_path: Path) -> None:
    url = settings.database_url or ""
    (tmp_path / "rain.toml").write_text(RAIN)
    rule = read_rule(tmp_path / "rain.toml")
    with psycopg.connect(url) as conn:
        sensor, code = conn.execute(
            "SELECT id, code FROM twin.sensor WHERE kind = 'rain_gauge' ORDER BY id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
        # Independently: the community whose polygon holds the gauge, and its parent street.
        community, street, district = conn.execute(
            "SELECT c.id, c.parent_id, s.parent_id FROM twin.admin_area c"
            " JOIN twin.admin_area s ON s.id = c.parent_id, twin.sensor g"
            " WHERE c.level = 'community' AND g.id = %s AND ST_Contains(c.geom, g.geom)",
            (sensor,),
        ).fetchone()  # type: ignore[misc]
        for k in range(5):
            _observe(conn, sensor, T0 + timedelta(minutes=10 * k), 80.0)

    def state() -> list[tuple]:  # type: ignore[type-arg]
        with psycopg.connect(url) as conn:
            return conn.execute(
                "SELECT status, hits, escalation, level, area_id FROM twin.alert"
                " WHERE rule_id = 'rain' ORDER BY id"
            ).fetchall()

    evaluate(url, [rule], at=T0)
    assert state() == [("pending", 1, 0, "yellow", community)]  # sensitivity 2: not yet
    evaluate(url, [rule], at=T0 + timedelta(minutes=10))
    assert state() == [("active", 2, 0, "yellow", community)]
    evaluate(url, [rule], at=T0 + timedelta(minutes=20))
    assert state() == [("active", 3, 0, "yellow", community)]  # deduplicated: still one alert
    evaluate(url, [rule], at=T0 + timedelta(minutes=30))
    assert state() == [("active", 4, 1, "orange", street)]  # escalated to the parent area
    evaluate(url, [rule], at=T0 + timedelta(minutes=40))
    evaluate(url, [rule], at=T0 + timedelta(minutes=50))
    assert state() == [("active", 6, 2, "red", district)]
    # The rain stops: no reading younger than 30 min -> the alert resolves.
    counts = evaluate(url, [rule], at=T0 + timedelta(minutes=120))
    assert counts["rain"]["resolved"] == 1
    assert [s[0] for s in state()] == ["resolved"]
    # Rain again within the 2 h cooldown: nothing; after it: a new alert.
    with psycopg.connect(url) as conn:
        _observe(conn, sensor, T0 + timedelta(minutes=150), 90.0)
        _observe(conn, sensor, T0 + timedelta(minutes=300), 90.0)
    counts = evaluate(url, [rule], at=T0 + timedelta(minutes=155))
    assert counts["rain"]["cooled"] == 1 and len(state()) == 1
    evaluate(url, [rule], at=T0 + timedelta(minutes=305))
    assert [s[0] for s in state()] == ["resolved", "pending"]
    with psycopg.connect(url) as conn:
        subject, message = conn.execute(
            "SELECT subject, message FROM twin.alert WHERE rule_id = 'rain' ORDER BY id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    assert subject == code and "80 mm/h" in message


def test_city_delay_index_rule(settings: Settings, tmp_path: Path) -> None:
    url = settings.database_url or ""
    (tmp_path / "jam.toml").write_text(
        'id = "jam"\ntitle = "Jam"\nindicator = "delay_index"\nop = ">"\nthreshold = 2.0\n'
        'area_level = "city"\nlevel = "orange"\n'
    )
    rule = read_rule(tmp_path / "jam.toml")
    with psycopg.connect(url) as conn:
        run = conn.execute(
            "INSERT INTO twin.sim_run (kind, params, status, summary, finished_at)"
            " VALUES ('traffic', '{}', 'succeeded', '{\"delay_index\": 2.4}', now()) RETURNING id"
        ).fetchone()[0]  # type: ignore[index]
        city = conn.execute("SELECT id FROM twin.admin_area WHERE level = 'city'").fetchone()[0]  # type: ignore[index]
    evaluate(url, [rule], at=T0)
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT subject, area_id, value, sim_run_id, status FROM twin.alert WHERE rule_id = 'jam'"
        ).fetchall()
    assert rows == [("city", city, 2.4, run, "active")]
