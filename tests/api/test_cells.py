"""/api/cells and /api/addresses through the real app on a demo city."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from twin import grid
from twin.api.app import connection_options, create_app
from twin.city.demo import build_demo
from twin.db.queries import query
from twin.settings import Settings

K = 10


@pytest.fixture(scope="module")
def city(make_database: Callable[..., str], tmp_path_factory: pytest.TempPathFactory) -> str:
    url = make_database("twin_api_cells")
    build_demo(
        Settings(_env_file=None, database_url=url, data_dir=tmp_path_factory.mktemp("api")),
        size="tiny",
        seed=2,
    )
    return url


@pytest.fixture(scope="module")
def client(city: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(_env_file=None, database_url=city, suppression_k=K))) as c:
        yield c


def test_cell_card_matches_the_database(city: str, client: TestClient) -> None:
    with psycopg.connect(city) as c:
        cell, pop, nb, area = c.execute(
            "SELECT cell, population, buildings, area_id FROM twin.cell_stats"
            " WHERE res = 9 AND population >= %s AND cardinality(hidden) = 0"
            " ORDER BY cell LIMIT 1",
            (K,),
        ).fetchone()  # type: ignore[misc]
        patch = c.execute("SELECT name FROM twin.admin_area WHERE id = %s", (area,)).fetchone()
    h = grid.to_hex([cell])[0]
    r = client.get(f"/api/cells/{h}")
    assert r.status_code == 200, r.text
    card = r.json()
    assert card["cell"]["h3"] == h
    assert card["cell"]["population"] == pop
    assert card["cell"]["buildings"] == nb
    assert "population" not in card["cell"]["suppressed"]
    assert [a["level"] for a in card["areas"]] == [
        "grid",
        "community",
        "street",
        "district",
        "city",
    ]
    assert patch is not None and card["areas"][0]["name"] == patch[0]
    assert "person" not in r.text and "home_building_id" not in r.text


def test_small_people_counts_are_suppressed(city: str, client: TestClient) -> None:
    with psycopg.connect(city) as c:
        row = c.execute(
            "SELECT cell, population FROM twin.cell_stats"
            " WHERE res = 10 AND population BETWEEN 1 AND %s ORDER BY cell LIMIT 1",
            (K - 1,),
        ).fetchone()
    assert row is not None, "the tiny city should have a sparsely populated cell"
    card = client.get(f"/api/cells/{grid.to_hex([row[0]])[0]}").json()["cell"]
    assert card["population"] is None
    assert "population" in card["suppressed"]
    assert all(v is None or v == 0 or v >= K for v in card["population_by_age"].values())
    listing = client.get(
        "/api/cells", params={"bbox": "119,29,121,31", "res": 10, "metric": "population"}
    ).json()
    values = {c["h3"]: c["value"] for c in listing["cells"]}
    assert values[grid.to_hex([row[0]])[0]] is None
    assert all(v is None or v == 0 or v >= K for v in values.values())


def test_cells_of_an_area_match_sql(city: str, client: TestClient) -> None:
    bbox = (120.15, 30.26, 120.17, 30.28)
    with psycopg.connect(city) as c:
        expected = dict(
            c.execute(
                "SELECT cell, buildings FROM twin.cell_stats WHERE res = 9 AND"
                " ST_Intersects(geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))",
                bbox,
            ).fetchall()
        )
    r = client.get(
        "/api/cells", params={"bbox": ",".join(map(str, bbox)), "res": 9, "metric": "buildings"}
    )
    assert r.status_code == 200
    got = {c["h3"]: c["value"] for c in r.json()["cells"]}
    assert got == {grid.to_hex([k])[0]: v for k, v in expected.items()}


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/api/cells/not-a-cell", {}, "h3"),
        ("/api/cells", {"bbox": "1,2,3"}, "bbox"),
        ("/api/cells", {"bbox": "3,2,1,4"}, "bbox"),
        ("/api/cells", {"bbox": "1,2,3,4", "res": 11}, "res"),
        ("/api/cells", {"bbox": "1,2,3,4", "metric": "names"}, "metric"),
        ("/api/addresses", {"q": "  "}, "q"),
    ],
)
def test_malformed_requests_get_400(
    client: TestClient, path: str, params: dict[str, object], parameter: str
) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert r.json()["parameter"] == parameter


def test_unknown_cell_is_404(client: TestClient) -> None:
    far = grid.to_hex(grid.points_to_cells([0.0], [0.0], 9))[0]
    assert client.get(f"/api/cells/{far}").status_code == 404


def test_address_search_ignores_how_it_was_typed(city: str, client: TestClient) -> None:
    with psycopg.connect(city) as c:
        text, bid, cell = c.execute(
            "SELECT text, building_id, cell FROM twin.address WHERE (components->>'number')::int = 12"
            " ORDER BY id LIMIT 1"
        ).fetchone()  # type: ignore[misc]
    # Independent variants of the same address: full-width digits, spaces, 號, Chinese numerals.
    variants = [
        text,
        text.replace("12号", "１２号"),
        " ".join(text),
        text.replace("号", "號"),
        text.replace("12号", "十二号"),
        text.replace("12号", "No.12"),
    ]
    for v in variants:
        r = client.get("/api/addresses", params={"q": v})
        assert r.status_code == 200
        hits = r.json()["addresses"]
        assert hits and hits[0]["building_id"] == bid, v
        assert hits[0]["h3"] == grid.to_hex([cell])[0]
    prefix = client.get("/api/addresses", params={"q": text[:-3]}).json()
    assert any(a["building_id"] == bid for a in prefix["addresses"]) or prefix["count"] == 20


def test_api_connections_plan_each_statement_for_its_parameters(city: str) -> None:
    """A prepared bbox query keeps no generic plan on API connections (connection_options):
    the generic plan of the cell list scans the spatial index of every resolution, which took
    the whole city's res-7 list from 1 ms to 130 ms from its sixth request on."""
    box = _city_box(city)
    stmt = query("cells_api.sql", "cells_in_bbox")
    params = {
        "res": 7,
        "limit": 5000,
        **dict(zip(("minx", "miny", "maxx", "maxy"), box, strict=True)),
    }

    def plans(options: str) -> tuple[int, int]:
        with psycopg.connect(city, options=options) as c:
            for _ in range(12):
                c.execute(stmt, params, prepare=True).fetchall()
            row = c.execute(
                "SELECT sum(generic_plans), sum(custom_plans) FROM pg_prepared_statements"
            ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])

    generic, custom = plans(connection_options(Settings(_env_file=None, database_url=city)))
    assert generic == 0 and custom == 12
    # The control: without the setting PostgreSQL does switch to the generic plan.
    assert plans("")[0] > 0


def _city_box(url: str) -> tuple[float, float, float, float]:
    with psycopg.connect(url) as c:
        row = c.execute(
            "SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM"
            " (SELECT ST_Extent(geom) e FROM twin.admin_area WHERE level = 'city') x"
        ).fetchone()
    assert row is not None
    return (float(row[0]), float(row[1]), float(row[2]), float(row[3]))
