"""Tiles of one simulation run (flood depth, flooded roads, traffic), decoded and compared with
direct PostGIS queries on the run's result tables."""

from __future__ import annotations

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.settings import Settings

from .test_tiles import tile_of


def _runs(tiny_settings: Settings) -> dict[str, int]:
    with psycopg.connect(tiny_settings.database_url) as c:
        # The demo's own runs (with results: other tests add runs of their own, some empty).
        rows = c.execute(
            "SELECT kind, max(id) FROM twin.sim_run r WHERE status = 'succeeded'"
            " AND (EXISTS (SELECT 1 FROM twin.flood_cell_result f WHERE f.run_id = r.id)"
            "      OR EXISTS (SELECT 1 FROM twin.traffic_link_result t WHERE t.run_id = r.id))"
            " AND id NOT IN (SELECT baseline_run_id FROM twin.sim_run WHERE baseline_run_id IS NOT NULL)"
            " GROUP BY kind"
        ).fetchall()
    return dict(rows)


def _deepest(tiny_settings: Settings, run: int) -> tuple[float, float]:
    with psycopg.connect(tiny_settings.database_url) as c:
        row = c.execute(
            "SELECT ST_X(ST_Centroid(s.geom)), ST_Y(ST_Centroid(s.geom)) FROM twin.flood_cell_result f"
            " JOIN twin.cell_stats s USING (res, cell) WHERE f.run_id = %s AND f.res = 9"
            " ORDER BY f.max_depth_m DESC LIMIT 1",
            (run,),
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_flood_depth_tile_matches_postgis(tiny_settings: Settings, tiny_client: TestClient) -> None:
    run = _runs(tiny_settings)["flood"]
    z = 14  # resolution 9 at z13-14
    x, y = tile_of(*_deepest(tiny_settings, run), z)
    r = tiny_client.get(f"/tiles/flood_{run}/{z}/{x}/{y}.mvt")
    assert r.status_code == 200, r.text
    feats = mapbox_vector_tile.decode(r.content)[f"flood_{run}"]["features"]
    got = {f["properties"]["h3"]: f["properties"]["max_depth_m"] for f in feats}
    with psycopg.connect(tiny_settings.database_url) as c:
        want = dict(
            c.execute(
                "SELECT twin.h3_to_hex(f.cell), f.max_depth_m FROM twin.flood_cell_result f"
                " JOIN twin.cell_stats s USING (res, cell)"
                " WHERE f.run_id = %s AND f.res = 9 AND f.max_depth_m >= 0.01"
                " AND s.geom_3857 && ST_TileEnvelope(%s, %s, %s, margin => 64.0 / 4096)",
                (run, z, x, y),
            ).fetchall()
        )
    assert want and set(got) == set(want)
    for h3, depth in want.items():
        assert got[h3] == pytest.approx(depth, abs=5e-4)
    assert all(f["properties"]["res"] == 9 for f in feats)


def test_traffic_and_flooded_road_tiles_match_postgis(
    tiny_settings: Settings, tiny_client: TestClient
) -> None:
    runs = _runs(tiny_settings)
    z = 14
    x, y = tile_of(*_deepest(tiny_settings, runs["flood"]), z)
    env = "ST_TileEnvelope(%s, %s, %s, margin => 64.0 / 4096)"
    with psycopg.connect(tiny_settings.database_url) as c:
        traffic = {
            i: (closed, tti)
            for i, closed, tti in c.execute(
                "SELECT r.link_id, r.closed, round(r.tti::numeric, 2)::float8 FROM twin.traffic_link_result r"
                f" JOIN twin.road_link l ON l.id = r.link_id WHERE r.run_id = %s AND l.geom_3857 && {env}",
                (runs["traffic"], z, x, y),
            )
        }
        water = dict(
            c.execute(
                "SELECT f.link_id, f.state FROM twin.flood_link_result f"
                f" JOIN twin.road_link l ON l.id = f.link_id WHERE f.run_id = %s AND l.geom_3857 && {env}",
                (runs["flood"], z, x, y),
            ).fetchall()
        )
    r = tiny_client.get(f"/tiles/traffic_{runs['traffic']}/{z}/{x}/{y}.mvt")
    assert r.status_code == 200
    feats = mapbox_vector_tile.decode(r.content)[f"traffic_{runs['traffic']}"]["features"]
    got = {f["id"]: (f["properties"]["closed"], f["properties"]["tti"]) for f in feats}
    assert got == traffic
    assert {f["properties"]["band"] for f in feats} <= {
        "free-flowing", "slow", "congested", "severely congested"
    }  # fmt: skip
    r = tiny_client.get(f"/tiles/flood_roads_{runs['flood']}/{z}/{x}/{y}.mvt")
    assert r.status_code == 200
    feats = mapbox_vector_tile.decode(r.content)[f"flood_roads_{runs['flood']}"]["features"]
    assert {f["id"]: f["properties"]["state"] for f in feats} == water


def test_run_layers_name_real_runs_of_the_right_kind(
    tiny_settings: Settings, tiny_client: TestClient
) -> None:
    runs = _runs(tiny_settings)
    tj = tiny_client.get(f"/tiles/flood_{runs['flood']}.json")
    assert tj.status_code == 200
    assert tj.json()["tiles"][0].endswith(f"/tiles/flood_{runs['flood']}/{{z}}/{{x}}/{{y}}.mvt")
    assert tiny_client.get(f"/tiles/traffic_{runs['flood']}/14/0/0.mvt").status_code == 404
    assert tiny_client.get(f"/tiles/flood_{runs['traffic']}.json").status_code == 404
    r = tiny_client.get("/tiles/flood_999999/14/0/0.mvt")
    assert r.status_code == 404 and "no flood run 999999" in r.json()["detail"]
    assert tiny_client.get("/tiles/flood_0/14/0/0.mvt").status_code == 404
