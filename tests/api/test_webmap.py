"""``/map`` and its files (served locally, nothing from a CDN) and the grid worker's cell card
(buildings, risks and the patch's tasks), checked against direct PostGIS queries."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
from fastapi.testclient import TestClient

from twin.api.app import create_app
from twin.settings import Settings


def test_map_page_loads_only_local_files(tiny_client: TestClient) -> None:
    r = tiny_client.get("/map")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/") for ref in refs), refs
    for ref in refs:
        got = tiny_client.get(ref)
        assert got.status_code == 200, ref
        assert (
            "http://" not in got.text[:0]
        )  # fetched from us; content checked below for the script
    script = tiny_client.get("/static/map.js").text
    assert not re.search(r"https?://(?!127\.0\.0\.1)", script), (
        "the map script must not name remote hosts"
    )
    assert tiny_client.get("/favicon.ico").status_code == 200


def test_static_files_refuse_anything_else(tiny_client: TestClient) -> None:
    for path in ("/static/..%2Fmap.html", "/static/nope.js", "/static/vendor/evil.js", "/static/.hidden.css",
                 "/static/map.py"):  # fmt: skip
        assert tiny_client.get(path).status_code == 404, path


def test_map_without_front_end_packages_says_how_to_install(
    tiny_settings: Settings, tmp_path: Path
) -> None:
    bare = tiny_settings.model_copy(update={"web_vendor_dir": tmp_path})
    with TestClient(create_app(bare)) as c:
        r = c.get("/map")
    assert r.status_code == 503 and "make setup" in r.text


def _card_cell(url: str) -> str:
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT twin.h3_to_hex(t.cell) FROM twin.task t WHERE t.cell IS NOT NULL ORDER BY t.id LIMIT 1"
        ).fetchone()
    assert row
    return str(row[0])


def test_card_lists_buildings_risks_and_patch_tasks(
    tiny_settings: Settings, tiny_client: TestClient
) -> None:
    h3 = _card_cell(tiny_settings.database_url)
    card = tiny_client.get(f"/api/cells/{h3}").json()
    with psycopg.connect(tiny_settings.database_url) as c:
        cell = c.execute("SELECT twin.h3_from_hex(%s)", (h3,)).fetchone()[0]  # type: ignore[index]
        buildings = {
            r[0]
            for r in c.execute(
                "SELECT id FROM twin.building WHERE twin.h3_parent(cell, 9) = %s", (cell,)
            )
        }
        risks = dict(
            c.execute(
                "SELECT layer_id, level FROM twin.risk_score WHERE res = 9 AND cell = %s", (cell,)
            ).fetchall()
        )
        patch = c.execute(
            "SELECT a.id FROM twin.cell_stats s JOIN twin.admin_area a ON a.id = s.area_id"
            " WHERE s.res = 9 AND s.cell = %s",
            (cell,),
        ).fetchone()[0]  # type: ignore[index]
        tasks = {
            r[0]
            for r in c.execute(
                "SELECT id FROM twin.task WHERE state NOT IN ('done', 'closed')"
                " AND area_id IN (SELECT twin.area_subtree(%s))",
                (patch,),
            )
        }
    assert {b["id"] for b in card["buildings"]} == buildings
    heights = [b["height_m"] for b in card["buildings"]]
    assert heights == sorted(heights, reverse=True)
    public = {r["layer"]: r["level"] for r in card["risks"]}
    assert public and public.items() <= risks.items()
    assert "elderly_alone" not in public  # an analyst-only layer, hidden from the public
    assert card["tasks"]["area"]["id"] == patch
    assert {t["id"] for t in card["tasks"]["tasks"]} == tasks and tasks
    assert all(t["next_states"] for t in card["tasks"]["tasks"])
    lon, lat = card["center"]
    with psycopg.connect(tiny_settings.database_url) as c:
        inside = c.execute(
            "SELECT ST_Contains(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326)) FROM twin.cell_stats"
            " WHERE res = 9 AND cell = %s",
            (lon, lat, cell),
        ).fetchone()[0]  # type: ignore[index]
    assert inside


def test_active_alerts_carry_a_place_on_the_map(
    tiny_settings: Settings, tiny_client: TestClient
) -> None:
    alerts = tiny_client.get("/api/alerts?status=active&limit=500").json()["alerts"]
    assert alerts
    with psycopg.connect(tiny_settings.database_url) as c:
        for a in alerts[:20]:
            where = (
                (
                    "twin.cell_stats WHERE res = twin.h3_resolution(twin.h3_from_hex(%s)) AND cell = twin.h3_from_hex(%s)",
                    (a["cell"], a["cell"]),
                )
                if a["cell"]
                else ("twin.admin_area WHERE id = %s", (a["area_id"],))
            )
            ok = c.execute(
                f"SELECT ST_DWithin(geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326), 1e-9) FROM {where[0]}",
                (a["lon"], a["lat"], *where[1]),
            ).fetchone()
            assert ok and ok[0], a
