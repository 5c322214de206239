"""`twin sense range`: a Datastream's physical range set and cleared from the command line,
as SensorThings shows it (``properties.physicalRange``) and as the ingest path applies it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.sense.test_bridge import make_sensor
from twin.api.app import create_app
from twin.cli import app
from twin.db.migrate import upgrade
from twin.sense.devices import add_device
from twin.settings import Settings


@pytest.fixture(scope="module")
def db(make_database: Callable[..., str]) -> str:
    url: str = make_database("twin_ranges")
    upgrade(url)
    return url


@pytest.fixture
def cli(db: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., object]:
    monkeypatch.setenv("TWIN_DATABASE_URL", db)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["sense", "range", *map(str, args)])


@pytest.fixture(scope="module")
def api(db: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(_env_file=None, database_url=db))) as client:
        yield client


def _stored(db: str, ds: int) -> tuple[object, ...] | None:
    with psycopg.connect(db) as c:
        return c.execute("SELECT value_min, value_max FROM twin.sensor WHERE id = %s",
                         (ds,)).fetchone()  # fmt: skip


def test_set_and_clear_the_range(db: str, cli: Callable[..., object], api: TestClient) -> None:
    ds = make_sensor(db, "range-a")
    r = cli(ds, "--min", 0, "--max", 250, "--json")
    assert r.exit_code == 0, r.output  # type: ignore[attr-defined]
    body = json.loads(r.output)  # type: ignore[attr-defined]
    assert body["physicalRange"] == {"min": 0.0, "max": 250.0} and body["before"] is None
    assert _stored(db, ds) == (0.0, 250.0)
    got = api.get(f"/sta/v1.1/Datastreams({ds})").json()
    assert got["properties"]["physicalRange"] == {"min": 0.0, "max": 250.0}
    # The HTTP ingest path now refuses a reading above it (from the datastream's own device),
    # naming the range; a reading inside it is stored.
    with psycopg.connect(db) as c:
        _, token, _ = add_device(c, "range-a-dev", [ds])
    auth = {"Authorization": f"Bearer {token}"}
    obs = f"/sta/v1.1/Datastreams({ds})/Observations"
    r2 = api.post(obs, json={"result": 300.0, "phenomenonTime": "2026-07-01T00:00:00Z"},
                  headers=auth)  # fmt: skip
    assert r2.status_code == 400 and "[0, 250]" in r2.text, r2.text
    r2 = api.post(obs, json={"result": 30.0, "phenomenonTime": "2026-07-01T00:00:00Z"},
                  headers=auth)  # fmt: skip
    assert r2.status_code == 201, r2.text
    # One side only: the other is unbounded.
    r = cli(ds, "--max", 120, "--json")
    assert r.exit_code == 0  # type: ignore[attr-defined]
    assert json.loads(r.output)["before"] == {"min": 0.0, "max": 250.0}  # type: ignore[attr-defined]
    assert _stored(db, ds) == (None, 120.0)
    assert api.get(f"/sta/v1.1/Datastreams({ds})").json()["properties"]["physicalRange"] == {
        "max": 120.0}  # fmt: skip
    r = cli(ds, "--clear", "--json")
    assert r.exit_code == 0 and json.loads(r.output)["physicalRange"] is None  # type: ignore[attr-defined]
    assert _stored(db, ds) == (None, None)
    assert "physicalRange" not in api.get(f"/sta/v1.1/Datastreams({ds})").json()["properties"]
    with psycopg.connect(db) as c:
        audit = c.execute(
            "SELECT detail->'physicalRange', detail->>'actor' FROM twin.audit_log"
            " WHERE action = 'sense.datastream.range' AND resource = %s ORDER BY id",
            (f"datastream/{ds}",),
        ).fetchall()
    assert [a[0] for a in audit] == [{"min": 0.0, "max": 250.0}, {"min": None, "max": 120.0},
                                     {"min": None, "max": None}]  # fmt: skip
    assert all(a[1].startswith("cli:") for a in audit)


@pytest.mark.parametrize(
    ("args", "words", "code"),
    [
        (["--min", 5, "--max", 1], "min 5 is above max 1", 2),
        (["--min", "nan"], "--min", 2),
        (["--max", "inf"], "--max", 2),
        (["--clear", "--min", 1], "not both", 2),
        ([], "--clear", 2),
    ],
)
def test_bad_ranges_are_refused_naming_the_datastream(
    db: str, cli: Callable[..., object], args: list[object], words: str, code: int
) -> None:
    ds = make_sensor(db, f"range-bad-{abs(hash(tuple(map(str, args))))}")
    with psycopg.connect(db) as c:
        c.execute("UPDATE twin.sensor SET value_min = 0, value_max = 10 WHERE id = %s", (ds,))
    r = cli(ds, *args)
    assert r.exit_code == code, r.output  # type: ignore[attr-defined]
    assert words in r.output and f"Datastream {ds}" in r.output  # type: ignore[attr-defined]
    assert _stored(db, ds) == (0.0, 10.0)  # unchanged


def test_an_unknown_datastream_is_named(cli: Callable[..., object]) -> None:
    r = cli(99999999, "--min", 0)
    assert r.exit_code == 1 and "99999999" in r.output  # type: ignore[attr-defined]
