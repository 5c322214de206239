"""The sense -> warn -> dispatch loop (twin.alerts.watch) on the tiny demo twin: a water-level
reading over a rule's threshold raises an alert for its sensor and, for a rule marked
``dispatch = "auto"``, a task in the sensor's grid patch. The patch is found here by direct
PostGIS (``ST_Intersects`` of the sensor with the grid areas), not by the code under test."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from twin.alerts.rules import RuleError, load_rules, read_rule
from twin.alerts.watch import RuleWatch, sensor_rules
from twin.sense.live import LiveHub
from twin.settings import Settings

# A moment no other test reads at: the indicator only looks at readings of the last 30 min.
AT = datetime(2021, 3, 4, 5, 0, tzinfo=UTC)
RULE = """
id = "{id}"
title = "Watch test: water level"
indicator = "water_level_m"
threshold = 0.5
area_level = "grid"
level = "red"
cooldown = "1h"
dispatch = "{dispatch}"
[params]
max_age = "30min"
"""


def rules_dir(tmp: Path, **rules: str) -> Path:
    for rule_id, dispatch in rules.items():
        (tmp / f"{rule_id}.toml").write_text(RULE.format(id=rule_id, dispatch=dispatch))
    return tmp


def sensors(url: str, n: int) -> list[tuple[int, str, int]]:
    """(id, code, grid patch) of ``n`` water-level sensors, the patch by direct SQL."""
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT s.id, s.code, (SELECT a.id FROM twin.admin_area a WHERE a.level = 'grid'"
            " AND ST_Intersects(a.geom, s.geom) ORDER BY a.id LIMIT 1)"
            " FROM twin.sensor s WHERE s.kind = 'water_level' ORDER BY s.id LIMIT %s",
            (n,),
        ).fetchall()
    assert len(rows) == n and all(r[2] is not None for r in rows)
    return [(int(a), str(b), int(c)) for a, b, c in rows]


def read(url: str, sensor_id: int, value: float, at: datetime) -> None:
    with psycopg.connect(url) as c:
        c.execute(
            "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            (sensor_id, at, value),
        )


def test_only_sensor_rules_are_watched(tmp_path: Path) -> None:
    rules, errors = load_rules(Path(__file__).resolve().parents[2] / "rules")
    assert not errors
    watched = {r.indicator for r in sensor_rules(rules)}
    assert watched == {"rain_mm_h", "water_level_m"}


def test_a_bad_dispatch_value_names_the_field(tmp_path: Path) -> None:
    path = rules_dir(tmp_path, bad_dispatch="sometimes") / "bad_dispatch.toml"
    with pytest.raises(RuleError, match="dispatch"):
        read_rule(path)


def test_a_high_reading_raises_an_alert_and_dispatches_a_task_to_its_patch(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    url = tiny_settings.database_url
    assert url
    (auto_id, auto_code, patch), (manual_id, manual_code, _) = sensors(url, 2)
    rules, _ = load_rules(rules_dir(tmp_path, watch_auto="auto", watch_manual="none"))
    watch = RuleWatch(url, rules, hub=LiveHub())
    read(url, auto_id, 0.8, AT - timedelta(minutes=5))
    read(url, manual_id, 0.2, AT - timedelta(minutes=5))  # below the threshold
    out = asyncio.run(watch.evaluate_once(at=AT))
    assert "error" not in out
    with psycopg.connect(url) as c:
        alerts = c.execute(
            "SELECT id, rule_id, subject, status, area_id FROM twin.alert"
            " WHERE rule_id IN ('watch_auto', 'watch_manual') ORDER BY rule_id"
        ).fetchall()
        # one alert per rule for the high sensor only; the auto one acknowledged by its task
        assert [(r[1], r[2]) for r in alerts] == [("watch_auto", auto_code),
                                                  ("watch_manual", auto_code)]  # fmt: skip
        auto_alert, manual_alert = alerts
        assert auto_alert[4] == patch and auto_alert[3] == "acknowledged"
        assert manual_alert[3] == "active"
        tasks = c.execute(
            "SELECT t.id, t.area_id, t.state, t.alert_id FROM twin.task t"
            " WHERE t.alert_id IN (%s, %s)",
            (auto_alert[0], manual_alert[0]),
        ).fetchall()
        assert [(t[1], t[2], t[3]) for t in tasks] == [(patch, "open", auto_alert[0])]
        moves = c.execute(
            "SELECT from_state, to_state, actor FROM twin.task_transition WHERE task_id = %s",
            (tasks[0][0],),
        ).fetchall()
        assert moves == [(None, "open", "twin (auto dispatch)")]
    assert manual_code != auto_code
    # Evaluated again with the same reading: the alert repeats, no second task.
    asyncio.run(watch.evaluate_once(at=AT + timedelta(minutes=1)))
    with psycopg.connect(url) as c:
        n = c.execute(
            "SELECT count(*) FROM twin.task WHERE alert_id = %s", (auto_alert[0],)
        ).fetchone()
    assert n == (1,)


def test_readings_on_the_feed_trigger_an_evaluation(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    url = tiny_settings.database_url
    assert url
    rules, _ = load_rules(rules_dir(tmp_path, watch_feed="auto"))
    hub = LiveHub()
    watch = RuleWatch(url, rules, hub=hub, settle_s=0.05)

    async def main() -> int:
        task = asyncio.create_task(watch.run())
        while hub.subscribers == 0:
            await asyncio.sleep(0.01)
        hub.publish([{"result": 1.0}])
        for _ in range(200):
            if watch.stats.evaluations:
                break
            await asyncio.sleep(0.05)
        task.cancel()
        return watch.stats.evaluations

    assert asyncio.run(main()) >= 1
