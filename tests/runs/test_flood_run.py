"""A storm on the tiny demo city: the run, its per-cell, road, building and event results."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest
import rasterio
from typer.testing import CliRunner

from twin.city.demo import build_demo
from twin.cli import app
from twin.runs.flood import FloodParams, FloodRunError, run_flood
from twin.settings import Settings
from twin.sim.rain import Series

runner = CliRunner()


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_flood"),
        data_dir=tmp_path_factory.mktemp("flood"),
    )  # fmt: skip
    build_demo(s, size="tiny", seed=3)
    return s


@pytest.fixture(scope="module")
def storm(settings: Settings) -> dict:
    seen: list[float] = []
    summary = run_flood(
        settings, FloodParams(return_period_years=50, duration_s=3600, after_s=1800),
        progress=seen.append,
    )  # fmt: skip
    assert seen and seen[-1] == pytest.approx(1.0)
    return summary


def q(settings: Settings, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


def test_the_run_is_recorded_with_its_summary(settings: Settings, storm: dict) -> None:
    (status, progress, summary, timings), = q(
        settings, "SELECT status, progress, summary, timings FROM twin.sim_run WHERE id = %s",
        storm["run_id"],
    )  # fmt: skip
    assert status == "succeeded" and progress == 1
    assert summary["run_id"] == storm["run_id"] and summary["warnings"] == []
    assert set(timings) == {"load_s", "simulate_s", "store_s"}
    assert abs(storm["mass_error_rel"]) < 1e-10
    v = storm["volumes_m3"]
    assert v["rain"] > 0 and v["drained"] > 0 and v["outflow"] >= 0
    # Rain over the grid = the storm's depth x the active area (every pixel: nothing blocked).
    g = storm["grid"]
    area = g["rows"] * g["cols"] * g["cell_m"] ** 2
    assert v["rain"] == pytest.approx(storm["rain_mm"] / 1000 * area, rel=1e-6)
    # ... and that depth is the design formula's for one hour at 50 years (Beijing zone I).
    q_ha = 2001 * (1 + 0.811 * np.log10(50)) / (60 + 8) ** 0.711  # L/(s·ha)
    assert storm["rain_mm"] == pytest.approx(q_ha * 3600 / 10_000, rel=1e-6)


def test_coarser_cells_aggregate_the_finer_ones(settings: Settings, storm: dict) -> None:
    # Independent of the code: PostGIS's h3_parent over the stored finest cells.
    rows = q(
        settings,
        "SELECT p.cell, p.max_depth_m, c.mx, p.affected_people, c.people FROM twin.flood_cell_result p"
        " JOIN (SELECT twin.h3_parent(cell, 9) AS cell, max(max_depth_m) AS mx,"
        "       sum(affected_people) AS people FROM twin.flood_cell_result"
        "       WHERE run_id = %s AND res = 10 GROUP BY 1) c USING (cell)"
        " WHERE p.run_id = %s AND p.res = 9",
        storm["run_id"], storm["run_id"],
    )  # fmt: skip
    assert rows
    for _, parent_max, child_max, parent_people, child_people in rows:
        assert parent_max == pytest.approx(child_max, abs=1e-12)
        assert parent_people == child_people


def test_cell_depths_match_the_written_raster(settings: Settings, storm: dict) -> None:
    with rasterio.open(storm["rasters"]["max_depth"]) as src:
        raster = src.read(1)
    (deepest,), = q(
        settings, "SELECT max(max_depth_m) FROM twin.flood_cell_result WHERE run_id = %s",
        storm["run_id"],
    )  # fmt: skip
    assert 0.15 < deepest <= np.nanmax(raster) + 1e-6
    assert storm["flooded_cells"] > 0


def test_low_spot_sensors_stand_in_deep_water(settings: Settings, storm: dict) -> None:
    # The demo puts a water-level sensor in every closed depression: a 50-year storm fills them.
    rows = q(
        settings,
        "SELECT f.max_depth_m FROM twin.sensor s JOIN twin.flood_cell_result f"
        " ON f.cell = s.cell AND f.res = 10 AND f.run_id = %s"
        " WHERE s.kind = 'water_level' AND s.code NOT LIKE 'WL-R%%'",
        storm["run_id"],
    )
    assert rows
    assert np.median([r[0] for r in rows]) > 0.3


def test_roads_states_follow_the_depth_bands(settings: Settings, storm: dict) -> None:
    rows = q(
        settings,
        "SELECT f.max_depth_m, f.state, l.bridge FROM twin.flood_link_result f"
        " JOIN twin.road_link l ON l.id = f.link_id WHERE f.run_id = %s",
        storm["run_id"],
    )
    assert rows and not any(bridge for _, _, bridge in rows)
    for depth, state, _ in rows:
        expected = "closed" if depth >= 0.30 else "slowed" if depth >= 0.15 else "passable"
        assert state == expected
    assert storm["closed_links"] == sum(1 for _, s, _ in rows if s == "closed")


def test_affected_people_are_residents_of_affected_buildings(
    settings: Settings, storm: dict
) -> None:
    (people,), = q(
        settings,
        "SELECT count(*) FROM twin.person p JOIN twin.flood_building_result b"
        " ON b.building_id = p.home_building_id WHERE b.run_id = %s AND b.max_depth_m >= 0.15",
        storm["run_id"],
    )  # fmt: skip
    (stored,), = q(
        settings,
        "SELECT coalesce(sum(affected_people), 0) FROM twin.flood_cell_result"
        " WHERE run_id = %s AND res = 10",
        storm["run_id"],
    )  # fmt: skip
    assert people == stored == storm["affected_people"]


def test_waterlogging_events_mark_the_worst_spots(settings: Settings, storm: dict) -> None:
    rows = q(
        settings,
        "SELECT type, source, area_id, description, cell FROM twin.event WHERE sim_run_id = %s",
        storm["run_id"],
    )
    assert 0 < len(rows) == storm["events"] <= 25
    for etype, source, area_id, description, cell in rows:
        assert (etype, source) == ("waterlogging", "simulation")
        assert area_id is not None and cell is not None
        assert float(description.split()[2]) >= 0.30


def test_no_rain_floods_nothing(settings: Settings) -> None:
    dry = Series(np.array([0.0, 600.0]), np.array([0.0, 0.0]))
    s = run_flood(settings, FloodParams(rain_series=dry, after_s=0))
    assert s["max_depth_m"] == 0 and s["flooded_cells"] == 0 and s["events"] == 0
    assert s["closed_links"] == 0 and s["affected_buildings"] == 0
    assert any("no land cell got wet" in w for w in s["warnings"])


def test_cli_runs_a_storm_from_a_rain_series(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("TWIN_DATA_DIR", str(settings.data_dir))
    (tmp_path / "rain.csv").write_text("time_s,intensity_mm_h\n0,60\n900,0\n")
    r = runner.invoke(
        app,
        [
            "simulate",
            "flood",
            "--rain-series",
            str(tmp_path / "rain.csv"),
            "--after",
            "5min",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["rain_mm"] == pytest.approx(15.0)
    assert s["params"]["storm"] == "series"
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,intensity_mm_h\n0,-5\n")
    r = runner.invoke(app, ["simulate", "flood", "--rain-series", str(bad)])
    assert r.exit_code == 2 and "line 2" in r.output


def test_a_twin_without_a_dem_fails_clearly_and_marks_the_run(
    make_database: Callable[..., str], tmp_path: Path
) -> None:
    s = Settings(_env_file=None, database_url=make_database("twin_nodem"), data_dir=tmp_path)
    from twin.db.migrate import upgrade

    upgrade(s.database_url or "")
    with pytest.raises(FloodRunError, match="no DEM"):
        run_flood(s, FloodParams())
    ((status, error),) = q(s, "SELECT status, error FROM twin.sim_run ORDER BY id DESC LIMIT 1")
    assert status == "failed" and "no DEM" in error


def test_cell_statistics_count_the_new_events(settings: Settings, storm: dict) -> None:
    """The cell card reads open-event counts from cell_stats: they include the run's events."""
    rows = q(
        settings,
        "SELECT s.res, s.cell, s.events_open, (SELECT count(*) FROM twin.event e"
        "  WHERE e.status <> 'closed' AND twin.h3_parent(e.cell, s.res) = s.cell)"
        " FROM twin.cell_stats s WHERE EXISTS (SELECT 1 FROM twin.event e WHERE e.sim_run_id = %s"
        "  AND twin.h3_parent(e.cell, s.res) = s.cell)",
        storm["run_id"],
    )
    assert rows
    for res, cell, stored, counted in rows:
        assert stored == counted, (res, cell)
