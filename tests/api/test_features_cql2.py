"""CQL2 filters on the OGC API Features through the real app, and through a real client: GDAL's
OAPIF driver turns an attribute filter (``-where``) into a CQL2 ``filter=`` when the server
advertises Part 3, and must read the right rows."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import httpx
import mapbox_vector_tile
import psycopg
import pyogrio
import pytest
from fastapi.testclient import TestClient

from tests.test_cql2 import TABLE, fuzz_filters
from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.settings import Settings
from twin.tiles.catalog import LAYERS

from .test_tiles import tile_of


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_features_cql2")
    s = Settings(
        _env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("fcql2"),
        public_clearance="important",  # events and hazard sites too, without a token
    )  # fmt: skip
    build_demo(s, size="tiny", seed=9)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _hand(settings: Settings, table: str, cond: str) -> set[int]:
    with psycopg.connect(settings.database_url) as c:
        return {r[0] for r in c.execute(f"SELECT id FROM twin.{table} WHERE {cond}").fetchall()}


def test_filter_table_through_the_api(settings: Settings, client: TestClient) -> None:
    for coll, flt, lang, hand in TABLE:
        text = flt if isinstance(flt, str) else json.dumps(flt)
        r = client.get(f"/collections/{coll}/items",
                       params={"filter": text, "filter-lang": lang, "limit": 10_000})  # fmt: skip
        assert r.status_code == 200, (coll, flt, r.text)
        got = {int(f["id"]) for f in r.json()["features"]}
        assert got == _hand(settings, LAYERS[coll].table, hand), (coll, flt)
        assert r.json()["numberMatched"] == len(got)


def test_filter_with_bbox_equality_and_paging(settings: Settings, client: TestClient) -> None:
    params = {"filter": "height_m > 10 AND use LIKE 'res%'", "use": "residential", "limit": 50,
              "bbox": "120.150,30.260,120.170,30.280"}  # fmt: skip
    seen: list[int] = []
    page = client.get("/collections/buildings/items", params=params).json()
    while True:
        seen += [int(f["id"]) for f in page["features"]]
        nxt = [link["href"] for link in page["links"] if link["rel"] == "next"]
        if not nxt:
            break
        page = client.get(nxt[0]).json()
        if nxt:  # the next link carries the filter, URL-encoded
            assert parse_qs(urlparse(nxt[0]).query)["filter"] == [
                "height_m > 10 AND use LIKE 'res%'"
            ]
    want = _hand(settings, "building", "height_m > 10 AND use = 'residential' AND ST_Intersects("
                 "geom, ST_MakeEnvelope(120.150, 30.260, 120.170, 30.280, 4326))")  # fmt: skip
    assert len(seen) == len(set(seen)) and set(seen) == want and len(want) > 50


@pytest.mark.parametrize(
    ("coll", "params", "says"),
    [
        ("buildings", {"filter": "height_m >"}, "filter: not cql2-text"),
        ("buildings", {"filter": "nope = 1"}, "'nope' is not a queryable"),
        ("buildings", {"filter": "clearance_m < 1"}, "'clearance_m' is not a queryable"),
        ("events", {"filter": "description LIKE '%'"}, "'description' is not a queryable"),
        ("events", {"filter": "severity = 'high'"}, "property 'severity' is a number"),
        ("events", {"filter": "T_AFTER(type, DATE('2026-01-01'))"}, "takes a time property"),
        ("roads", {"filter": "bridge = 1"}, "property 'bridge' is a boolean"),
        ("roads", {"filter": "lanes = 1", "filter-lang": "ecql"}, "filter-lang"),
        ("roads", {"filter": "{", "filter-lang": "cql2-json"}, "not JSON"),
        ("roads", {"filter": "lanes = 1", "filter-crs": "EPSG:4490"}, "filter-crs"),
        ("roads", {"filter-lang": "cql2-text2"}, "filter-lang"),
    ],
)
def test_bad_filters_are_400_naming_what_is_wrong(
    client: TestClient, coll: str, params: dict[str, str], says: str
) -> None:
    r = client.get(f"/collections/{coll}/items", params=params)
    assert r.status_code == 400, r.text
    assert says in json.dumps(r.json()), r.json()


def test_queryables_and_conformance(client: TestClient) -> None:
    r = client.get("/collections/events/queryables")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/schema+json")
    body = r.json()
    assert body["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert body["$id"].endswith("/collections/events/queryables")
    assert set(body["properties"]) == {"geometry", *LAYERS["events"].props}
    assert client.get("/collections/people/queryables").status_code == 404
    links = client.get("/collections/buildings").json()["links"]
    assert any(link["rel"].endswith("/queryables") for link in links)
    conf = set(client.get("/conformance").json()["conformsTo"])
    assert {
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
        "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
        "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    } <= conf


def test_fuzzed_filters_never_5xx(client: TestClient) -> None:
    statuses: dict[int, int] = {}
    for coll, text, lang in fuzz_filters(300, seed=11):
        r = client.get(f"/collections/{coll}/items",
                       params={"filter": text, "filter-lang": lang, "limit": 1})  # fmt: skip
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, (coll, text, r.text)
    assert statuses.get(400, 0) > 100 and statuses.get(200, 0) > 10, statuses


@pytest.fixture(scope="module")
def live(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """`twin serve` on a real port (GDAL speaks HTTP itself), its access log kept."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tmp_path_factory.mktemp("live") / "access.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=settings.database_url or "", TWIN_DATA_DIR=str(settings.data_dir))
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "twin", "serve", "--port", str(port), "--log-level", "info"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield url, log
    finally:
        proc.terminate()
        proc.wait(10)


def test_gdal_oapif_where_reads_the_right_rows(settings: Settings, live: tuple[str, Path]) -> None:
    url, log = live
    df = pyogrio.read_dataframe(
        f"OAPIF:{url}", layer="buildings", where="height_m > 30 AND use = 'residential'"
    )
    want = _hand(settings, "building", "height_m > 30 AND use = 'residential'")
    assert len(want) > 5 and len(df) == len(want)
    assert set(df["use"]) == {"residential"} and (df["height_m"] > 30).all()
    # GDAL sent the filter to the server: it found filter-lang in the OpenAPI document and the
    # properties in the queryables, and did not filter 768 buildings itself.
    text = log.read_text()
    assert "GET /collections/buildings/queryables" in text
    assert "GET /collections/buildings/items?limit=1000&filter=" in text, text[-2000:]


def _tile_ids(r: httpx.Response, layer: str) -> set[int]:
    if r.status_code == 204:
        return set()
    assert r.status_code == 200, r.text
    return {int(f["id"]) for f in mapbox_vector_tile.decode(r.content)[layer]["features"]}


def test_tiles_take_the_filter_with_their_own_cache_key(
    settings: Settings, client: TestClient
) -> None:
    z = 14
    x, y = tile_of(120.16, 30.27, z)
    path = f"/tiles/buildings/{z}/{x}/{y}.mvt"
    flt = {"filter": "height_m > 30 AND use = 'residential'"}
    # Filtered first, then plain, then filtered again: each answer is its own, from any cache.
    filtered = client.get(path, params=flt)
    plain = client.get(path)
    again = client.get(path, params=flt)
    every, some = _tile_ids(plain, "buildings"), _tile_ids(filtered, "buildings")
    assert _tile_ids(again, "buildings") == some
    assert filtered.headers["etag"] != plain.headers["etag"]
    assert filtered.headers["etag"] == again.headers["etag"]
    # The tile's features that pass the filter are exactly the filtered tile's.
    want = _hand(settings, "building", "height_m > 30 AND use = 'residential'")
    assert some == every & want and 0 < len(some) < len(every)
    # Another filter, another tile; a revalidation with the plain ETag is no 304 for it.
    other = client.get(path, params={"filter": "floors < 3"})
    assert _tile_ids(other, "buildings") == every & _hand(settings, "building", "floors < 3")
    r = client.get(path, params=flt, headers={"If-None-Match": plain.headers["etag"]})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "says"),
    [
        ("/tiles/buildings/14/0/0.mvt", {"filter": "nope = 1"}, "'nope' is not a queryable"),
        ("/tiles/buildings/14/0/0.mvt", {"filter": "height_m >"}, "filter"),
        ("/tiles/cells/14/0/0.mvt", {"filter": "res = 9"}, "takes no filter"),
        ("/tiles/roads/14/0/0.mvt", {"filter": "x = 1", "filter-lang": "sql"}, "filter-lang"),
    ],
)
def test_tile_filter_errors_are_400(
    client: TestClient, path: str, params: dict[str, str], says: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert says in json.dumps(r.json())
