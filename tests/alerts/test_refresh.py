"""New data refreshes the one map and the alerts: an ingest through the CLI rescores the layers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h3
import psycopg
import pytest
from typer.testing import CliRunner

from twin.city.demo import build_demo
from twin.cli import app
from twin.settings import Settings


def test_an_event_ingest_rescores_the_fire_layer(
    make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database("twin_refresh")
    s = Settings(_env_file=None, database_url=url, data_dir=tmp_path / "data")
    build_demo(s, size="tiny", seed=11)
    monkeypatch.setenv("TWIN_DATABASE_URL", url)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    with psycopg.connect(url) as conn:
        lon, lat, at = conn.execute(
            "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)), now() - interval '1 day'"
            " FROM twin.admin_area WHERE level = 'grid' ORDER BY id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, 9))
    csv = tmp_path / "fires.csv"
    rows = "\n".join(f"F{k},fire,3,{at.isoformat()},{lon},{lat}" for k in range(3))
    csv.write_text(f"id,type,severity,created,lon,lat\n{rows}\n")
    r = CliRunner().invoke(
        app, ["ingest", "events", str(csv), "--crs", "EPSG:4326", "--type-field", "type",
              "--time-field", "created", "--id-field", "id"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    with psycopg.connect(url) as conn:
        comp = conn.execute(
            "SELECT components FROM twin.risk_score WHERE layer_id = 'fire' AND res = 9"
            " AND cell = %s",
            (cell,),
        ).fetchone()
        fires = conn.execute(
            "SELECT count(*) FROM twin.event WHERE type = 'fire' AND twin.h3_parent(cell, 9) = %s"
            " AND occurred_at > now() - interval '365 days'",
            (cell,),
        ).fetchone()[0]  # type: ignore[index]
    assert comp is not None and fires >= 3
    assert comp[0]["fires"]["value"] == fires
