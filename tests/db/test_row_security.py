"""The tables the code treats as row-secured (``twin.db.models.ROW_SECURED``, from the models)
are those the migrated database has under forced row-level security, read from pg_class."""

from __future__ import annotations

import psycopg

from twin.db.models import ROW_SECURED, SCHEMA


def test_row_secured_tables_match_the_database(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT c.relname, c.relforcerowsecurity FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relrowsecurity",
        (SCHEMA,),
    ).fetchall()
    assert {name for name, _ in rows} == ROW_SECURED
    assert all(forced for _, forced in rows), "row security is forced on each (owners too)"


def test_row_secured_tables_have_policies(conn: psycopg.Connection) -> None:
    rows = conn.execute(
        "SELECT DISTINCT tablename FROM pg_policies WHERE schemaname = %s", (SCHEMA,)
    ).fetchall()
    assert {r[0] for r in rows} == ROW_SECURED


def _v1_allows(scope: str | None, area: int | None) -> bool:
    """access_v1.sql's scope_allows, written out: the rule the function must keep."""
    if scope is None or scope in ("", "*"):
        return True
    if scope == "none" or area is None:
        return False
    return area in [int(a) for a in scope.split(",")]


def test_scope_allows_answers_by_the_rule(conn: psycopg.Connection) -> None:
    for scope in (None, "", "*", "none", "3", "1,3,7"):
        for area in (None, 1, 3, 8):
            if scope is not None:
                conn.execute("SELECT set_config('twin.scope', %s, true)", (scope,))
            else:
                conn.execute("RESET twin.scope")
            (got,) = conn.execute("SELECT twin.scope_allows(%s::bigint)", (area,)).fetchone()
            assert got is _v1_allows(scope, area), (scope, area)
    conn.rollback()


def test_scope_policies_are_inlined(conn: psycopg.Connection) -> None:
    """The policies' scope test runs inline (a function call per row before: 0.44 s of a city
    cockpit's 0.75 s): the plan shows the setting read, not the function."""
    conn.execute("SELECT set_config('role', 'twin_api', true), set_config('twin.scope', '1', true)")
    plan = "\n".join(r[0] for r in conn.execute(
        "EXPLAIN (VERBOSE) SELECT count(*) FROM twin.event"
    ).fetchall())  # fmt: skip
    conn.rollback()
    assert "scope_allows" not in plan and "current_setting" in plan
