"""What every partitioned table of the twin shares: its partitions live in schema ``twin_part``.

Partitions are reached only through their parent in schema ``twin``: the API's role has no
``USAGE`` on ``twin_part``, so the parent's grants and row-level security policies are the only
way in. Three layouts use this machinery:

- ``twin.observation``: RANGE by UTC day with a DEFAULT partition (:mod:`twin.sense.partitions`);
- ``twin.event``, ``twin.task_transition``, ``twin.audit_log``: RANGE by UTC month of their time
  column with open-ended edge partitions instead of a DEFAULT, so that an old month detaches
  ``CONCURRENTLY`` (:mod:`twin.db.history`);
- ``twin.person``: LIST by home district with a DEFAULT partition (:mod:`twin.city.districts`).

A new partition is made as a plain table shaped like its parent (columns, defaults, checks,
generated columns), filled with the rows that a catch-all partition holds for its bounds,
given a check matching its bounds (so that ``ATTACH`` need not scan it) and attached; the
parent is held only in ``SHARE UPDATE EXCLUSIVE`` mode, which readers and writers do not wait
for. Statements are built with :mod:`psycopg.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql

from twin.db.models import PART_SCHEMA, SCHEMA


@dataclass(frozen=True)
class Child:
    """An attached partition as the catalogs describe it."""

    name: str
    default: bool
    rows_estimate: int | None  # the planner's estimate (no scan); None when unknown
    bytes: int
    detach_pending: bool  # a DETACH ... CONCURRENTLY that was interrupted


def part(name: str) -> sql.Identifier:
    """A table of schema ``twin_part``."""
    return sql.Identifier(PART_SCHEMA, name)


def parent(name: str) -> sql.Identifier:
    """A partitioned table of schema ``twin``."""
    return sql.Identifier(SCHEMA, name)


def children(conn: psycopg.Connection, table: str) -> list[Child]:
    """The partitions attached to ``twin.<table>`` (by name)."""
    rows = conn.execute(
        "SELECT c.relname, coalesce(pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT', false),"
        " c.reltuples::bigint, pg_total_relation_size(c.oid), i.inhdetachpending"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname",
        (f"{SCHEMA}.{table}",),
    ).fetchall()
    return [Child(n, d, None if est < 0 else int(est), int(size), pending)
            for n, d, est, size, pending in rows]  # fmt: skip


def plain_tables(conn: psycopg.Connection, prefix: str) -> list[tuple[str, int]]:
    """(name, bytes) of the tables of ``twin_part`` named ``prefix...`` that are no partition
    (detached ones)."""
    rows = conn.execute(
        "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r' AND NOT c.relispartition"
        " AND starts_with(c.relname, %s) ORDER BY c.relname",
        (PART_SCHEMA, prefix),
    ).fetchall()
    return [(str(n), int(b)) for n, b in rows]


def exists(conn: psycopg.Connection, name: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (f"{PART_SCHEMA}.{name}",)).fetchone()
    return row is not None and row[0] is not None


def create_like(conn: psycopg.Connection, table: str, name: str) -> None:
    """A plain table ``twin_part.<name>`` shaped like ``twin.<table>`` (what ATTACH asks for:
    the same columns, NOT NULL and CHECK constraints, generated columns)."""
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS"
            " INCLUDING GENERATED INCLUDING STORAGE)"
        ).format(part(name), parent(table))
    )


def move_rows(conn: psycopg.Connection, source: str, target: str, where: sql.Composable) -> int:
    """Move the rows of ``twin_part.<source>`` matching ``where`` into ``twin_part.<target>``
    (generated columns are recomputed); rows moved."""
    cols = columns(conn, source)
    listed = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    cur = conn.execute(
        sql.SQL(
            "WITH moved AS (DELETE FROM {src} WHERE {where} RETURNING {cols})"
            " INSERT INTO {dst} ({cols}) SELECT {cols} FROM moved"
        ).format(src=part(source), dst=part(target), where=where, cols=listed)
    )
    return cur.rowcount


def columns(conn: psycopg.Connection, name: str) -> list[str]:
    """The stored (not generated) columns of ``twin_part.<name>``, in order."""
    rows = conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0"
        " AND NOT attisdropped AND attgenerated = '' ORDER BY attnum",
        (f"{PART_SCHEMA}.{name}",),
    ).fetchall()
    return [str(r[0]) for r in rows]


def attach(
    conn: psycopg.Connection, table: str, name: str, bound: sql.Composable, check: sql.Composable
) -> None:
    """Attach ``twin_part.<name>`` to ``twin.<table>`` ``FOR VALUES <bound>``; ``check`` is the
    same condition as a CHECK, added for the attach (no scan) and dropped after it."""
    ck = sql.Identifier(f"{name}_bounds")
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({})").format(part(name), ck, check)
    )
    conn.execute(
        sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES {}").format(
            parent(table), part(name), bound
        )
    )
    conn.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(part(name), ck))


def hold_parent(conn: psycopg.Connection, table: str) -> None:
    """``twin.<table>`` in SHARE UPDATE EXCLUSIVE mode (what ATTACH takes; readers and writers
    go on), for the caller's transaction."""
    conn.execute(sql.SQL("LOCK TABLE {} IN SHARE UPDATE EXCLUSIVE MODE").format(parent(table)))


def hold_partition(conn: psycopg.Connection, name: str) -> None:
    """``twin_part.<name>`` in EXCLUSIVE mode (readers go on, writers wait), for the caller's
    transaction: a catch-all partition whose rows are being moved out."""
    conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(part(name)))
