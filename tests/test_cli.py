"""The `twin` command's surface: help everywhere, URLs, and errors that say what to do."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.db.migrate import head_revision

runner = CliRunner()


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["db"],
        ["db", "start"],
        ["db", "stop"],
        ["db", "status"],
        ["db", "url"],
        ["db", "migrate"],
        ["serve"],
    ],
)
def test_every_command_has_help(args: list[str]) -> None:
    r = runner.invoke(app, [*args, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output


def test_url_prefers_twin_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql+psycopg://me@db.example:5433/city")
    r = runner.invoke(app, ["db", "url"])
    assert r.exit_code == 0
    assert r.output.strip() == "postgresql://me@db.example:5433/city"


def test_url_without_any_database_says_what_to_do(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TWIN_DATABASE_URL", raising=False)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "nothing"))
    r = runner.invoke(app, ["db", "url"])
    assert r.exit_code == 1
    assert "twin db start" in r.output


def test_status_of_an_unreachable_external_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://twin@127.0.0.1:1/twin")
    r = runner.invoke(app, ["db", "status", "--json"])
    assert r.exit_code == 3
    assert '"running": false' in r.output


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_SUPPRESSION_K", "zero")
    r = runner.invoke(app, ["db", "url"])
    assert r.exit_code == 1
    assert "suppression_k" in r.output


def test_migrate_reaches_head(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", db_url)
    r = runner.invoke(app, ["db", "migrate", "--json"])
    assert r.exit_code == 0, r.output
    assert f'"revision": "{head_revision()}"' in r.output


@pytest.mark.parametrize(
    "args",
    [
        ["ingest"],
        ["ingest", "osm"],
        ["ingest", "buildings"],
        ["ingest", "people"],
        ["ingest", "population"],
        ["ingest", "jobs"],
        ["ingest", "dem"],
        ["grid", "refresh"],
        ["demo"],
    ],
)
def test_new_commands_have_help(args: list[str]) -> None:
    r = runner.invoke(app, [*args, "--help"])
    assert r.exit_code == 0, r.output


def test_ingest_errors_name_the_file_and_load_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", db_url)
    missing = tmp_path / "nope.gpkg"
    r = runner.invoke(app, ["ingest", "buildings", str(missing)])
    assert r.exit_code == 1
    assert f"{missing}: file not found (nothing was loaded)" in " ".join(r.output.split())
    people = tmp_path / "people.csv"
    people.write_text("name,age_band,resident_type,address\n张三,25-44,registered,x\n")
    r = runner.invoke(app, ["ingest", "people", str(people)])
    assert r.exit_code == 1
    assert "columns not allowed for people: name" in " ".join(r.output.split())


def test_grid_refresh_reports_rows(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", db_url)
    r = runner.invoke(app, ["grid", "refresh", "--json"])
    assert r.exit_code == 0, r.output
    assert '"rows": 0' in r.output  # the session database holds no city
