"""Replaying recorded readings over MQTT (twin.sense.replay) and the demo's recorded storm: the
file format and its errors, the storm's rain depth against the storm formula, and the live loop
end to end on the tiny demo twin: replayed readings -> private Mosquitto -> bridge -> PostGIS ->
rule watch -> alerts and tasks. What should be raised is computed here from the CSV itself."""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from twin.alerts.rules import load_rules
from twin.alerts.watch import RuleWatch
from twin.errors import InvalidParameterError
from twin.sense.bridge import Bridge, running
from twin.sense.broker import private_broker
from twin.sense.live import LiveHub
from twin.sense.replay import (
    DEMO_SENSORS_SQL,
    demo_sensors,
    read_replay,
    replay,
    storm_file,
)
from twin.settings import Settings
from twin.sim.rain import StormFormula


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private Mosquitto on a free port, anonymous allowed (the demo's own broker helper)."""
    with private_broker(tmp_path_factory.mktemp("mosquitto")) as url:
        yield url


def test_a_replay_file_reads_timestamps_or_seconds_and_sorts(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(
        "datastream,time,value\n"
        "2,2026-07-01T10:01:00Z,3.5\n1,2026-07-01T10:00:00+00:00,1\n1,2026-07-01T12:00:30+02:00,2\n"
    )
    got = [(r.datastream, r.t_s, r.value) for r in read_replay(f)]
    assert got == [(1, 0.0, 1.0), (1, 30.0, 2.0), (2, 60.0, 3.5)]
    f.write_text("datastream,time,value\n5,120,1\n5,60,2\n")
    assert [(r.t_s, r.value) for r in read_replay(f)] == [(0.0, 2.0), (60.0, 1.0)]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("ds,time,value\n1,0,1\n", "missing datastream"),
        ("datastream,time,value\n1,0,1\n1,0,wet\n", "row 3, field value"),
        ("datastream,time,value\nx,0,1\n", "row 2, field datastream"),
        (
            "datastream,time,value\n1,2026-07-01T10:00:00,1\n",
            "row 2, field time: a timestamp needs a zone",
        ),
        ("datastream,time,value\n1,0,nan\n", "row 2, field value"),
        ("datastream,time,value\n1,0,1\n1,2026-07-01T10:00:00Z,1\n", "mixes"),
        ("datastream,time,value\n", "no readings"),
    ],
)
def test_a_bad_replay_file_names_the_row_and_field(tmp_path: Path, text: str, said: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(text)
    with pytest.raises(InvalidParameterError, match=said) as err:
        read_replay(f)
    assert str(f) in str(err.value)


def test_the_storm_file_is_deterministic_and_holds_the_storm_depth(tmp_path: Path) -> None:
    gauges = [(1, 0.0), (2, 1500.0), (3, 3000.0)]
    levels = [(10, 0.8), (11, 0.4)]
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    n = storm_file(a, gauges, levels, seed=7)
    storm_file(b, gauges, levels, seed=7)
    assert a.read_bytes() == b.read_bytes()
    with a.open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n
    # The storm formula's depth for 1 h at 50 years (Keil & Chu: the Chicago storm holds it),
    # each gauge scaled by its +-15 % scatter; readings every 60 s in mm/h -> mm.
    expected = StormFormula().depth_mm(60.0, 50.0)
    for ds, _ in gauges:
        depth = sum(float(r["value"]) for r in rows if int(r["datastream"]) == ds) / 60.0
        assert 0.84 * expected < depth < 1.16 * expected
    # Water levels: near zero as the rain starts, highest for the most sensitive sensor.
    peak = {
        ds: max(float(r["value"]) for r in rows if int(r["datastream"]) == ds) for ds, _ in levels
    }
    assert peak[10] > peak[11] > 0
    series = [float(r["value"]) for r in rows if int(r["datastream"]) == 10]
    assert series[0] == min(series) < 0.01 * peak[10]


def test_replayed_readings_are_stored_and_raise_alerts_with_tasks(
    broker: str, tiny_settings: Settings, tmp_path: Path
) -> None:
    url = tiny_settings.database_url
    assert url
    with psycopg.connect(url) as c:
        sensor_rows = c.execute(DEMO_SENSORS_SQL).fetchall()
    gauges, levels = demo_sensors(sensor_rows, seed=3)
    assert gauges and levels
    storm = tmp_path / "storm.csv"
    storm_file(storm, gauges, levels, duration_min=10, step_s=120, seed=3)
    readings = read_replay(storm)
    # Only the water levels take part here (fewer readings); the rule: >= a level that the
    # CSV says some sensors reach and others do not.
    levels_only = [r for r in readings if r.datastream in {d for d, _ in levels}]
    peaks: dict[int, float] = {}
    for r in levels_only:
        peaks[r.datastream] = max(peaks.get(r.datastream, 0.0), r.value)
    threshold = sorted(peaks.values())[len(peaks) // 2]
    expected = {d for d, v in peaks.items() if v >= threshold}
    assert expected and len(expected) < len(peaks)
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "replay_level.toml").write_text(
        'id = "replay_level"\ntitle = "Replay test: water level"\nindicator = "water_level_m"\n'
        f'threshold = {threshold}\narea_level = "grid"\nlevel = "red"\ndispatch = "auto"\n'
        '[params]\nmax_age = "10min"\n'
    )
    rules, errors = load_rules(rules_dir)
    assert not errors
    codes = {i: code for i, code, _, _ in sensor_rows}

    async def scenario() -> tuple[int, int]:
        hub = LiveHub()
        bridge = Bridge(broker, url, base="http://test/sta/v1.1", hub=hub, publish_back=False)
        watch = RuleWatch(url, rules, hub=hub, settle_s=0.1)
        async with running(bridge), running(watch):
            await asyncio.sleep(1.0)  # subscribed
            sent = await replay(levels_only, broker, speed=600)
            for _ in range(300):
                if bridge.stats.stored >= sent and watch.stats.evaluations:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the last evaluation
        return sent, bridge.stats.stored

    sent, stored = asyncio.run(scenario())
    assert sent == len(levels_only) and stored == sent
    with psycopg.connect(url) as c:
        alerts = c.execute(
            "SELECT a.subject, a.id FROM twin.alert a WHERE a.rule_id = 'replay_level'"
        ).fetchall()
        tasks = c.execute(
            "SELECT count(*) FROM twin.task WHERE alert_id = ANY(%s)", ([a[1] for a in alerts],)
        ).fetchone()
    assert {s for s, _ in alerts} == {codes[d] for d in expected}
    assert tasks == (len(expected),)
