"""``twin report``: report.md and a self-contained report.html with inline SVG charts, whose
numbers equal direct SQL counts, with the sibling comparison and people counts suppressed."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from twin.city.demo import build_demo
from twin.cli import app
from twin.reporting import charts
from twin.runs.flood import FloodParams, run_flood
from twin.runs.traffic import TrafficParams, run_traffic
from twin.settings import Settings

runner = CliRunner()
K = 10
SUBTREE = """
WITH RECURSIVE sub(id) AS (
    SELECT %s::bigint
    UNION ALL
    SELECT a.id FROM twin.admin_area a JOIN sub ON a.parent_id = sub.id
)
SELECT id FROM sub
"""


@dataclass
class Twin:
    settings: Settings
    as_of: datetime
    district: int
    code: str
    flood: int
    traffic: int


def q(s: Settings, sql: str, *args: Any) -> list[tuple]:
    with psycopg.connect(s.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def twin(make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> Twin:
    s = Settings(
        _env_file=None, database_url=make_database("twin_report"),
        data_dir=tmp_path_factory.mktemp("report"), suppression_k=K,
    )  # fmt: skip
    build_demo(s, size="tiny", seed=9)
    flood = run_flood(s, FloodParams(return_period_years=50, duration_s=3600, after_s=900))
    traffic = run_traffic(s, TrafficParams(flood_runs=(flood["run_id"],)))
    as_of = datetime.now(UTC)
    district, code = q(s, "SELECT id, code FROM twin.admin_area WHERE level = 'district'"
                          " ORDER BY code LIMIT 1")[0]  # fmt: skip
    patches = [r[0] for r in q(s, "SELECT id FROM twin.admin_area WHERE level = 'grid'"
                                  " ORDER BY code")]  # fmt: skip
    h, d = timedelta(hours=1), timedelta(days=1)
    with psycopg.connect(s.database_url or "") as conn:
        # Tasks over several patches (both districts): created, accepted, done, closed.
        for i, patch in enumerate(patches[::9]):
            created = as_of - (2 + i) * d
            if i % 3 == 2:
                created -= 30 * d  # the period before
            (tid,) = conn.execute(
                "INSERT INTO twin.task (title, state, area_id, created_at, due_at)"
                " VALUES ('t', 'open', %s, %s, %s) RETURNING id",
                (patch, created, created + d),
            ).fetchone()
            moves = [("open", 0), ("accepted", 1 + i)] + ([("in_progress", 2 + i),
                     ("done", 5 + 2 * i)] if i % 2 == 0 else [])  # fmt: skip
            if i % 4 == 0:
                moves.append(("closed", 6 + 2 * i))
            state = moves[-1][0]
            conn.execute("UPDATE twin.task SET state = %s WHERE id = %s", (state, tid))
            for to, hours in moves:
                conn.execute(
                    "INSERT INTO twin.task_transition (task_id, to_state, at) VALUES (%s, %s, %s)",
                    (tid, to, created + hours * h),
                )
        conn.execute(
            "INSERT INTO twin.risk_score (layer_id, res, cell, score, level, computed_at, geom)"
            " SELECT 'onemap', 9, cell, 50, (ARRAY['blue','yellow','orange','red'])"
            "[1 + (row_number() OVER (ORDER BY cell)) %% 4], %s, geom"
            " FROM twin.cell_stats WHERE res = 9",
            (as_of - h,),
        )
    return Twin(s, as_of, district, code, flood["run_id"], traffic["run_id"])


def report(twin: Twin, monkeypatch: pytest.MonkeyPatch, *args: str, k: int = K) -> Any:
    monkeypatch.setenv("TWIN_DATABASE_URL", twin.settings.database_url or "")
    monkeypatch.setenv("TWIN_DATA_DIR", str(twin.settings.data_dir))
    monkeypatch.setenv("TWIN_SUPPRESSION_K", str(k))
    return runner.invoke(app, ["report", *args])


@pytest.fixture(scope="module")
def written(twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("out")
    with pytest.MonkeyPatch.context() as mp:
        r = report(twin, mp, "--area", twin.code, "--period", "30d",
                   "--as-of", twin.as_of.isoformat(), "--out", str(out), "--json")  # fmt: skip
    assert r.exit_code == 0, r.output
    return out, json.loads(r.stdout)


def test_files_are_written_and_self_contained(written: tuple[Path, dict]) -> None:
    out, data = written
    assert {"report.md", "report.html", "report.json"} <= {p.name for p in out.iterdir()}
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 3 and "</html>" in html
    # Self-contained: no links to anything (the SVG namespace is a name, not a fetch).
    assert not re.search(r"(src|href)\s*=|<link|@import|url\(", html)
    md = (out / "report.md").read_text()
    for name in re.findall(r"\]\(([^)]+\.svg)\)", md):
        assert (out / name).read_text().startswith("<svg")
    assert data["out_dir"] == str(out) and str(out / "report.md") in data["files"]


def test_events_equal_direct_sql(twin: Twin, written: tuple[Path, dict]) -> None:
    out, data = written
    end = twin.as_of
    start, prev = end - timedelta(days=30), end - timedelta(days=60)
    rows = q(twin.settings, "SELECT e.type, count(*) FILTER (WHERE e.occurred_at >= %s),"
             " count(*) FILTER (WHERE e.occurred_at < %s) FROM twin.event e"
             " JOIN twin.admin_area a ON a.id = %s WHERE ST_Contains(a.geom, e.geom)"
             " AND e.occurred_at >= %s AND e.occurred_at < %s GROUP BY e.type",
             start, start, twin.district, prev, end)  # fmt: skip
    want = {t: (c, p) for t, c, p in rows}
    got = {r["type"]: (r["current"], r["previous"]) for r in data["events"]["by_type"]}
    assert got == want and sum(c for c, _ in want.values()) == data["events"]["total"]
    assert sum(d["current"] for d in data["events"]["daily"]) == data["events"]["total"]
    assert sum(d["previous"] for d in data["events"]["daily"]) == data["events"]["previous_total"]
    md = (out / "report.md").read_text()
    for t, (c, p) in want.items():
        assert f"| {t} | {c:,} | {p:,} |" in md
    assert f"{data['events']['total']:,} events reported in the period" in md


def test_tasks_equal_direct_sql(twin: Twin, written: tuple[Path, dict]) -> None:
    out, data = written
    end = twin.as_of
    start = end - timedelta(days=30)
    sub = [r[0] for r in q(twin.settings, SUBTREE, twin.district)]
    (created,) = q(twin.settings, "SELECT count(*) FROM twin.task WHERE area_id = ANY(%s)"
                   " AND created_at >= %s AND created_at < %s", sub, start, end)[0]  # fmt: skip
    assert created > 0 and data["tasks"]["dispatched"]["current"] == created
    md = (out / "report.md").read_text()
    assert f"| dispatched (created) | {created:,} |" in md
    for state in ("accepted", "done", "closed"):
        (n,) = q(twin.settings, "SELECT count(DISTINCT x.task_id) FROM twin.task_transition x"
                 " JOIN twin.task t ON t.id = x.task_id WHERE t.area_id = ANY(%s)"
                 " AND x.to_state = %s AND x.at >= %s AND x.at < %s", sub, state, start, end)[0]  # fmt: skip
        assert data["tasks"]["states"][state]["current"] == n
        assert f"| {state} | {n:,} |" in md
    resp = q(twin.settings, "SELECT extract(epoch FROM min(x.at) - t.created_at) / 3600"
             " FROM twin.task t JOIN twin.task_transition x ON x.task_id = t.id"
             " AND x.to_state = 'accepted' WHERE t.area_id = ANY(%s) AND t.created_at >= %s"
             " AND t.created_at < %s GROUP BY t.id, t.created_at", sub, start, end)  # fmt: skip
    hours = sorted(float(r[0]) for r in resp)
    got = data["tasks"]["response_h"]["current"]
    assert got["n"] == len(hours) and got["mean"] == pytest.approx(sum(hours) / len(hours))
    assert "## How fast" in md


def test_runs_in_the_period(twin: Twin, written: tuple[Path, dict]) -> None:
    _, data = written
    (flood,) = data["runs"]["flood"]
    sub = [r[0] for r in q(twin.settings, SUBTREE, twin.district)]
    (closed,) = q(twin.settings, "SELECT count(*) FROM twin.flood_link_result fl JOIN"
                  " twin.road_link l ON l.id = fl.link_id JOIN twin.cell_stats cs ON cs.res = 10"
                  " AND cs.cell = l.cell WHERE fl.run_id = %s AND fl.state = 'closed'"
                  " AND cs.area_id = ANY(%s)", twin.flood, sub)[0]  # fmt: skip
    (hit,) = q(twin.settings, "SELECT count(*) FROM twin.flood_building_result fb JOIN"
               " twin.building b ON b.id = fb.building_id JOIN twin.admin_area a ON a.id = %s"
               " WHERE fb.run_id = %s AND fb.max_depth_m >= 0.15"
               " AND ST_Contains(a.geom, ST_Centroid(b.geom))", twin.district, twin.flood)[0]  # fmt: skip
    assert flood["id"] == twin.flood and flood["roads_closed"] == closed
    assert flood["affected_buildings"] == hit
    people = flood["affected_people"]
    assert people is None or people == 0 or people >= K
    (traffic,) = data["runs"]["traffic"]  # its baseline is not listed
    assert traffic["id"] == twin.traffic and traffic["baseline_run_id"] is not None


def test_siblings_are_compared(twin: Twin, written: tuple[Path, dict]) -> None:
    out, data = written
    comp = data["comparison"]
    assert comp["basis"] == "siblings"
    siblings = q(twin.settings, "SELECT s.id, s.code, s.name FROM twin.admin_area s JOIN"
                 " twin.admin_area a ON a.parent_id = s.parent_id WHERE a.id = %s"
                 " ORDER BY s.code", twin.district)  # fmt: skip
    assert [r["code"] for r in comp["rows"]] == [c for _, c, _ in siblings]
    start = twin.as_of - timedelta(days=30)
    md = (out / "report.md").read_text()
    assert "## Against the other areas of the same parent" in md
    for (sid, code, name), row in zip(siblings, comp["rows"], strict=True):
        (pop,) = q(twin.settings, "SELECT count(*) FROM twin.person p JOIN twin.building b"
                   " ON b.id = p.home_building_id JOIN twin.admin_area a ON a.id = %s"
                   " WHERE ST_Contains(a.geom, ST_Centroid(b.geom))", sid)[0]  # fmt: skip
        (ev,) = q(twin.settings, "SELECT count(*) FROM twin.event e JOIN twin.admin_area a"
                  " ON a.id = %s WHERE ST_Contains(a.geom, e.geom) AND e.occurred_at >= %s"
                  " AND e.occurred_at < %s", sid, start, twin.as_of)[0]  # fmt: skip
        # The public gets area counts rounded to the nearest multiple of k (docs/privacy.md).
        shown = None if 0 < pop < K else (pop + K // 2) // K * K
        assert row["events"] == ev and row["population"] == shown
        assert row["events_per_1000"] == (pytest.approx(ev * 1000 / shown) if shown else None)
        assert f"{name} · {code}" in md
        assert row["subject"] == (sid == twin.district)
    rate = comp["metrics"]["events_per_1000"]
    assert f"highest {rate['top']['name']}" in md and f"lowest {rate['bottom']['name']}" in md


def test_default_directory_and_city_report(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> None:
    r = report(twin, monkeypatch, "--area", "C", "--period", "90d")
    assert r.exit_code == 0, r.output
    out = twin.settings.data_dir / "reports" / f"C-{datetime.now(UTC).date().isoformat()}"
    md = (out / "report.md").read_text()
    assert "(the city has no siblings)" in md and (out / "report.html").exists()


def test_people_counts_are_suppressed_unless_asked(
    twin: Twin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    big = 10**6  # every count of the tiny city is small now
    r = report(twin, monkeypatch, "--area", twin.code, "--out", str(tmp_path / "a"), "--json",
               k=big)  # fmt: skip
    data = json.loads(r.stdout)
    pop = next(i for i in data["indicators"] if i["id"] == "population")
    assert pop["value"] is None and all(row["population"] is None and
                                        row["events_per_1000"] is None
                                        for row in data["comparison"]["rows"])  # fmt: skip
    assert (
        "| Residents (常住人口) | people | hidden |" in (tmp_path / "a" / "report.md").read_text()
    )
    r = report(twin, monkeypatch, "--area", twin.code, "--out", str(tmp_path / "b"), "--json",
               "--unsuppressed", k=big)  # fmt: skip
    data = json.loads(r.stdout)
    assert next(i for i in data["indicators"] if i["id"] == "population")["value"] > 0


def test_bad_arguments(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> None:
    r = report(twin, monkeypatch, "--area", "C.NOPE")
    assert r.exit_code == 2 and "--area" in r.output
    r = report(twin, monkeypatch, "--area", "C", "--period", "soon")
    assert r.exit_code == 2 and "--period" in r.output
    r = report(twin, monkeypatch, "--area", "C", "--as-of", "never")
    assert r.exit_code == 2 and "--as-of" in r.output


def test_charts_escape_and_scale() -> None:
    svg = charts.bar_chart(["a<b", "c&d"], {"now": [3, 0], "before": [1, 7]}, title="T <x>")
    assert "a&lt;b" in svg and "c&amp;d" in svg and "T &lt;x&gt;" in svg
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    empty = charts.daily_chart([], [], [], title="nothing")
    assert empty.startswith("<svg")
    assert charts.nice_step(7) == 2 and charts.nice_step(0) == 1 and charts.nice_step(430) == 100
