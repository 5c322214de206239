"""The SQL H3 functions agree with Python (twin.grid) and with the h3 library."""

from __future__ import annotations

import h3
import numpy as np
import psycopg

from twin import grid


def test_sql_parent_agrees_with_python_and_h3(conn: psycopg.Connection) -> None:
    rng = np.random.default_rng(7)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, 30)))
    lon = rng.uniform(-180, 180, 30)
    cells, ress, expected_py, expected_h3 = [], [], [], []
    for child in range(16):
        cc = grid.points_to_cells(lon, lat, child)
        for parent in range(child + 1):
            cells += cc.tolist()
            ress += [parent] * len(cc)
            expected_py += grid.parent(cc, parent).tolist()
            expected_h3 += [int(h3.cell_to_parent(h, parent), 16) for h in grid.to_hex(cc)]
    rows = conn.execute(
        "SELECT twin.h3_parent(c, r), twin.h3_resolution(twin.h3_parent(c, r)) "
        "FROM unnest(%s::bigint[], %s::int[]) WITH ORDINALITY AS t(c, r, n) ORDER BY n",
        (cells, ress),
    ).fetchall()
    got = [r[0] for r in rows]
    assert got == expected_py == expected_h3
    assert [r[1] for r in rows] == ress


def test_sql_parent_is_null_for_a_finer_resolution(conn: psycopg.Connection) -> None:
    cell = int(grid.points_to_cells([120.16], [30.27], 7)[0])
    row = conn.execute(
        "SELECT twin.h3_parent(%s, 8), twin.h3_parent(%s, -1)", (cell, cell)
    ).fetchone()
    assert row == (None, None)


def test_sql_hex_round_trip(conn: psycopg.Connection) -> None:
    cells = grid.points_to_cells(np.linspace(-170, 170, 25), np.linspace(-80, 80, 25), 10)
    hexes = grid.to_hex(cells)
    rows = conn.execute(
        "SELECT twin.h3_to_hex(c), twin.h3_from_hex(twin.h3_to_hex(c)) FROM unnest(%s::bigint[]) "
        "WITH ORDINALITY AS t(c, n) ORDER BY n",
        (cells.tolist(),),
    ).fetchall()
    assert [r[0] for r in rows] == hexes
    assert [r[1] for r in rows] == cells.tolist()
    bad = conn.execute("SELECT twin.h3_from_hex('zz'), twin.h3_from_hex('')").fetchone()
    assert bad == (None, None)


def test_sql_functions_give_null_for_null(conn: psycopg.Connection) -> None:
    row = conn.execute(
        "SELECT twin.h3_parent(NULL, 3), twin.h3_parent(%s, NULL), twin.h3_from_hex(NULL),"
        " twin.h3_resolution(NULL)",
        (int(grid.points_to_cells([120.16], [30.27], 9)[0]),),
    ).fetchone()
    assert row == (None, None, None, None)


def test_sql_functions_are_inlined(conn: psycopg.Connection) -> None:
    """PostgreSQL inlines them into the calling query (20x faster per row than a call): the
    plan shows their bodies, not the function names. A STRICT h3_parent (a CASE body) would
    not be inlined."""
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN (VERBOSE) SELECT twin.h3_parent(c, 8), twin.h3_resolution(c),"
        " twin.h3_from_hex(to_hex(c)) FROM generate_series(1::bigint, 10) AS c"
    ).fetchall())  # fmt: skip
    assert "h3_parent" not in plan and "h3_resolution" not in plan
    assert "h3_from_hex" not in plan and "CASE" in plan
