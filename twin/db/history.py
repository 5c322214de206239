"""Monthly partitions of the twin's history: events, task transitions and the audit trail.

``twin.event`` (by ``occurred_at``), ``twin.task_transition`` and ``twin.audit_log`` (by ``at``)
are partitioned by RANGE of their time column (migration ``0023_partitions``), one partition per
UTC month, ``twin_part.<table>_pYYYYMM`` covering ``[month 1st 00:00Z, next month 1st 00:00Z)``.
There is no DEFAULT partition: PostgreSQL detaches a partition ``CONCURRENTLY`` (without
blocking the readers and writers of the others) only from a table that has none. Instead two
open-ended partitions take the rest, so no row is ever refused:

- ``<table>_before`` covers ``[MINVALUE, first month)``: old rows imported late;
- ``<table>_after`` covers ``[end of the last month made, MAXVALUE)``: rows dated ahead (a
  simulated storm's clock).

:func:`ensure` makes the months up to ``ahead_months`` past today's: it narrows ``_after``
(detached and attached again in one short transaction, with the months cut from it; that
transaction holds the parent exclusively for a moment, under ``lock_timeout``, once a month).
:func:`detach` takes out the months (and ``_before``) that end on or before ``today -
retention_days`` with ``DETACH PARTITION ... CONCURRENTLY``: they stay in ``twin_part`` as
plain tables (unreadable by the API) or are dropped. It needs an autocommit connection.

Every function takes the day explicitly; nothing here reads the clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import psycopg
from psycopg import sql

from twin.db import partitions as parts
from twin.settings import Settings

#: Each partitioned history table and its time column.
TABLES = {"event": "occurred_at", "task_transition": "at", "audit_log": "at"}
#: Serialises history partition maintenance across processes (a session-level advisory lock).
LOCK_KEY = 0x7477_696E_0023
LOCK_TIMEOUT = "5s"
_MONTH = re.compile(r"_p(\d{6})$")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    month: date | None  # first day of the month; None for the edges and detached _before
    state: str  # attached | detached
    rows_estimate: int | None
    bytes: int

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "name": self.name,
                "month": self.month.isoformat() if self.month else None, "state": self.state,
                "rows_estimate": self.rows_estimate, "bytes": self.bytes}  # fmt: skip


def _check(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"no partitioned history table {table!r}; one of {sorted(TABLES)}")
    return TABLES[table]


def month_start(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def add_months(month: date, n: int) -> date:
    k = month.year * 12 + month.month - 1 + n
    return date(k // 12, k % 12 + 1, 1)


def instant(month: date) -> datetime:
    return datetime.combine(month, time(), tzinfo=UTC)


def month_name(table: str, month: date) -> str:
    return f"{table}_p{month:%Y%m}"


def month_of(table: str, name: str) -> date | None:
    m = _MONTH.search(name)
    if not name.startswith(f"{table}_p") or m is None:
        return None
    return datetime.strptime(m.group(1), "%Y%m").date()


def _months(conn: psycopg.Connection, table: str) -> list[date]:
    """Months attached, in order (contiguous by construction)."""
    found = (month_of(table, c.name) for c in parts.children(conn, table))
    return sorted(m for m in found if m is not None)


def partitions(conn: psycopg.Connection, table: str) -> list[Partition]:
    """Attached partitions of ``twin.<table>`` and the detached tables kept in ``twin_part``."""
    _check(table)
    out = [Partition(table, c.name, month_of(table, c.name), "attached", c.rows_estimate,
                     c.bytes) for c in parts.children(conn, table)]  # fmt: skip
    attached = {p.name for p in out}
    for name, size in parts.plain_tables(conn, f"{table}_"):
        if name not in attached and (month_of(table, name) or name.startswith(f"{table}_before")):
            out.append(Partition(table, name, month_of(table, name), "detached", None, size))
    return sorted(out, key=lambda p: (p.state, p.month or date.min, p.name))


def _range(column: str, lo: date | None, hi: date | None) -> tuple[sql.Composable, sql.Composable]:
    """The FOR VALUES bound and the matching CHECK of ``[lo, hi)`` (None: open)."""
    a = sql.Literal(instant(lo)) if lo else sql.SQL("MINVALUE")
    b = sql.Literal(instant(hi)) if hi else sql.SQL("MAXVALUE")
    col = sql.Identifier(column)
    conds = []
    if lo:
        conds.append(sql.SQL("{} >= {}").format(col, sql.Literal(instant(lo))))
    if hi:
        conds.append(sql.SQL("{} < {}").format(col, sql.Literal(instant(hi))))
    return sql.SQL("FROM ({}) TO ({})").format(a, b), sql.SQL(" AND ").join(conds)


def _session_lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))


def _session_unlock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))


def ensure(
    conn: psycopg.Connection, table: str, *, today: date, ahead_months: int
) -> dict[str, int]:
    """Months of ``twin.<table>`` up to ``ahead_months`` after today's, cut from ``_after``
    with the rows it holds for them: ``{name: rows moved}`` of those made."""
    column = _check(table)
    if ahead_months < 0:
        raise ValueError(f"ahead_months must be >= 0, got {ahead_months}")
    made: dict[str, int] = {}
    months = _months(conn, table)
    if not months:
        raise RuntimeError(f"twin.{table} has no monthly partitions: is the schema at 0023?")
    want_end = next_month(add_months(month_start(today), ahead_months))
    end = next_month(months[-1])
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        if f"{table}_before" not in {c.name for c in parts.children(conn, table)}:
            made[f"{table}_before"] = _make_before(conn, table, months[0])
        if end >= want_end:
            return made
        after = f"{table}_after"
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (LOCK_TIMEOUT,))
        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            parts.parent(table), parts.part(after)))  # fmt: skip
        month = end
        while month < want_end:
            name = month_name(table, month)
            bound, check = _range(column, month, next_month(month))
            parts.create_like(conn, table, name)
            made[name] = parts.move_rows(conn, after, name, check)
            parts.attach(conn, table, name, bound, check)
            month = next_month(month)
        bound, check = _range(column, want_end, None)
        parts.attach(conn, table, after, bound, check)
    return made


def _make_before(conn: psycopg.Connection, table: str, first: date) -> int:
    """An empty ``_before`` covering ``[MINVALUE, first)`` (after it was detached)."""
    name = f"{table}_before"
    bound, check = _range(TABLES[table], None, first)
    parts.hold_parent(conn, table)
    parts.create_like(conn, table, name)
    parts.attach(conn, table, name, bound, check)
    return 0


def _finalize_pending(conn: psycopg.Connection, table: str) -> None:
    """Finish a DETACH ... CONCURRENTLY that was interrupted (it left the partition pending)."""
    for c in parts.children(conn, table):
        if c.detach_pending:
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(
                parts.parent(table), parts.part(c.name)))  # fmt: skip


def _count(conn: psycopg.Connection, name: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(parts.part(name))).fetchone()
    return int(row[0]) if row else 0


def _detach_one(conn: psycopg.Connection, table: str, name: str, *, drop: bool) -> int:
    rows = _count(conn, name)
    conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(
        parts.parent(table), parts.part(name)))  # fmt: skip
    if drop:
        conn.execute(sql.SQL("DROP TABLE {}").format(parts.part(name)))
    return rows


def detach(
    conn: psycopg.Connection, table: str, *, today: date, retention_days: int, drop: bool = False
) -> dict[str, int]:
    """Detach (or drop, with ``drop``) the partitions of ``twin.<table>`` whose rows all lie
    before ``today - retention_days``: ``{name: rows}`` of each taken out. Each detach is
    ``CONCURRENTLY``: the partitions still attached are never locked against readers or
    writers. ``conn`` must be in autocommit mode (PostgreSQL runs it outside a transaction)."""
    _check(table)
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, got {retention_days}")
    if not conn.autocommit:
        raise ValueError("detach needs an autocommit connection (DETACH ... CONCURRENTLY)")
    cutoff = date.fromordinal(today.toordinal() - retention_days)
    done: dict[str, int] = {}
    _session_lock(conn)
    try:
        _finalize_pending(conn, table)
        months = _months(conn, table)
        old = [m for m in months if next_month(m) <= cutoff]
        if len(old) == len(months):
            old = old[:-1]  # always keep one month: the layout stays contiguous
        if not old and (not months or months[0] > cutoff):
            return done
        first_kept = months[len(old)]
        before = f"{table}_before"
        if before in {c.name for c in parts.children(conn, table)}:
            rows = _count(conn, before)
            if not old and rows == 0:
                return done  # nothing to take out: leave the empty _before attached
            # _before holds rows older than the first month (<= cutoff): it goes too, under a
            # name of its own (dropped when empty), and an empty one covers up to the first
            # month kept.
            _detach_one(conn, table, before, drop=drop or rows == 0)
            if not drop and rows:
                kept = f"{table}_before_{today:%Y%m%d}_{len(parts.plain_tables(conn, before))}"
                conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    parts.part(before), sql.Identifier(kept)))  # fmt: skip
                done[kept] = rows
            elif rows:
                done[before] = rows
        for month in old:
            name = month_name(table, month)
            done[name] = _detach_one(conn, table, name, drop=drop)
        with conn.transaction():
            _make_before(conn, table, first_kept)
    finally:
        _session_unlock(conn)
    return done


def retention_days(settings: Settings) -> dict[str, int | None]:
    """Each table's retention from the settings (None: keep everything)."""
    return {"event": settings.event_retention_days,
            "task_transition": settings.task_transition_retention_days,
            "audit_log": settings.audit_retention_days}  # fmt: skip


def installed(conn: psycopg.Connection) -> bool:
    """Whether the schema has the monthly partitions (revision 0023 or later)."""
    return parts.exists(conn, "event_after")


def ensure_all(conn: psycopg.Connection, *, today: date, ahead_months: int) -> dict[str, int]:
    """:func:`ensure` of every table: ``{name: rows moved}`` of the partitions made."""
    made: dict[str, int] = {}
    for table in TABLES:
        made.update(ensure(conn, table, today=today, ahead_months=ahead_months))
    return made


def detach_all(
    conn: psycopg.Connection, settings: Settings, *, today: date, drop: bool = False
) -> dict[str, int]:
    """:func:`detach` of every table that has a retention."""
    done: dict[str, int] = {}
    for table, days in retention_days(settings).items():
        if days is not None:
            done.update(detach(conn, table, today=today, retention_days=days,
                               drop=drop or settings.history_drop_detached))  # fmt: skip
    return done
