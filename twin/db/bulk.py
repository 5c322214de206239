"""Bulk loads into emptied tables: indexes and foreign keys built once at the end.

Inserting 12 M rows into a table with five indexes and three foreign keys costs one index
insertion per index and one key lookup per key for every row. Building each index once from the
loaded rows (a sort) and validating each key with one join is several times faster. The drop
and the rebuild happen inside the caller's transaction, so a failed load rolls the indexes and
keys back with the rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql

# Plain indexes of the table (not those behind a primary key, unique or exclusion constraint:
# other tables' keys may rely on them).
_INDEXES_SQL = """
SELECT i.relname, pg_get_indexdef(x.indexrelid)
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
WHERE x.indrelid = %s::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
ORDER BY i.relname
"""

# The table's own foreign keys (those it holds, not those pointing at it).
_FKEYS_SQL = """
SELECT conname, pg_get_constraintdef(oid)
FROM pg_constraint
WHERE conrelid = %s::regclass AND contype = 'f' AND conparentid = 0
ORDER BY conname
"""

# pg_get_indexdef of a partitioned table's index says ON ONLY (the parent alone); rebuilt, the
# index must cover the partitions again.
_ON_ONLY = re.compile(r"\bON ONLY\b")


@dataclass(frozen=True)
class Deferred:
    """What was dropped from one table, to be rebuilt."""

    table: str
    indexes: tuple[tuple[str, str], ...]
    fkeys: tuple[tuple[str, str], ...]


def drop_for_load(conn: psycopg.Connection, table: str) -> Deferred:
    """Drop the plain indexes and the foreign keys of ``table`` ('schema.name'); returns how to
    rebuild them (`rebuild`). Runs in the caller's transaction."""
    schema, _, name = table.partition(".")
    indexes = tuple(conn.execute(_INDEXES_SQL, (table,)).fetchall())
    fkeys = tuple(conn.execute(_FKEYS_SQL, (table,)).fetchall())
    for con, _ in fkeys:
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(schema, name), sql.Identifier(con)
            )
        )
    for idx, _ in indexes:
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(schema, idx)))
    return Deferred(table, indexes, fkeys)


def rebuild(conn: psycopg.Connection, dropped: Deferred) -> None:
    """Recreate what `drop_for_load` dropped: each index in one build, each key validated by
    one query over the loaded rows (an error names the key, and the transaction rolls back)."""
    schema, _, name = dropped.table.partition(".")
    for _, definition in dropped.indexes:
        # The definition comes from pg_get_indexdef, quoted by the server itself.
        conn.execute(sql.SQL(_ON_ONLY.sub("ON", definition)))
    for con, definition in dropped.fkeys:
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
                sql.Identifier(schema, name),
                sql.Identifier(con),
                sql.SQL(definition),
            )
        )


@contextmanager
def loading(conn: psycopg.Connection, *tables: str) -> Iterator[None]:
    """Within the block, ``tables`` have no plain indexes and no foreign keys; on leaving it
    normally they are rebuilt (on an error the caller's transaction rolls everything back)."""
    dropped = [drop_for_load(conn, t) for t in tables]
    yield
    for d in dropped:
        rebuild(conn, d)
