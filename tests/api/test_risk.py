"""``/api/layers``, ``/api/risk``, risk tiles and ``/api/alerts`` on a tiny demo city."""

from __future__ import annotations

import gzip
import math
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import h3
import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.alerts.refresh import refresh
from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.settings import Settings, project_root

K = 10


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    layers = tmp_path_factory.mktemp("layers")
    for f in (project_root() / "layers").glob("*.toml"):
        shutil.copy(f, layers / f.name)
    s = Settings(_env_file=None, database_url=make_database("twin_riskapi"),
                 data_dir=tmp_path_factory.mktemp("riskapi"), suppression_k=K,
                 layers_dir=layers)  # fmt: skip
    build_demo(s, size="tiny", seed=8)
    refresh(s)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _sql(settings: Settings, query: str, *args: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(settings.database_url or "") as conn:
        return conn.execute(query, args).fetchall()


def test_layers_lists_public_layers_with_counts(client: TestClient, settings: Settings) -> None:
    body = client.get("/api/layers").json()
    ids = [lyr["id"] for lyr in body["layers"]]
    assert "onemap" in ids and "elderly_alone" not in ids  # analyst-only layer hidden
    assert len(ids) >= 11 and body["errors"] == []
    crowd = next(lyr for lyr in body["layers"] if lyr["id"] == "crowd_density")
    direct = dict(_sql(settings, "SELECT level, count(*) FROM twin.risk_score"
                                 " WHERE layer_id = 'crowd_density' AND res = 9 GROUP BY 1"))  # fmt: skip
    assert crowd["cells"] == {
        lvl: direct.get(lvl, 0) for lvl in ("blue", "yellow", "orange", "red")
    }
    assert crowd["tiles"] == "/tiles/risk_crowd_density/{z}/{x}/{y}.mvt"
    assert crowd["title_zh"] and crowd["family"] == "public_safety"


def test_risk_cells_hide_small_people_counts(client: TestClient, settings: Settings) -> None:
    body = client.get("/api/risk", params={"layer": "crowd_density"}).json()
    direct = {h: (s, lvl, small) for h, s, lvl, small in _sql(
        settings, "SELECT twin.h3_to_hex(cell), score, level, small_count FROM twin.risk_score"
                  " WHERE layer_id = 'crowd_density' AND res = 9")}  # fmt: skip
    assert {c["h3"] for c in body["cells"]} == set(direct)
    hidden = 0
    for c in body["cells"]:
        score, level, small = direct[c["h3"]]
        assert c["level"] == level
        if small:
            hidden += 1
            assert c["score"] is None and c["suppressed"]
            assert c["components"]["population"]["value"] is None
            assert c["components"]["jobs"]["value"] is None
        else:
            assert c["score"] == pytest.approx(score)
            assert c["components"]["population"]["value"] is not None
    assert hidden == sum(1 for v in direct.values() if v[2])


def test_risk_parameters(client: TestClient) -> None:
    assert client.get("/api/risk", params={"layer": "nope"}).status_code == 404
    assert client.get("/api/risk", params={"layer": "elderly_alone"}).status_code == 401  # sign in
    r = client.get("/api/risk", params={"layer": "onemap", "res": 10})
    assert r.status_code == 400 and r.json()["parameter"] == "res"
    assert client.get("/api/risk", params={"layer": "onemap", "level": "pink"}).status_code == 400
    assert client.get("/api/risk", params={"layer": "onemap", "bbox": "1,2"}).status_code == 400
    r = client.get("/api/risk", params={"layer": "onemap", "res": 7})
    assert r.status_code == 200 and all(c["h3"] and h3.get_resolution(c["h3"]) == 7
                                        for c in r.json()["cells"])  # fmt: skip


def test_risk_tile_matches_postgis(client: TestClient, settings: Settings) -> None:
    (hexid,) = _sql(settings, "SELECT twin.h3_to_hex(cell) FROM twin.risk_score"
                              " WHERE layer_id = 'onemap' AND res = 9 ORDER BY score DESC LIMIT 1")[0]  # fmt: skip
    lat, lon = h3.cell_to_latlng(hexid)
    z = 13  # cells at res 9 from z13 to z14
    x, y = tile_of(lon, lat, z)
    r = client.get(f"/tiles/risk_onemap/{z}/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200
    data = r.content
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    feats = mapbox_vector_tile.decode(data)["risk_onemap"]["features"]
    direct = _sql(
        settings,
        "SELECT cell, level, small_count FROM twin.risk_score WHERE layer_id = 'onemap'"
        " AND res = 9 AND geom_3857 && ST_TileEnvelope(%s, %s, %s, margin => 64.0 / 4096)",
        z,
        x,
        y,
    )
    assert sorted(f["id"] for f in feats) == sorted(int(c) & ((1 << 64) - 1) for c, _, _ in direct)
    by_id = {int(c) & ((1 << 64) - 1): (lvl, small) for c, lvl, small in direct}
    for f in feats:
        level, small = by_id[f["id"]]
        assert f["properties"]["level"] == level
        assert ("score" in f["properties"]) is not small
    etag = r.headers["etag"]
    assert client.get(f"/tiles/risk_onemap/{z}/{x}/{y}.mvt",
                      headers={"If-None-Match": etag}).status_code == 304  # fmt: skip
    refresh(settings)  # a recompute bumps the data version: the old ETag no longer matches
    r2 = client.get(f"/tiles/risk_onemap/{z}/{x}/{y}.mvt", headers={"If-None-Match": etag})
    assert r2.status_code == 200 and r2.headers["etag"] != etag
    assert client.get("/tiles/risk_onemap/5/0/0.mvt").status_code == 204  # below minzoom
    assert client.get(f"/tiles/risk_elderly_alone/{z}/{x}/{y}.mvt").status_code == 401
    assert client.get(f"/tiles/risk_nope/{z}/{x}/{y}.mvt").status_code == 404
    assert client.get("/tiles/risk_onemap.json").json()["tilejson"] == "3.0.0"


def test_a_new_layer_file_appears_without_code_changes(
    client: TestClient, settings: Settings
) -> None:
    path = Path(settings.layers_dir) / "bus_stops_test.toml"
    path.write_text(
        'id = "bus_stops_test"\ntitle = "Shops"\ntitle_zh = "商店"\nfamily = "public_safety"\n'
        '[source]\nsql = """SELECT twin.h3_parent(cell, %(res)s) AS cell, count(*) AS n'
        ' FROM twin.enterprise WHERE industry = \'retail\' GROUP BY 1"""\n'
        '[[inputs]]\nname = "n"\nmin = 0\nmax = 5\nweight = 1\n'
        "[levels]\nyellow = 20\norange = 40\nred = 60\n"
    )
    try:
        ids = [lyr["id"] for lyr in client.get("/api/layers").json()["layers"]]
        assert "bus_stops_test" in ids
        refresh(settings)
        cells = client.get("/api/risk", params={"layer": "bus_stops_test"}).json()["cells"]
        direct = _sql(settings, "SELECT count(DISTINCT twin.h3_parent(cell, 9)) FROM twin.enterprise"
                                " WHERE industry = 'retail'")[0][0]  # fmt: skip
        assert len(cells) == direct > 0
        assert client.get("/tiles/risk_bus_stops_test.json").status_code == 200
    finally:
        path.unlink()


def test_alerts_api(client: TestClient, settings: Settings) -> None:
    assert client.post("/api/alerts/evaluate").status_code == 200
    body = client.get("/api/alerts", params={"status": "all"}).json()
    direct = _sql(settings, "SELECT count(*) FROM twin.alert")[0][0]
    assert body["count"] == direct
    rules = client.get("/api/alerts/rules").json()["rules"]
    assert {r["id"] for r in rules} >= {"flood_depth_cell", "cell_turns_red", "city_delay_index"}
    assert client.get("/api/alerts", params={"status": "bogus"}).status_code == 400
    assert client.get("/api/alerts", params={"area": "NOPE"}).status_code == 400
    red = client.get("/api/alerts", params={"rule": "cell_turns_red"}).json()["alerts"]
    n_red = _sql(settings, "SELECT count(*) FROM twin.risk_score WHERE layer_id = 'onemap'"
                           " AND res = 9 AND level = 'red'")[0][0]  # fmt: skip
    assert len(red) == n_red
    if red:
        a = red[0]
        assert a["area_level"] == "grid" and h3.is_valid_cell(a["cell"])
        r = client.patch(f"/api/alerts/{a['id']}", json={"status": "acknowledged"})
        assert r.status_code == 200 and r.json()["acknowledged_at"]
        r = client.patch(f"/api/alerts/{a['id']}", json={"status": "resolved"})
        assert r.status_code == 200 and r.json()["status"] == "resolved"
        assert (
            client.patch(f"/api/alerts/{a['id']}", json={"status": "acknowledged"}).status_code
            == 409
        )
    assert client.patch("/api/alerts/999999", json={"status": "resolved"}).status_code == 404
    assert client.patch("/api/alerts/1", json={"status": "gone"}).status_code == 422
