"""Data classification: every table is labelled, and the label decides who reads it.

Run on the shared tiny twin with the secure defaults (nothing opened to callers without a
token, aggregates only): the expectations follow the labels written in the issue (events,
hazard sites, tasks and alerts are important; people-based layers are core), checked against
the database itself where a count is involved.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import mapbox_vector_tile
import psycopg
import pytest
from fastapi.testclient import TestClient

from twin.access.classification import TABLES
from twin.access.tokens import add_user
from twin.api.app import create_app
from twin.settings import Settings

from .test_tiles import tile_of

SECURE = {"open_simulations": False, "open_operations": False, "public_clearance": "general"}


@pytest.fixture(scope="module")
def secure(tiny_settings: Settings) -> Settings:
    return tiny_settings.model_copy(update=SECURE)


@pytest.fixture(scope="module")
def tokens(secure: Settings) -> dict[str, str]:
    out = {}
    with psycopg.connect(secure.database_url) as c:
        for role in ("viewer", "analyst"):
            _, out[role] = add_user(c, f"class-{role}", role)
        c.commit()
    return out


@pytest.fixture(scope="module")
def client(secure: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(secure)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def event_cell(secure: Settings) -> dict[str, Any]:
    """A cell with open events, its count from cell_stats, and a tile holding one event."""
    with psycopg.connect(secure.database_url) as c:
        row = c.execute(
            "SELECT twin.h3_to_hex(s.cell), s.events_open, ST_X(e.geom), ST_Y(e.geom)"
            " FROM twin.cell_stats s JOIN twin.event e"
            "   ON twin.h3_parent(e.cell, 9) = s.cell AND e.status <> 'closed'"
            " WHERE s.res = 9 ORDER BY s.events_open DESC, s.cell LIMIT 1"
        ).fetchone()
    assert row is not None, "the tiny demo has open events"
    return {"h3": row[0], "events_open": row[1], "lon": row[2], "lat": row[3]}


def test_every_table_has_a_label(secure: Settings) -> None:
    with psycopg.connect(secure.database_url) as c:
        tables = {r[0] for r in c.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'twin'"
            " AND table_name <> 'alembic_version'"
        )}  # fmt: skip
    assert tables == set(TABLES)
    assert TABLES["person"] == TABLES["audit_log"] == TABLES["app_user"] == "core"
    assert {TABLES[t] for t in ("event", "hazard_site", "task", "alert")} == {"important"}


def test_the_public_gets_aggregates_only(client: TestClient, event_cell: dict[str, Any]) -> None:
    ids = {c["id"] for c in client.get("/collections").json()["collections"]}
    assert "buildings" in ids and "events" not in ids and "hazard_sites" not in ids
    for path in ("/collections/events", "/collections/events/items", "/collections/events/items/1",
                 "/tiles/events.json", "/tiles/hazard_sites.json", "/api/alerts", "/api/tasks",
                 "/api/alerts/rules"):  # fmt: skip
        r = client.get(path)
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert "important data" in r.json()["detail"]
    x, y = tile_of(event_cell["lon"], event_cell["lat"], 15)
    assert client.get(f"/tiles/events/15/{x}/{y}.mvt").status_code == 401
    # General data stays open.
    assert client.get("/collections/buildings/items?limit=2").status_code == 200
    assert client.get(f"/tiles/buildings/15/{x}/{y}.mvt").status_code in (200, 204)
    # The cell card keeps the count of open events (an aggregate) but not the events.
    card = client.get(f"/api/cells/{event_cell['h3']}").json()
    assert card["cell"]["events_open"] == event_cell["events_open"] > 0
    assert card["open_events"] == [] and card["hazard_sites"] == [] and card["tasks"]["tasks"] == []
    assert card["withheld"] == ["open_events", "hazard_sites", "tasks"]


def test_the_public_may_not_act(client: TestClient) -> None:
    assert client.post("/api/simulations/flood", json={"duration_min": 10}).status_code == 403
    assert client.post("/api/tasks", json={"title": "x", "area": 1}).status_code == 401
    me = client.get("/api/me").json()
    assert me["clearance"] == "general"
    assert (me["can_run_simulations"], me["can_operate"]) == (False, False)


def test_a_viewer_reads_important_data(
    client: TestClient, tokens: dict[str, str], event_cell: dict[str, Any]
) -> None:
    h = bearer(tokens["viewer"])
    ids = {c["id"] for c in client.get("/collections", headers=h).json()["collections"]}
    assert {"events", "hazard_sites"} <= ids
    items = client.get("/collections/events/items?limit=5", headers=h)
    assert items.status_code == 200 and items.json()["numberReturned"] > 0
    x, y = tile_of(event_cell["lon"], event_cell["lat"], 15)
    tile = client.get(f"/tiles/events/15/{x}/{y}.mvt", headers=h)
    assert tile.status_code == 200 and mapbox_vector_tile.decode(tile.content)["events"]["features"]
    card = client.get(f"/api/cells/{event_cell['h3']}", headers=h).json()
    assert card["withheld"] == [] and len(card["open_events"]) > 0
    assert client.get("/api/alerts", headers=h).status_code == 200
    assert client.get("/api/me", headers=h).json()["clearance"] == "important"


def test_core_layers_need_core_clearance(client: TestClient, tokens: dict[str, str]) -> None:
    core = [lyr["id"] for lyr in client.get("/api/layers", headers=bearer(tokens["analyst"]))
            .json()["layers"] if lyr["classification"] == "core"]  # fmt: skip
    assert core, "the catalog has a core layer (elderly living alone)"
    public = {lyr["id"] for lyr in client.get("/api/layers").json()["layers"]}
    viewer = {lyr["id"] for lyr in client.get("/api/layers", headers=bearer(tokens["viewer"]))
              .json()["layers"]}  # fmt: skip
    assert not set(core) & (public | viewer)
    layer = core[0]
    assert client.get(f"/api/risk?layer={layer}").status_code == 401
    assert (
        client.get(f"/api/risk?layer={layer}", headers=bearer(tokens["viewer"])).status_code == 403
    )
    assert client.get(f"/tiles/risk_{layer}.json").status_code == 401
    ok = client.get(f"/api/risk?layer={layer}", headers=bearer(tokens["analyst"]))
    assert ok.status_code == 200, ok.text


def test_a_deployment_may_open_important_data(tiny_settings: Settings) -> None:
    opened = tiny_settings.model_copy(update={**SECURE, "public_clearance": "important"})
    with TestClient(create_app(opened)) as c:
        assert c.get("/collections/events/items?limit=1").status_code == 200
        assert c.get("/api/alerts").status_code == 200
        assert c.post("/api/simulations/flood", json={"duration_min": 10}).status_code == 403
