"""Residents partitioned by home district (migration 0023, twin.city.districts) on a real
PostGIS: a partition per district, made with the rows DEFAULT held for it; residents placed by
their home building, else their home cell; a query on one district reads one partition (the
plan, from EXPLAIN); the tiny demo's loader fills the key. Each test runs in a transaction
that is rolled back."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import psycopg

from twin.city import districts


def area(conn: psycopg.Connection, level: str, code: str, parent: int | None = None) -> int:
    row = conn.execute(
        "INSERT INTO twin.admin_area (level, code, name, parent_id, geom) VALUES (%s, %s, %s, %s,"
        " ST_Multi(ST_MakeEnvelope(0, 0, 1, 1, 4326))) RETURNING id",
        (level, code, code, parent),
    ).fetchone()
    assert row is not None
    return int(row[0])


def building(conn: psycopg.Connection, area_id: int) -> int:
    row = conn.execute(
        "INSERT INTO twin.building (use, area_id, geom) VALUES ('residential', %s,"
        " ST_Multi(ST_MakeEnvelope(0.1, 0.1, 0.2, 0.2, 4326))) RETURNING id",
        (area_id,),
    ).fetchone()
    assert row is not None
    return int(row[0])


def person(conn: psycopg.Connection, district: int, home: int | None = None) -> int:
    row = conn.execute(
        "INSERT INTO twin.person (home_building_id, age_band, resident_type, district_id)"
        " VALUES (%s, '25-44', 'registered', %s) RETURNING id",
        (home, district),
    ).fetchone()
    assert row is not None
    return int(row[0])


def where(conn: psycopg.Connection, ident: int) -> str:
    row = conn.execute(
        "SELECT tableoid::regclass::text FROM twin.person WHERE id = %s", (ident,)
    ).fetchone()
    assert row is not None
    return str(row[0])


def city(conn: psycopg.Connection) -> dict[str, int]:
    """A city with two districts, each with a street and a grid patch under it."""
    top = area(conn, "city", "t-city")
    out = {"city": top}
    for k in ("a", "b"):
        d = area(conn, "district", f"t-{k}", top)
        s = area(conn, "street", f"t-{k}-s", d)
        g = area(conn, "grid", f"t-{k}-g", s)
        out |= {k: d, f"{k}_grid": g}
    return out


def relations(plan: Any) -> set[str]:
    """Every relation a JSON plan scans."""
    found: set[str] = set()
    if isinstance(plan, dict):
        if "Relation Name" in plan:
            found.add(plan["Relation Name"])
        for v in plan.values():
            found |= relations(v)
    elif isinstance(plan, list):
        for v in plan:
            found |= relations(v)
    return found


def test_ensure_makes_a_partition_per_district_with_its_rows(conn: psycopg.Connection) -> None:
    c = city(conn)
    early = person(conn, c["a"])  # no partition for district a yet
    assert where(conn, early) == "twin_part.person_default"
    made = districts.ensure(conn)
    assert made[districts.partition_name(c["a"])] == 1
    assert made[districts.partition_name(c["b"])] == 0
    assert where(conn, early) == f"twin_part.{districts.partition_name(c['a'])}"
    assert districts.ensure(conn) == {}
    nobody = person(conn, districts.NO_DISTRICT)
    assert where(conn, nobody) == "twin_part.person_default"


def test_a_gone_district_loses_its_empty_partition(conn: psycopg.Connection) -> None:
    c = city(conn)
    districts.ensure(conn)
    conn.execute("DELETE FROM twin.admin_area WHERE parent_id IN (SELECT id FROM"
                 " twin.admin_area WHERE parent_id = %s)", (c["b"],))  # fmt: skip
    conn.execute("DELETE FROM twin.admin_area WHERE parent_id = %s", (c["b"],))
    conn.execute("DELETE FROM twin.admin_area WHERE id = %s", (c["b"],))
    assert districts.ensure(conn) == {districts.partition_name(c["b"]): -1}


def test_a_district_query_reads_one_partition(conn: psycopg.Connection) -> None:
    c = city(conn)
    districts.ensure(conn)
    for d in (c["a"], c["b"], districts.NO_DISTRICT):
        person(conn, d)
    for d, expected in ((c["a"], districts.partition_name(c["a"])),
                        (c["b"], districts.partition_name(c["b"])),
                        (districts.NO_DISTRICT, districts.DEFAULT)):  # fmt: skip
        row = conn.execute(
            "EXPLAIN (FORMAT JSON) SELECT count(*) FROM twin.person WHERE district_id = %s",
            (d,),
        ).fetchone()
        assert row is not None
        plan = row[0] if not isinstance(row[0], str) else json.loads(row[0])
        assert relations(plan) == {expected}, (d, relations(plan))
    row = conn.execute(
        "EXPLAIN (FORMAT JSON) SELECT count(*) FROM twin.person WHERE district_id IN (%s, %s)",
        (c["a"], c["b"]),
    ).fetchone()
    assert row is not None
    assert len(relations(row[0])) == 2


def test_assign_by_home_building_else_home_cell(conn: psycopg.Connection) -> None:
    c = city(conn)
    home = building(conn, c["a_grid"])
    cell = 0x8928308280FFFFF  # any H3-shaped id: admin_area_cell keys it
    conn.execute(
        "INSERT INTO twin.admin_area_cell (area_id, res, cell, share) VALUES (%s, 9, %s, 0.7),"
        " (%s, 9, %s, 0.3)",
        (c["b_grid"], cell, c["a_grid"], cell),
    )
    got = districts.assign(
        conn,
        np.array([home, None, None, home], dtype=object),
        np.array([None, cell, None, cell], dtype=object),
    )
    assert got.tolist() == [c["a"], c["b"], districts.NO_DISTRICT, c["a"]]


def test_the_demo_loader_fills_the_district(tiny_demo: dict[str, str]) -> None:
    with psycopg.connect(tiny_demo["url"]) as conn:
        wrong = conn.execute(
            "WITH RECURSIVE d(area, district) AS ("
            " SELECT id, id FROM twin.admin_area WHERE level = 'district' UNION ALL"
            " SELECT a.id, d.district FROM twin.admin_area a JOIN d ON a.parent_id = d.area)"
            " SELECT count(*) FILTER (WHERE p.district_id IS DISTINCT FROM d.district),"
            " count(*) FROM twin.person p JOIN twin.building b ON b.id = p.home_building_id"
            " LEFT JOIN d ON d.area = b.area_id"
        ).fetchone()
        assert wrong is not None and wrong[1] > 0 and wrong[0] == 0
        missing = conn.execute(
            "SELECT count(*) FROM twin.admin_area a WHERE a.level = 'district' AND to_regclass("
            "'twin_part.person_d' || a.id) IS NULL"
        ).fetchone()
        assert missing == (0,)
        default = conn.execute("SELECT count(*) FROM twin_part.person_default").fetchone()
        assert default == (0,)
