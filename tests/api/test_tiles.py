"""Vector tiles: decoded and compared with PostGIS, invalidated by ingests, cached, negotiated."""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import geopandas as gpd
import mapbox_vector_tile
import psycopg
import pytest
import shapely
from fastapi.testclient import TestClient

from tests.services import binary, free_port, serving
from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.ingest.layers import Fields
from twin.ingest.vector import ingest_vector
from twin.settings import Settings

K = 10
LON, LAT = 120.16, 30.27


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """Slippy-map tile numbers (the standard formula, independent of the server)."""
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_tiles")
    s = Settings(
        _env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("tiles"), suppression_k=K
    )
    build_demo(s, size="tiny", seed=6)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _decode(r) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return mapbox_vector_tile.decode(r.content)


def test_building_tile_matches_postgis(settings: Settings, client: TestClient) -> None:
    z = 16
    x, y = tile_of(LON, LAT, z)
    r = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    feats = _decode(r)["buildings"]["features"]
    got = {f["id"]: f["properties"] for f in feats}
    with psycopg.connect(settings.database_url) as c:
        inner = c.execute(
            "SELECT id, use, height_m, floors FROM twin.building"
            " WHERE ST_Intersects(geom_3857, ST_TileEnvelope(%s, %s, %s))",
            (z, x, y),
        ).fetchall()
        buffered = {
            r[0]
            for r in c.execute(
                "SELECT id FROM twin.building WHERE geom_3857 && ST_TileEnvelope(%s, %s, %s, margin => 64.0 / 4096)",
                (z, x, y),
            )
        }
    assert inner, "the test tile should hold buildings"
    assert {i for i, *_ in inner} <= set(got) <= buffered
    for i, use, height, floors in inner:
        assert got[i]["use"] == use
        assert got[i]["height_m"] == pytest.approx(height)
        assert got[i]["floors"] == floors


def test_building_geometry_matches_postgis_mvt_geometry(
    settings: Settings, client: TestClient
) -> None:
    """Buildings go into tiles unclipped and without ST_AsMVTGeom: each footprint inside the
    tile must still decode to the polygon PostGIS's own ST_AsMVTGeom makes of it, with the same
    ring orientation (MVT tells exterior rings from holes by it)."""
    z = 17
    x, y = tile_of(LON, LAT, z)
    ours = {
        f["id"]: shapely.geometry.shape(f["geometry"])
        for f in _decode(client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt"))["buildings"]["features"]
    }
    with psycopg.connect(settings.database_url) as c:
        row = c.execute(
            "SELECT ST_AsMVT(q, 'buildings', 4096, 'geom', 'fid') FROM (SELECT id AS fid,"
            " ST_AsMVTGeom(geom_3857, ST_TileEnvelope(%(z)s, %(x)s, %(y)s), 4096, 64, true) AS geom"
            " FROM twin.building WHERE ST_Within(geom_3857, ST_TileEnvelope(%(z)s, %(x)s, %(y)s))"
            ") q",
            {"z": z, "x": x, "y": y},
        ).fetchone()
    assert row is not None and row[0]
    ref = {
        f["id"]: shapely.geometry.shape(f["geometry"])
        for f in mapbox_vector_tile.decode(bytes(row[0]))["buildings"]["features"]
    }
    assert ref, "the test tile should hold whole buildings"
    for fid, want in ref.items():
        got = ours[fid]
        assert got.geom_type == want.geom_type == "Polygon", fid
        assert got.exterior.is_ccw == want.exterior.is_ccw, fid
        assert got.symmetric_difference(want).area <= 0.5, fid  # tile units², within snapping


def test_a_sliver_footprint_stays_valid_in_tiles(settings: Settings, client: TestClient) -> None:
    """Snapping to the tile grid can make a footprint with a notch narrower than a grid unit
    invalid: such footprints (minimum clearance below the snapping move) still go through
    ST_AsMVTGeom, so every decoded building polygon is valid."""
    z = 14
    x, y = tile_of(LON, LAT, z)
    u = 2 * 20037508.342789244 / 2**z / 4096  # one extent unit (m, EPSG:3857): 0.6 m
    # Placed at the tile's centre (a grid point), a notch 0.6 units wide on a grid line snaps
    # to a spike: its three vertices land on one grid column.
    a, b, c, top = 15.7 * u, 16 * u, 16.3 * u, 32 * u
    notched = f"POLYGON((0 0,{top} 0,{top} {top},{c} {top},{b} {u},{a} {top},0 {top},0 0))"
    with psycopg.connect(settings.database_url, autocommit=True) as c:
        row = c.execute(
            "INSERT INTO twin.building (use, geom) SELECT 'residential', ST_Multi(ST_Transform("
            " ST_Translate(ST_SetSRID(%s::geometry, 3857), ST_X(p), ST_Y(p)), 4326))"
            " FROM ST_Centroid(ST_TileEnvelope(%s, %s, %s)) p RETURNING id, clearance_m",
            (notched, z, x, y),
        ).fetchone()
        c.execute("UPDATE twin.layer_version SET version = version + 1 WHERE layer = 'building'")
    assert row is not None
    bid, clearance = row
    try:
        assert clearance < math.sqrt(2) * u  # below the snapping move: the ST_AsMVTGeom path
        feats = _decode(client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt"))["buildings"]["features"]
        shapes = {f["id"]: shapely.geometry.shape(f["geometry"]) for f in feats}
        assert bid in shapes
        invalid = [i for i, g in shapes.items() if not g.is_valid]
        assert not invalid, invalid
    finally:
        with psycopg.connect(settings.database_url, autocommit=True) as c:
            c.execute("DELETE FROM twin.building WHERE id = %s", (bid,))
            c.execute(
                "UPDATE twin.layer_version SET version = version + 1 WHERE layer = 'building'"
            )


def test_cell_tile_carries_suppressed_statistics(settings: Settings, client: TestClient) -> None:
    z = 14  # resolution 9
    x, y = tile_of(LON, LAT, z)
    feats = _decode(client.get(f"/tiles/cells/{z}/{x}/{y}.mvt"))["cells"]["features"]
    with psycopg.connect(settings.database_url) as c:
        rows = {
            cell: (pop, marked)
            for cell, pop, marked in c.execute(
                "SELECT cell, population, 'population' = ANY(hidden) FROM twin.cell_stats"
                " WHERE res = 9 AND ST_Intersects(geom_3857, ST_TileEnvelope(%s, %s, %s))",
                (z, x, y),
            ).fetchall()
        }
    assert rows
    got = {f["id"]: f["properties"] for f in feats}
    assert set(rows) <= set(got)
    for cell, (pop, marked) in rows.items():
        assert got[cell]["res"] == 9
        assert got[cell]["h3"] == format(cell, "x")
        # Below k, or marked by complementary suppression (tests/api/test_suppression.py).
        if 1 <= pop < K or marked:
            assert "population" not in got[cell]  # NULL properties are left out of MVT
        else:
            assert got[cell]["population"] == pop


def test_roads_generalise_by_zoom(client: TestClient) -> None:
    x, y = tile_of(LON, LAT, 11)
    classes = {
        f["properties"]["road_class"]
        for f in _decode(client.get(f"/tiles/roads/11/{x}/{y}.mvt"))["roads"]["features"]
    }
    assert classes and classes <= {"motorway", "expressway", "trunk", "primary"}
    # At z10 only the through roads (the primary roads of a big city fill a tile).
    x, y = tile_of(LON, LAT, 10)
    overview = {
        f["properties"]["road_class"]
        for f in _decode(client.get(f"/tiles/roads/10/{x}/{y}.mvt")).get("roads", {"features": []})[
            "features"
        ]
    }
    assert overview <= {"motorway", "expressway", "trunk"}


def test_ingest_invalidates_the_tile_without_restart(
    settings: Settings, client: TestClient, tmp_path: Path
) -> None:
    z = 16
    x, y = tile_of(LON, LAT, z)
    first = client.get(f"/tiles/buildings/{z}/{x}/{y}.mvt")
    assert first.status_code == 200
    again = client.get(
        f"/tiles/buildings/{z}/{x}/{y}.mvt", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    box = shapely.box(LON, LAT, LON + 0.0001, LAT + 0.0001)
    path = tmp_path / "new.geojson"
    gpd.GeoDataFrame({"bid": ["new-1"], "height": [99.0]}, geometry=[box], crs="EPSG:4326").to_file(
        path
    )
    ingest_vector("buildings", path, settings, fields=Fields(id="bid", height="height"))
    with psycopg.connect(settings.database_url) as c:
        new_id = c.execute("SELECT id FROM twin.building WHERE source_id = 'new-1'").fetchone()
    after = client.get(
        f"/tiles/buildings/{z}/{x}/{y}.mvt", headers={"If-None-Match": first.headers["etag"]}
    )
    assert after.status_code == 200  # the old ETag no longer matches
    assert after.headers["etag"] != first.headers["etag"]
    ids = {f["id"]: f["properties"] for f in _decode(after)["buildings"]["features"]}
    assert new_id is not None and ids[new_id[0]]["height_m"] == 99.0


def test_gzip_round_trip(client: TestClient) -> None:
    x, y = tile_of(LON, LAT, 15)
    plain = client.get(f"/tiles/parcels/15/{x}/{y}.mvt", headers={"Accept-Encoding": "identity"})
    zipped = client.get(f"/tiles/parcels/15/{x}/{y}.mvt", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in plain.headers
    assert zipped.headers["content-encoding"] == "gzip"
    # The test client decodes gzip transparently: the two bodies must be the same tile.
    assert zipped.content == plain.content
    assert mapbox_vector_tile.decode(gzip.decompress(gzip.compress(plain.content)))["parcels"][
        "features"
    ]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/tiles/buildings/10/853/421.mvt", 204),  # below the layer's minzoom
        ("/tiles/buildings/16/0/0.mvt", 204),  # empty (no data there)
        ("/tiles/buildings/3/9/1.mvt", 400),  # x out of range
        ("/tiles/buildings/30/1/1.mvt", 400),  # zoom out of range
        ("/tiles/nothing/15/1/1.mvt", 404),
    ],
)
def test_edge_tiles_are_never_500(client: TestClient, path: str, status: int) -> None:
    assert client.get(path).status_code == status


def test_tilejson_and_style(client: TestClient) -> None:
    tj = client.get("/tiles/buildings.json").json()
    assert tj["tilejson"] == "3.0.0"
    assert tj["tiles"][0].endswith("/tiles/buildings/{z}/{x}/{y}.mvt")
    assert (
        tj["vector_layers"][0]["id"] == "buildings"
        and "height_m" in tj["vector_layers"][0]["fields"]
    )
    b = tj["bounds"]
    assert b[0] < LON < b[2] and b[1] < LAT < b[3]
    style = client.get("/tiles/style.json").json()
    assert style["version"] == 8
    assert all(src["url"].startswith("http") for src in style["sources"].values())
    assert {lyr["source"] for lyr in style["layers"] if "source" in lyr} <= set(style["sources"])


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A private Redis on a free port (no persistence), as the tests own their PostGIS."""
    port = free_port()
    argv = [binary("redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no"]  # fmt: skip
    with serving(argv, port):
        yield f"redis://127.0.0.1:{port}/0"


def test_redis_second_level_cache(settings: Settings, redis_url: str) -> None:
    s = settings.model_copy(update={"redis_url": redis_url, "tile_cache_mb": 0})
    x, y = tile_of(LON, LAT, 15)
    with TestClient(create_app(s)) as c:
        a = c.get(f"/tiles/buildings/15/{x}/{y}.mvt")
        cache = c.app.state.tiles  # type: ignore[attr-defined]
        hits = cache.hits
        b = c.get(f"/tiles/buildings/15/{x}/{y}.mvt")
        assert cache.hits == hits + 1  # served from Redis: the in-process LRU holds nothing
    assert a.content == b.content


def test_public_tiles_are_read_as_the_anonymous_caller(client: TestClient) -> None:
    """The public pool's connections are fixed at connect to the API role and the public's
    scope and actor (no per-request transaction sets them), without parallel query."""

    async def who() -> tuple[str, ...]:
        pool = client.app.state.public_pool  # type: ignore[attr-defined]
        async with pool.connection() as conn:
            cur = await conn.execute(
                "SELECT current_user, current_setting('twin.scope'),"
                " current_setting('twin.actor'), current_setting('max_parallel_workers_per_gather')"
            )
            return tuple(await cur.fetchone())

    assert client.portal.call(who) == ("twin_api", "*", "anonymous", "0")  # type: ignore[union-attr]
