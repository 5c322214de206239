"""``/stac`` validated by pystac against the STAC 1.1 core JSON schemas that pystac ships
(no network: the test refuses every Python socket connection), walked through pystac's
object model, and its assets fetched; plus the ``/files`` routes: published PMTiles archives
(range reads, audit, clearance) and paths that must not resolve."""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pystac
import pytest
import rasterio
from fastapi.testclient import TestClient
from pmtiles.tile import deserialize_header
from pyproj import Transformer
from pystac.validation import validate_all_dict, validate_dict

from twin.api.app import create_app
from twin.settings import Settings
from twin.tiles.export import export_pmtiles

from .scope_world import sql

ROOT = "http://testserver/stac"


class ClientIO(pystac.StacIO):
    """pystac reads the catalogue through the test client (and records what it read)."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.read: list[str] = []

    def read_text(self, source: Any, *args: Any, **kwargs: Any) -> str:
        href = str(source)
        assert href.startswith("http://testserver/"), href  # never a schema from the network
        r = self.client.get(href)
        assert r.status_code == 200, (href, r.text)
        self.read.append(href)
        return r.text

    def write_text(self, dest: Any, txt: str, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("read only")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: socket.socket, address: Any) -> None:
        raise AssertionError(f"network access to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)


def flood_runs(settings: Settings) -> set[str]:
    rows = sql(
        settings, "SELECT id FROM twin.sim_run WHERE kind = 'flood' AND status = 'succeeded'"
    )
    return {f"flood-run-{r}" for (r,) in rows
            if (Path(settings.data_dir) / "runs" / str(r) / "max_depth.tif").is_file()}  # fmt: skip


def test_every_object_validates_against_the_core_schemas(
    tiny_client: TestClient, tiny_settings: Settings, offline: None
) -> None:
    stac_io = ClientIO(tiny_client)
    root = tiny_client.get("/stac").json()
    validate_all_dict(root, ROOT, stac_io=stac_io)
    # It walked the whole tree: every collection and every item.
    items = [h for h in stac_io.read if "/items/" in h]
    assert {h.rsplit("/", 1)[-1] for h in items if "/flood-runs/" in h} == flood_runs(tiny_settings)
    assert {h.rsplit("/", 1)[-1] for h in items if "/exports/" in h} == {
        "buildings", "parcels", "roads", "events", "hazard_sites", "admin_areas"}  # fmt: skip
    # The schemas do reject what is not STAC (the validator is not a no-op).
    bad = {**tiny_client.get(items[0].removeprefix("http://testserver")).json(), "assets": []}
    with pytest.raises(pystac.errors.STACValidationError):
        validate_dict(bad)


def test_object_model_walk_and_round_trip(tiny_client: TestClient, offline: None) -> None:
    stac_io = ClientIO(tiny_client)
    cat = pystac.Catalog.from_file(ROOT, stac_io=stac_io)
    children = {c.id: c for c in cat.get_children()}
    assert {"flood-runs", "exports"} <= set(children)
    for coll in children.values():
        assert isinstance(coll, pystac.Collection)
        assert coll.get_root() is not None and coll.get_parent() is not None
        for item in coll.get_items():
            raw = tiny_client.get(item.get_self_href().removeprefix("http://testserver")).json()
            assert item.collection_id == coll.id == raw["collection"]
            assert item.to_dict()["assets"] == raw["assets"]
            assert item.bbox == raw["bbox"] and item.geometry == raw["geometry"]
            assert {lk.rel for lk in item.links} >= {"self", "root", "parent", "collection"}


def test_flood_item_footprint_and_asset_are_the_geotiff(
    tiny_client: TestClient, tiny_settings: Settings
) -> None:
    (run,) = sorted(flood_runs(tiny_settings))[-1:]
    item = tiny_client.get(f"/stac/collections/flood-runs/items/{run}").json()
    asset = item["assets"]["max_depth"]
    assert asset["type"] == "image/tiff; application=geotiff"
    body = tiny_client.get(asset["href"].removeprefix("http://testserver")).content
    path = Path(tiny_settings.data_dir) / "runs" / run.removeprefix("flood-run-") / "max_depth.tif"
    assert body == path.read_bytes()
    with rasterio.open(io.BytesIO(body)) as src:
        b = src.bounds
        to_lonlat = Transformer.from_crs(src.crs.to_wkt(), "OGC:CRS84", always_xy=True)
    xs, ys = to_lonlat.transform(
        [b.left, b.right, b.right, b.left], [b.bottom, b.bottom, b.top, b.top]
    )
    assert item["bbox"] == pytest.approx([min(xs), min(ys), max(xs), max(ys)], abs=1e-4)


@pytest.fixture(scope="module")
def archive(tiny_settings: Settings) -> Iterator[Path]:
    out = Path(tiny_settings.data_dir) / "published" / "city-test.pmtiles"
    out.parent.mkdir(parents=True, exist_ok=True)
    export_pmtiles(tiny_settings, out, layers=["buildings", "roads"], zooms=(13, 13))
    yield out
    out.unlink(missing_ok=True)


def test_a_published_archive_is_listed_served_in_ranges_and_audited(
    tiny_client: TestClient, tiny_settings: Settings, archive: Path
) -> None:
    item = tiny_client.get("/stac/collections/tiles/items/pmtiles-city-test").json()
    href = item["assets"]["pmtiles"]["href"].removeprefix("http://testserver")
    assert item["assets"]["pmtiles"]["type"] == "application/vnd.pmtiles"
    header = deserialize_header(archive.read_bytes()[:127])
    assert item["bbox"] == pytest.approx([header["min_lon_e7"] / 1e7, header["min_lat_e7"] / 1e7,
                                          header["max_lon_e7"] / 1e7, header["max_lat_e7"] / 1e7])  # fmt: skip
    doc = tiny_client.get("/catalog").json()
    (ds,) = [d for d in doc["dataset"] if d["identifier"] == "pmtiles-city-test"]
    assert ds["distribution"][0]["byteSize"] == archive.stat().st_size

    count = "SELECT count(*) FROM twin.audit_log WHERE action = 'file.download' AND resource = %s"
    ((before,),) = sql(tiny_settings, count, ("published/city-test.pmtiles",))
    part = tiny_client.get(href, headers={"Range": "bytes=0-126"})
    assert part.status_code == 206 and deserialize_header(part.content) == header
    whole = tiny_client.get(href)
    assert whole.status_code == 200 and whole.content == archive.read_bytes()
    ((after,),) = sql(tiny_settings, count, ("published/city-test.pmtiles",))
    assert after == before + 1  # the whole download, not the range read


def test_important_archives_are_not_listed_to_the_general_public(
    tiny_settings: Settings, archive: Path
) -> None:
    secret = archive.with_name("events-test.pmtiles")
    export_pmtiles(tiny_settings, secret, layers=["events"], zooms=(13, 13), clearance="important")
    try:
        closed = tiny_settings.model_copy(update={"public_clearance": "general"})
        with TestClient(create_app(closed)) as c:
            ids = {d["identifier"] for d in c.get("/catalog").json()["dataset"]}
            assert "pmtiles-city-test" in ids and "pmtiles-events-test" not in ids
            items = c.get("/stac/collections/tiles").json()["links"]
            assert not any("events-test" in x["href"] for x in items)
            assert c.get("/files/published/events-test.pmtiles").status_code == 401
    finally:
        secret.unlink(missing_ok=True)


@pytest.mark.parametrize(
    "path",
    [
        "/files/published/..%2F..%2Fsecret.pmtiles",
        "/files/published/x.tif",
        "/files/runs/1/..%2F..%2Fcity-build.json",
        "/files/runs/999999/max_depth.tif",
        "/files/rasters/999999",
        "/stac/collections/nothing",
        "/stac/collections/exports/items/nothing",
    ],
)
def test_what_is_not_published_is_404(tiny_client: TestClient, path: str) -> None:
    assert tiny_client.get(path).status_code == 404
