"""The rolling nowcast on the tiny demo city: gauges and readings put in directly, two steps."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pyproj import Transformer
from typer.testing import CliRunner

from twin.city.demo import build_demo
from twin.cli import app
from twin.runs.nowcast import NowcastError, NowcastParams, status, step
from twin.settings import Settings
from twin.sim.flood_state import FloodState

runner = CliRunner()
T0 = datetime(2026, 7, 20, 8, 0, tzinfo=UTC)
MM_H = 36.0  # every fresh gauge reads 36 mm/h: the field is 36 mm/h everywhere


def q(settings: Settings, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_nowcast"),
        data_dir=tmp_path_factory.mktemp("nowcast"),
    )  # fmt: skip
    build_demo(s, size="tiny", seed=3)
    with psycopg.connect(s.database_url or "") as conn:
        crs, (a, _, c0, _, e, f0), w, h = conn.execute(
            "SELECT crs, transform, width, height FROM twin.raster_asset WHERE kind = 'dem'"
        ).fetchone()  # type: ignore[misc]
        to_lonlat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

        def place(code: str, kind: str, unit: str, fx: float, fy: float) -> int:
            lon, lat = to_lonlat.transform(c0 + a * w * fx, f0 + e * h * fy)
            return conn.execute(
                "INSERT INTO twin.sensor (code, kind, unit, geom) VALUES"
                " (%s, %s, %s, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) RETURNING id",
                (code, kind, unit, lon, lat),
            ).fetchone()[0]  # type: ignore[index]

        def read(sensor: int, value: float, minutes: range) -> None:
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO twin.observation (sensor_id, observed_at, value) VALUES (%s, %s, %s)",
                    [(sensor, T0 + timedelta(minutes=m), value) for m in minutes],
                )

        # Every minute from an hour before T0 to ten minutes after.
        span = range(-59, 11)
        read(place("NW", "rain_gauge", "mm/h", 0.2, 0.2), MM_H, span)
        read(place("SE", "rain_gauge", "mm/h", 0.8, 0.8), MM_H, span)
        # A tipping bucket: 0.6 mm a minute is 36 mm/h too.
        read(place("TB", "other", "mm", 0.5, 0.5), 0.6, span)
        conn.execute("UPDATE twin.sensor SET quantity = 'precipitation' WHERE code = 'TB'")
        # Stale: its last reading was 30 minutes before T0 (and it would rain 200 mm/h).
        read(place("OLD", "rain_gauge", "mm/h", 0.8, 0.2), 200.0, range(-59, -29))
        wl = place("WL-TEST", "water_level", "m", 0.5, 0.5)
        read(wl, 0.05, range(-2, 11))
    return s


@pytest.fixture(scope="module")
def two_steps(settings: Settings) -> tuple[dict, dict]:
    first = step(settings, NowcastParams(), as_of=T0)
    second = step(settings, NowcastParams(), as_of=T0 + timedelta(minutes=5))
    return first, second


def test_the_first_step_uses_the_fresh_gauges_and_stores_its_rows(
    settings: Settings, two_steps: tuple[dict, dict]
) -> None:
    first, _ = two_steps
    assert first["restarted"] == "first step" and first["window_s"] == 300.0
    g = first["gauges"]
    assert sorted(g["used"]) == ["NW", "SE", "TB"] and g["stale"] == ["OLD"]
    assert all(v == pytest.approx(MM_H) for v in g["used"].values())
    assert all(v == pytest.approx(MM_H) for v in g["forecast"].values())
    (step_row,) = q(
        settings,
        "SELECT nowcast_id, window_s, horizon_s, gauges, rain_mean_mm_h, rain_max_mm_h,"
        " forecast_rain_mean_mm_h FROM twin.nowcast_step WHERE id = %s",
        first["step_id"],
    )
    assert step_row[1:3] == (300.0, 3600.0)
    assert sorted(step_row[3]["used"]) == ["NW", "SE", "TB"]
    assert step_row[4] == pytest.approx(MM_H) and step_row[5] == pytest.approx(MM_H)
    assert step_row[6] == pytest.approx(MM_H)
    # The rain by hand: 36 mm/h for 5 minutes (3 mm) over every pixel of the grid.
    ((grid,),) = q(settings, "SELECT grid FROM twin.nowcast WHERE id = %s", step_row[0])
    area = grid["rows"] * grid["cols"] * grid["cell_m"] ** 2
    assert first["volumes_m3"]["rain"] == pytest.approx(0.003 * area, rel=1e-6)


def test_cells_hold_now_and_horizon_depths_and_coarse_cells_aggregate(
    settings: Settings, two_steps: tuple[dict, dict]
) -> None:
    first, _ = two_steps
    sid = first["step_id"]
    ((n, deeper),) = q(
        settings,
        "SELECT count(*), count(*) FILTER (WHERE depth_horizon_m > depth_now_m)"
        " FROM twin.nowcast_cell WHERE step_id = %s",
        sid,
    )
    assert n == first["cells"] > 0
    assert deeper > 0  # another hour of 36 mm/h
    ((worst,),) = q(
        settings, "SELECT max(depth_horizon_m) FROM twin.nowcast_cell WHERE step_id = %s", sid
    )
    assert worst == pytest.approx(first["max_depth_horizon_m"])
    # Independent of the code: PostGIS's h3_parent over the stored finest cells.
    finest = settings.finest_resolution
    coarse = min(settings.h3_resolutions)
    bad = q(
        settings,
        "SELECT p.cell FROM twin.nowcast_cell p JOIN (SELECT twin.h3_parent(cell, %s) AS cell,"
        " max(depth_horizon_m) AS mx FROM twin.nowcast_cell WHERE step_id = %s AND res = %s"
        " GROUP BY 1) c USING (cell) WHERE p.step_id = %s AND p.res = %s"
        " AND abs(p.depth_horizon_m - c.mx) > 1e-12",
        coarse, sid, finest, sid, coarse,
    )  # fmt: skip
    assert bad == []


def test_roads_and_water_level_skill(settings: Settings, two_steps: tuple[dict, dict]) -> None:
    first, _ = two_steps
    sid = first["step_id"]
    links = q(
        settings,
        "SELECT depth_horizon_m, state_horizon FROM twin.nowcast_link WHERE step_id = %s",
        sid,
    )
    assert len(links) == first["links"]
    for depth, state in links:
        assert state == ("closed" if depth >= 0.30 else "slowed" if depth >= 0.15 else "passable")
    rows = q(
        settings,
        "SELECT s.code, k.observed_m, k.modelled_depth_m, k.difference_m FROM twin.nowcast_skill k"
        " JOIN twin.sensor s ON s.id = k.sensor_id WHERE k.step_id = %s",
        sid,
    )
    mine = [r for r in rows if r[0] == "WL-TEST"]
    assert len(mine) == 1
    _, observed, modelled, diff = mine[0]
    assert observed == 0.05 and diff == pytest.approx(observed - modelled, abs=1e-12)


def test_the_second_step_carries_the_state(
    settings: Settings, two_steps: tuple[dict, dict]
) -> None:
    first, second = two_steps
    assert second["restarted"] is None and second["nowcast_id"] == first["nowcast_id"]
    assert second["window_s"] == 300.0 and second["model_time_s"] == 600.0
    # The accounts run on: two windows of the same rain, and the water of both on the ground.
    assert second["volumes_m3"]["rain"] == pytest.approx(2 * first["volumes_m3"]["rain"])
    assert second["volumes_m3"]["initial"] == 0
    assert abs(second["mass_error_rel"]) < 1e-10
    ((steps, as_of, blob),) = q(
        settings, "SELECT steps, as_of, state FROM twin.nowcast WHERE id = %s",
        first["nowcast_id"],
    )  # fmt: skip
    assert steps == 2 and as_of == T0 + timedelta(minutes=5)
    state = FloodState.from_bytes(bytes(blob))
    assert state.time_s == 600.0
    # The summary's volumes are rounded to the litre.
    assert float(state.depth.sum()) * 100 == pytest.approx(second["volumes_m3"]["stored"], abs=1e-3)
    s = status(settings)
    assert s["nowcast_id"] == first["nowcast_id"] and s["steps"] == 2
    assert [x["step_id"] for x in s["latest_steps"]] == [second["step_id"], first["step_id"]]


def test_a_step_that_goes_back_in_time_or_finds_no_gauge_is_refused(
    settings: Settings, two_steps: tuple[dict, dict]
) -> None:
    with pytest.raises(NowcastError, match="is not after the last step"):
        step(settings, NowcastParams(), as_of=T0 + timedelta(minutes=5))
    with pytest.raises(NowcastError, match="no rain gauge reported"):
        step(settings, NowcastParams(), as_of=T0 + timedelta(hours=2))
    with pytest.raises(NowcastError, match="window_s must be positive"):
        NowcastParams(window_s=0)
    # Nothing was stored by the refused steps.
    ((n,),) = q(settings, "SELECT count(*) FROM twin.nowcast_step")
    assert n == 2


def test_the_cli_steps_and_reports(
    settings: Settings, two_steps: tuple[dict, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("TWIN_DATA_DIR", str(settings.data_dir))
    as_of = (T0 + timedelta(minutes=10)).isoformat()
    r = runner.invoke(app, ["nowcast", "step", "--as-of", as_of, "--horizon", "30m", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["horizon_s"] == 1800.0 and out["model_time_s"] == 900.0
    r = runner.invoke(app, ["nowcast", "status"])
    assert r.exit_code == 0 and "3 steps" in r.output
    r = runner.invoke(app, ["nowcast", "step", "--window", "soon"])
    assert r.exit_code == 2 and "--window" in r.output


def test_no_rain_when_asked_and_a_fresh_start_after_a_long_gap(
    settings: Settings, two_steps: tuple[dict, dict]
) -> None:
    # Runs after the CLI's step (T0 + 10 min): two hours on, no gauge is fresh.
    dry = step(settings, NowcastParams(if_no_gauges="zero"), as_of=T0 + timedelta(hours=2))
    assert dry["restarted"] is None and dry["gauges"]["used"] == {}
    assert dry["rain_mean_mm_h"] == 0 and dry["window_s"] == pytest.approx(110 * 60)
    assert dry["volumes_m3"]["rain"] == pytest.approx(3 * two_steps[0]["volumes_m3"]["rain"])
    later = step(settings, NowcastParams(if_no_gauges="zero"), as_of=T0 + timedelta(hours=9))
    assert later["restarted"].endswith("older than max_gap_s")
    assert later["nowcast_id"] != dry["nowcast_id"] and later["model_time_s"] == 300.0
    assert later["volumes_m3"]["rain"] == 0
