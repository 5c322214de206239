"""The schema holds real data: geometry round trips, generated 3857 copies, constraints, indexes."""

from __future__ import annotations

import json

import psycopg
import pytest
import shapely
from pyproj import Transformer
from shapely import wkb

FOOTPRINT = shapely.MultiPolygon(
    [
        shapely.Polygon(
            [(120.1601, 30.2701), (120.1605, 30.2701), (120.1605, 30.2704), (120.1601, 30.2704)]
        )
    ]
)


def _insert_building(
    conn: psycopg.Connection, geom: shapely.Geometry = FOOTPRINT, **extra: object
) -> int:
    cols = {"use": "residential", "height_m": 45.0, "floors": 15, **extra}
    names = ", ".join(cols)
    marks = ", ".join(["%s"] * len(cols))
    row = conn.execute(
        f"INSERT INTO twin.building ({names}, geom)"
        f" VALUES ({marks}, ST_GeomFromWKB(%s, 4326)) RETURNING id",
        [*cols.values(), geom.wkb],
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_building_round_trip_with_its_3857_copy(conn: psycopg.Connection) -> None:
    bid = _insert_building(conn, attrs=json.dumps({"note": "test"}))
    row = conn.execute(
        "SELECT ST_AsBinary(geom), ST_SRID(geom), ST_AsBinary(geom_3857), ST_SRID(geom_3857),"
        " height_m, floors, use, attrs FROM twin.building WHERE id = %s",
        (bid,),
    ).fetchone()
    assert row is not None
    g4326, srid, g3857, srid3857, height, floors, use, attrs = row
    assert srid == 4326 and srid3857 == 3857
    assert shapely.equals_exact(wkb.loads(bytes(g4326)), FOOTPRINT, tolerance=0)
    # The copy is Web Mercator computed by pyproj, independently of PostGIS.
    merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    expected = shapely.transform(FOOTPRINT, lambda x, y: merc.transform(x, y), interleaved=False)
    assert shapely.equals_exact(wkb.loads(bytes(g3857)), expected, tolerance=1e-6)
    assert (height, floors, use, attrs) == (45.0, 15, "residential", {"note": "test"})

    # The copy follows updates of the canonical column.
    moved = shapely.affinity.translate(FOOTPRINT, xoff=0.01)
    conn.execute(
        "UPDATE twin.building SET geom = ST_GeomFromWKB(%s, 4326) WHERE id = %s", (moved.wkb, bid)
    )
    x = conn.execute(
        "SELECT ST_XMin(geom_3857) FROM twin.building WHERE id = %s", (bid,)
    ).fetchone()
    assert x is not None
    assert x[0] == pytest.approx(merc.transform(120.1701, 30.2701)[0], abs=1e-6)


def test_spatial_query_uses_the_index(conn: psycopg.Connection) -> None:
    # Enough rows that the planner prefers the index on its own (no enable_seqscan games).
    conn.execute(
        """
        INSERT INTO twin.building (use, height_m, floors, geom)
        SELECT 'residential', 10, 3,
               ST_Multi(ST_MakeEnvelope(x, y, x + 0.0002, y + 0.0002, 4326))
        FROM generate_series(0, 99) i, generate_series(0, 99) j,
             LATERAL (SELECT 120.0 + i * 0.001 AS x, 30.0 + j * 0.001 AS y) p
        """
    )
    conn.execute("ANALYZE twin.building")
    for column, srid, box in (
        (
            "geom_3857",
            3857,
            "ST_Transform(ST_MakeEnvelope(120.01, 30.01, 120.012, 30.012, 4326), 3857)",
        ),
        ("geom", 4326, "ST_MakeEnvelope(120.01, 30.01, 120.012, 30.012, 4326)"),
    ):
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                f"EXPLAIN SELECT id FROM twin.building WHERE {column} && {box}"
            ).fetchall()
        )
        assert f"ix_building_{column}" in plan, plan
        count = conn.execute(
            f"SELECT count(*) FROM twin.building WHERE {column} && {box}"
        ).fetchone()
        # Boxes at x = 120.0 + i*0.001 (width 0.0002) touch [120.01, 120.012] for i = 10, 11, 12.
        assert count is not None and count[0] == 9, srid


@pytest.mark.parametrize(
    ("table", "sql", "params"),
    [
        (
            "parcel",
            "INSERT INTO twin.parcel (land_use, geom) VALUES ('X', ST_GeomFromText("
            "'MULTIPOLYGON(((0 0,1 0,1 1,0 0)))', 4326))",
            (),
        ),
        (
            "building",
            "INSERT INTO twin.building (use, height_m, geom) VALUES ('residential', -3, "
            "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))', 4326))",
            (),
        ),
        (
            "admin_area",
            "INSERT INTO twin.admin_area (level, code, name, geom) VALUES ('country', 'c', 'c', "
            "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))', 4326))",
            (),
        ),
        (
            "building",
            "INSERT INTO twin.building (use, geom) VALUES ('residential', "
            "ST_GeomFromText('MULTIPOLYGON(((0 0,1 0,1 1,0 0)))', 3857))",
            (),
        ),
    ],
)
def test_constraints_refuse_bad_rows(
    conn: psycopg.Connection, table: str, sql: str, params: tuple[object, ...]
) -> None:
    with pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.InvalidParameterValue)):
        conn.execute(sql, params)


def test_sub_classes_of_land_use_are_accepted(conn: psycopg.Connection) -> None:
    conn.execute(
        "INSERT INTO twin.parcel (land_use, geom) VALUES ('R2', ST_GeomFromText("
        "'MULTIPOLYGON(((0 0,1 0,1 1,0 0)))', 4326))"
    )


def test_person_is_marked_sensitive(conn: psycopg.Connection) -> None:
    row = conn.execute("SELECT obj_description('twin.person'::regclass, 'pg_class')").fetchone()
    assert row is not None and "sensitive" in row[0]
