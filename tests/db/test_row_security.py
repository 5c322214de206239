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
