"""A storm ensemble on the tiny demo city through the CLI: the run lands in the registry, its
per-cell and per-link exceedance probabilities equal numpy on the members run here one after
another, and the flood_ensemble risk layer reads back through the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from twin import grid as h3grid
from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.cli import app
from twin.runs import ensemblespec, floodcells
from twin.runs.ensemble import member_grid
from twin.runs.flood import load_grid
from twin.settings import Settings
from twin.sim.ensemble import run_member

runner = CliRunner()
SPEC = """
return_periods_years: [2, 100]
durations: [10min]
after: 5min
perturbations:
  factors: [1.0, 2.0]
  random: {members: 1, seed: 3, sigma: 0.6, length_m: 150}
"""


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    s = Settings(
        _env_file=None, database_url=make_database("twin_ensemble"),
        data_dir=tmp_path_factory.mktemp("ensemble"),
    )  # fmt: skip
    build_demo(s, size="tiny", seed=3)
    return s


def q(settings: Settings, sql: str, *args: object) -> list[tuple]:
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(sql, args).fetchall()


@pytest.fixture(scope="module")
def run(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict:
    spec = tmp_path_factory.mktemp("spec") / "ensemble.yaml"
    spec.write_text(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_DATABASE_URL", settings.database_url or "")
        mp.setenv("TWIN_DATA_DIR", str(settings.data_dir))
        r = runner.invoke(
            app,
            ["simulate", "flood", "--ensemble", str(spec), "--scheduler", "local",
             "--workers", "2", "--json"],
        )  # fmt: skip
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def serial(settings: Settings) -> tuple[list[np.ndarray], pd.DataFrame]:
    """The members run here one by one, and the max depth along each road link per member."""
    members = ensemblespec.parse(__import__("yaml").safe_load(SPEC)).members()
    with psycopg.connect(settings.database_url or "") as conn:
        g = load_grid(conn)
        maxima = [np.nan_to_num(run_member(member_grid(g), m).max_depth) for m in members]
        links = floodcells.link_depth_table(conn, g, {str(i): d for i, d in enumerate(maxima)})
    return maxima, links


def test_the_ensemble_is_a_run_of_its_own_kind(settings: Settings, run: dict) -> None:
    ((kind, status, params, summary),) = q(
        settings, "SELECT kind, status, params, summary FROM twin.sim_run WHERE id = %s",
        run["run_id"],
    )  # fmt: skip
    assert kind == "flood_ensemble" and status == "succeeded"
    assert params["members"] == 6 and params["scheduler"] == "local" and params["workers"] == 2
    assert summary["n_members"] == 6 and [m["index"] for m in summary["members"]] == list(range(6))
    assert summary["max_depth_m"] > 0.3 and summary["mass_error_rel_max"] < 1e-10
    assert run["risk"] is not None  # the one map and alerts were refreshed after the run


def test_cell_probabilities_equal_numpy_on_the_serial_members(
    settings: Settings, run: dict, serial: tuple[list[np.ndarray], pd.DataFrame]
) -> None:
    maxima, _ = serial
    with psycopg.connect(settings.database_url or "") as conn:
        g = load_grid(conn)
    land = g.land.ravel()
    pixels = floodcells.pixel_cells(settings, g).ravel()[land]
    for res in settings.h3_resolutions:
        cells = h3grid.parent(pixels, res)
        per_member = pd.DataFrame({str(i): d.ravel()[land] for i, d in enumerate(maxima)})
        cell_max = per_member.groupby(cells).max()  # the cell's max depth, per member
        stored = pd.DataFrame(
            q(settings, "SELECT cell, p_over_15cm, p_over_30cm, mean_max_depth_m"
              " FROM twin.flood_ensemble_cell_result WHERE run_id = %s AND res = %s",
              run["run_id"], res),
            columns=["cell", "p15", "p30", "mean"],
        ).set_index("cell").sort_index()  # fmt: skip
        assert stored.index.to_list() == cell_max.index.to_list()
        m = cell_max.to_numpy(dtype=np.float64)
        assert np.array_equal(stored.p15.to_numpy(), (m > 0.15).sum(axis=1) / 6)
        assert np.array_equal(stored.p30.to_numpy(), (m > 0.30).sum(axis=1) / 6)
        assert np.allclose(stored["mean"].to_numpy(), m.mean(axis=1), rtol=0, atol=1e-12)
    assert (stored.p15 > 0).any() and (stored.p15 < 1).any()


def test_link_probabilities_equal_numpy_on_the_serial_members(
    settings: Settings, run: dict, serial: tuple[list[np.ndarray], pd.DataFrame]
) -> None:
    _, links = serial
    reached = links[links.max(axis=1) >= 0.05]
    stored = pd.DataFrame(
        q(settings, "SELECT link_id, p_over_15cm, p_over_30cm FROM twin.flood_ensemble_link_result"
          " WHERE run_id = %s ORDER BY link_id", run["run_id"]),
        columns=["link", "p15", "p30"],
    ).set_index("link")  # fmt: skip
    assert len(stored) > 0 and stored.index.to_list() == reached.index.to_list()
    assert np.array_equal(stored.p15.to_numpy(), (reached.to_numpy() > 0.15).sum(axis=1) / 6)
    assert np.array_equal(stored.p30.to_numpy(), (reached.to_numpy() > 0.30).sum(axis=1) / 6)


def test_the_risk_layer_reads_back(settings: Settings, run: dict) -> None:
    with TestClient(create_app(settings)) as client:
        r = client.get("/api/risk", params={"layer": "flood_ensemble"})
        assert r.status_code == 200, r.text
        body = r.json()
        layers = {lyr["id"] for lyr in client.get("/api/layers").json()["layers"]}
        listed = client.get("/api/simulations", params={"kind": "flood_ensemble"}).json()
        one = client.get(f"/api/simulations/{run['run_id']}").json()
        cells = client.get(f"/api/simulations/{run['run_id']}/cells")
    assert run["run_id"] in [r["id"] for r in listed["runs"]]
    assert one["kind"] == "flood_ensemble" and one["summary"]["n_members"] == 6
    assert "rasters" not in one["summary"] and one["links"]["risk"].endswith("flood_ensemble")
    assert cells.status_code == 400 and "flood_ensemble run" in cells.text
    assert "flood_ensemble" in layers
    assert body["count"] > 0
    stored = dict(
        q(settings, "SELECT twin.h3_to_hex(cell), p_over_30cm FROM twin.flood_ensemble_cell_result"
          " WHERE run_id = %s AND res = 9", run["run_id"])
    )  # fmt: skip
    for c in body["cells"]:
        comp = c["components"]
        assert comp["p_over_30cm"]["value"] == pytest.approx(stored[c["h3"]])
    # Not part of the one map: a probability over many storms is not one storm's severity.
    onemap = q(
        settings, "SELECT DISTINCT components FROM twin.risk_score WHERE layer_id = 'onemap'"
    )
    assert all("flood_ensemble" not in json.dumps(c) for (c,) in onemap)


def test_a_bad_spec_names_the_file_and_field_and_leaves_no_run(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("TWIN_DATA_DIR", str(settings.data_dir))
    bad = tmp_path / "bad.yaml"
    bad.write_text("return_periods_years: [10]\ndurations: [1h]\nperturbations: {factors: [0]}\n")
    before = q(settings, "SELECT count(*) FROM twin.sim_run")
    r = runner.invoke(app, ["simulate", "flood", "--ensemble", str(bad)])
    assert r.exit_code == 2
    assert str(bad) in r.output and "perturbations.factors" in r.output
    assert q(settings, "SELECT count(*) FROM twin.sim_run") == before
