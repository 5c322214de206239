"""OGC API Features through the real app, and through a real client (GDAL's OAPIF driver)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import httpx
import psycopg
import pyogrio
import pytest
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.city.demo import build_demo
from twin.settings import Settings


@pytest.fixture(scope="module")
def settings(
    make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    url = make_database("twin_features")
    s = Settings(_env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("feat"))
    build_demo(s, size="tiny", seed=9)
    return s


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.fixture(scope="module")
def live_url(settings: Settings) -> Iterator[str]:
    """`twin serve` on a real port, for clients that speak HTTP themselves (GDAL). A separate
    process: GDAL keeps the GIL while it waits on HTTP, which would starve a server thread."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env.update(TWIN_DATABASE_URL=settings.database_url or "", TWIN_DATA_DIR=str(settings.data_dir))
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_gdal_lists_collections_and_pages_through_items(settings: Settings, live_url: str) -> None:
    layers = {name for name, _ in pyogrio.list_layers(f"OAPIF:{live_url}")}
    # `twin serve` with the secure defaults (no TWIN_ variables passed): the public lists the
    # general collections only; events and hazard sites are important data.
    assert layers == {"buildings", "parcels", "roads", "admin_areas"}
    assert "person" not in layers and "people" not in layers
    # GDAL pages with the next links until the collection is read whole.
    df = pyogrio.read_dataframe(f"OAPIF:{live_url}", layer="buildings")
    with psycopg.connect(settings.database_url) as c:
        n = c.execute("SELECT count(*) FROM twin.building").fetchone()
    assert n is not None and len(df) == n[0] > 100
    assert {"use", "height_m", "floors"} <= set(df.columns)


def test_landing_conformance_and_collection(client: TestClient) -> None:
    rels = {link["rel"] for link in client.get("/").json()["links"]}
    assert {"self", "service-desc", "conformance", "data"} <= rels
    assert (
        "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson"
        in client.get("/conformance").json()["conformsTo"]
    )
    ev = client.get("/collections/events").json()
    assert ev["itemType"] == "feature" and "temporal" in ev["extent"]
    assert client.get("/collections/person").status_code == 404


def test_paging_filters_and_items(settings: Settings, client: TestClient) -> None:
    page = client.get("/collections/buildings/items", params={"limit": 50}).json()
    assert page["numberReturned"] == 50 and page["numberMatched"] > 50
    nxt = next(link["href"] for link in page["links"] if link["rel"] == "next")
    second = client.get(nxt.replace("http://testserver", "")).json()
    assert {f["id"] for f in page["features"]}.isdisjoint({f["id"] for f in second["features"]})
    assert any(link["rel"] == "prev" for link in second["links"])
    with psycopg.connect(settings.database_url) as c:
        n_office = c.execute(
            "SELECT count(*) FROM twin.building WHERE use = 'commercial'"
        ).fetchone()
        n_bbox = c.execute(
            "SELECT count(*) FROM twin.event WHERE ST_Intersects(geom, ST_MakeEnvelope(120.15, 30.26, 120.17, 30.28, 4326))"
            " AND occurred_at >= '2026-10-01T00:00:00Z' AND occurred_at <= '2026-10-31T00:00:00Z'"
        ).fetchone()
        some = c.execute("SELECT id, type FROM twin.event ORDER BY id LIMIT 1").fetchone()
    got = client.get(
        "/collections/buildings/items", params={"use": "commercial", "limit": 1000}
    ).json()
    assert got["numberMatched"] == n_office[0]  # type: ignore[index]
    assert all(f["properties"]["use"] == "commercial" for f in got["features"])
    ev = client.get(
        "/collections/events/items",
        params={
            "bbox": "120.15,30.26,120.17,30.28",
            "datetime": "2026-10-01T00:00:00Z/2026-10-31T00:00:00Z",
        },
    ).json()
    assert ev["numberMatched"] == n_bbox[0]  # type: ignore[index]
    one = client.get(f"/collections/events/items/{some[0]}")  # type: ignore[index]
    assert one.status_code == 200 and one.headers["content-type"] == "application/geo+json"
    assert one.json()["properties"]["type"] == some[1]  # type: ignore[index]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/collections/buildings/items", {"bbox": "1,2"}, 400),
        ("/collections/buildings/items", {"datetime": "2026-01-01"}, 400),  # buildings have no time
        ("/collections/events/items", {"datetime": "yesterday"}, 400),
        ("/collections/buildings/items", {"colour": "red"}, 400),
        ("/collections/buildings/items", {"limit": 0}, 422),
        ("/collections/buildings/items/abc", {}, 404),
        ("/collections/buildings/items/999999999", {}, 404),
        ("/collections/buildings/items", {"f": "html"}, 400),
    ],
)
def test_bad_requests_are_4xx(
    client: TestClient, path: str, params: dict[str, object], status: int
) -> None:
    assert client.get(path, params=params).status_code == status
