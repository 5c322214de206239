"""The after-action review (``twin review``, :mod:`twin.reporting.review`) of a storm written
row by row at chosen times (tests/reporting/review_world.py): every figure against the hand
computation over those rows, the files, and the errors naming the parameter."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from tests.api.scope_world import make_world
from tests.reporting.review_world import Storm, at, make_storm
from twin.cli import app
from twin.errors import InvalidParameterError
from twin.reporting.review import build_review, quantile, sensor_rules
from twin.settings import Settings

runner = CliRunner()
DAY = 1


@pytest.fixture(scope="module")
def storm(tiny_settings: Settings) -> Iterator[tuple[Storm, dict[str, Any]]]:
    world = make_world(tiny_settings, "review-rep")
    yield make_storm(tiny_settings, DAY, world["A"], world["B"]), world


def review(settings: Settings, **kw: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async with await psycopg.AsyncConnection.connect(settings.database_url or "") as c:
            return await build_review(c, rules=sensor_rules(settings), **kw)

    return asyncio.run(go())


def by_code(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["code"]: r for r in rows}


def test_quantile_interpolates_like_percentile_cont() -> None:
    assert quantile([], 0.5) is None
    assert quantile([5.0], 0.9) == 5.0
    assert quantile([0.0, 120.0, 420.0], 0.9) == pytest.approx(360.0)  # 120 + 0.8 * 300
    assert quantile([4.0, 1.0, 3.0, 2.0], 0.5) == pytest.approx(2.5)


def test_sensors(storm: tuple[Storm, Any], tiny_settings: Settings) -> None:
    s, world = storm
    r = review(tiny_settings, start=s.start, end=s.end, area=world["A"].code)
    rain, level = by_code(r["sensors"]["rain"]), by_code(r["sensors"]["water_level"])
    g = rain[s.codes["rain"]]
    # 12 mm/h for 5 min + 60 for 5 + 30 for 15 (capped) + 6 for 15 (capped) = 15 mm;
    # the 99 at 12:00 is outside the period.
    assert (g["readings"], g["max"], g["rain_mm"]) == (4, 60.0, pytest.approx(15.0))
    assert g["max_at"] == at(DAY, 10, 5).isoformat()
    d = rain[s.codes["depth"]]
    assert (d["readings"], d["max"], d["rain_mm"]) == (3, 3.0, pytest.approx(6.0))
    w = level[s.codes["level"]]
    assert (w["readings"], w["max"], w["max_at"]) == (6, 0.7, at(DAY, 10, 10).isoformat())
    assert "rain_mm" not in w
    assert [(b["t"], b["value"]) for b in w["buckets"]] == [
        (at(DAY, hh, mm).isoformat(), v)
        for (hh, mm), v in [((9, 0), 0.55), ((9, 30), 0.2), ((10, 0), 0.3), ((10, 5), 0.6),
                            ((10, 10), 0.7), ((10, 20), 0.4)]
    ]  # fmt: skip
    assert s.codes["level_b"] not in level  # district B's sensor
    city = review(tiny_settings, start=s.start, end=s.end)
    assert by_code(city["sensors"]["water_level"])[s.codes["level_b"]]["max"] == 0.9
    assert city["area"]["whole_city"] and not r["area"]["whole_city"]


def test_nowcast_against_the_sensors(storm: tuple[Storm, Any], tiny_settings: Settings) -> None:
    s, world = storm
    n = review(tiny_settings, start=s.start, end=s.end, area=world["A"].code)["nowcast"]
    assert (n["steps"], n["skill_rows"], n["paired"]) == (4, 3, 3)
    by_sensor = {(x["sensor"], x["t"]): x for x in n["pairs"]}
    first = by_sensor[s.codes["level"], at(DAY, 11, 0).isoformat()]
    second = by_sensor[s.codes["level"], at(DAY, 11, 5).isoformat()]
    datum = by_sensor[s.codes["datum"], at(DAY, 11, 0).isoformat()]
    # A level of 10.5 m where the ground is 10.3 - 0.3 = 10.0 m: 0.5 m deep, 0.35 predicted.
    assert datum["observed_depth_m"] == pytest.approx(0.5)
    assert datum["error_m"] == pytest.approx(0.35 - 0.5)
    # 11:00 pairs with 10:00 (0.35 m in the cell); 11:05 with 10:04 (no row there: dry).
    assert first["predicted_at"] == at(DAY, 10, 0).isoformat()
    assert first["error_m"] == pytest.approx(0.35 - 0.40)
    assert second["predicted_at"] == at(DAY, 10, 4).isoformat()
    assert (second["predicted_depth_m"], second["error_m"]) == (0.0, pytest.approx(-0.42))
    assert n["bias_m"] == pytest.approx((-0.05 - 0.42 - 0.15) / 3)
    assert n["rmse_m"] == pytest.approx(math.sqrt((0.05**2 + 0.42**2 + 0.15**2) / 3))
    empty = review(tiny_settings, start=at(DAY, 13, 0), end=at(DAY, 14, 0))["nowcast"]
    assert (empty["steps"], empty["pairs"], empty["bias_m"]) == (0, [], None)


def test_alerts(storm: tuple[Storm, Any], tiny_settings: Settings) -> None:
    s, world = storm
    a = review(tiny_settings, start=s.start, end=s.end, area=world["A"].code)["alerts"]
    got = {x["id"]: x for x in a["alerts"]}
    assert set(got) == {s.alerts["level"], s.alerts["cell"], s.alerts["rain"]}
    lv = got[s.alerts["level"]]
    # Over 0.5 at 09:00, back under at 09:30: the crossing is 10:05, not 09:00.
    assert lv["crossed_at"] == at(DAY, 10, 5).isoformat() and lv["crossing_derived"]
    assert (lv["to_raise_s"], lv["to_ack_s"], lv["to_resolve_s"]) == (420.0, 480.0, 2280.0)
    cell = got[s.alerts["cell"]]
    assert (cell["crossing_derived"], cell["to_raise_s"], cell["to_ack_s"]) == (False, 0.0, 900.0)
    rain = got[s.alerts["rain"]]
    # 60 mm/h at 10:05 after 12 at 10:00; acknowledged after the period: not yet.
    assert (rain["to_raise_s"], rain["to_ack_s"], rain["acknowledged_at"]) == (120.0, None, None)
    assert a["derived"] == 2
    assert a["to_raise_s"] == {"n": 3, "median_s": 120.0, "p90_s": pytest.approx(360.0)}
    assert a["to_ack_s"] == {"n": 2, "median_s": 690.0, "p90_s": pytest.approx(858.0)}
    assert a["to_resolve_s"] == {"n": 1, "median_s": 2280.0, "p90_s": 2280.0}
    city = review(tiny_settings, start=s.start, end=s.end)["alerts"]
    assert s.alerts["b"] in {x["id"] for x in city["alerts"]}
    assert s.alerts["before"] not in {x["id"] for x in city["alerts"]}


def test_tasks(storm: tuple[Storm, Any], tiny_settings: Settings) -> None:
    s, world = storm
    t = review(tiny_settings, start=s.start, end=s.end, area=world["A"].code)["tasks"]
    got = {x["id"]: x for x in t["tasks"]}
    assert set(got) == {s.tasks[k] for k in ("t1", "t2", "t3", "t4", "t5")}
    t1 = got[s.tasks["t1"]]
    assert (t1["to_accept_s"], t1["accept_to_done_s"], t1["to_done_s"]) == (600.0, 1800.0, 2400.0)
    # t2 done after its due time, t3 still open past it; t5 closed in time, t4 has none.
    assert set(t["overdue"]) == {s.tasks["t2"], s.tasks["t3"]}
    assert t["to_accept_s"] == {"n": 2, "median_s": 750.0, "p90_s": pytest.approx(870.0)}
    assert t["accept_to_done_s"] == {"n": 2, "median_s": 1350.0, "p90_s": pytest.approx(1710.0)}
    assert t["to_done_s"] == {"n": 2, "median_s": 2100.0, "p90_s": pytest.approx(2340.0)}
    # Before t1 was done (10:50), it was not overdue yet nor done.
    early = review(tiny_settings, start=s.start, end=at(DAY, 10, 50), area=world["A"].code)
    e1 = {x["id"]: x for x in early["tasks"]["tasks"]}[s.tasks["t1"]]
    assert (e1["done_at"], e1["overdue"]) == (None, False)


def test_roads_and_delay(storm: tuple[Storm, Any], tiny_settings: Settings) -> None:
    s, world = storm
    r = review(tiny_settings, start=s.start, end=s.end, area=world["A"].code)["roads"]
    (run,) = r["flood_runs"]
    assert run["run_id"] == s.flood_run
    assert [c["link_id"] for c in run["closed"]] == sorted(s.links_a[:2])
    assert r["closed_links"] == 2
    city = review(tiny_settings, start=s.start, end=s.end)["roads"]
    assert city["closed_links"] == 3
    (nl,) = r["nowcast"]
    assert (nl["link_id"], nl["steps"], nl["max_depth_m"]) == (s.links_a[0], 2, 0.45)
    assert (nl["first_closed"], nl["last_closed"]) == (
        at(DAY, 11, 0).isoformat(), at(DAY, 11, 5).isoformat())  # fmt: skip
    (tr,) = r["traffic"]
    assert (tr["id"], tr["baseline_run_id"], tr["extra_veh_h"]) == (
        s.traffic_run, s.baseline_run, 200.0)  # fmt: skip
    assert tr["flood_runs"] == [s.flood_run]


@pytest.mark.parametrize(
    ("start", "end", "area", "parameter"),
    [
        ("yesterday", "2021-05-02", None, "from"),
        ("2021-05-01", "", None, "to"),
        ("2021-05-02", "2021-05-01", None, "to"),
        ("2021-05-01", "2021-05-01", None, "to"),
        ("2021-05-01", "2021-06-02", None, "to"),
        ("2021-05-01", "2021-05-02", "NO.SUCH.AREA", "area"),
    ],
)
def test_bad_input_names_the_parameter(
    tiny_settings: Settings, start: str, end: str, area: str | None, parameter: str
) -> None:
    with pytest.raises(InvalidParameterError) as err:
        review(tiny_settings, start=start, end=end, area=area)
    assert err.value.parameter == parameter


def test_cli_writes_markdown_html_and_json(
    storm: tuple[Storm, Any], tiny_settings: Settings, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    s, world = storm
    monkeypatch.setenv("TWIN_DATABASE_URL", tiny_settings.database_url or "")
    monkeypatch.setenv("TWIN_DATA_DIR", str(tiny_settings.data_dir))
    out = tmp_path / "rv"
    r = runner.invoke(app, ["review", "--from", s.start.isoformat(), "--to", s.end.isoformat(),
                            "--area", world["A"].code, "--out", str(out), "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert data["out_dir"] == str(out)
    assert {"review.md", "review.html", "review.json", "rain.svg", "water_levels.svg"} <= {
        p.name for p in out.iterdir()
    }
    md = (out / "review.md").read_text()
    assert "| " + s.codes["rain"] + " | mm/h | 4 | 60.0 |" in md
    assert "2 of 5 tasks overdue." in md
    assert "Bias (predicted - observed depth): -0.207 m" in md
    assert "![Rain, largest reading per 5 minutes](rain.svg)" in md
    html = (out / "review.html").read_text()
    assert html.count("<svg") >= 3 and "<script" not in html
    assert (
        json.loads((out / "review.json").read_text())["tasks"]["overdue"]
        == data["tasks"]["overdue"]
    )
    quiet = runner.invoke(app, ["review", "--from", "2021-05-01T13:00", "--to",
                                "2021-05-01T14:00", "--out", str(tmp_path / "q")])  # fmt: skip
    assert quiet.exit_code == 0, quiet.output
    assert "No nowcast in the period." in (tmp_path / "q" / "review.md").read_text()
    bad = runner.invoke(app, ["review", "--from", "2021-05-01", "--to", "2021-07-01"])
    assert bad.exit_code == 2 and "--to" in bad.output
    bad = runner.invoke(app, ["review", "--from", "x", "--to", "2021-05-02"])
    assert bad.exit_code == 2 and "--from" in bad.output
