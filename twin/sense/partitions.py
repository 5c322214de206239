"""Daily partitions of ``twin.observation``: made ahead of time, detached past the retention.

The machinery is that of every partitioned table (:mod:`twin.db.partitions`).
``twin.observation`` is partitioned by RANGE of ``observed_at`` (migration
``0017_observation_partitions``): one partition per UTC day, ``twin_part.observation_pYYYYMMDD``
covering ``[day 00:00Z, day + 1 00:00Z)``, and ``twin_part.observation_default`` for any reading
no daily partition covers, so no reading is ever refused.

- :func:`ensure` makes the partitions of ``[today - 1, today + ahead]`` (and of the days within
  the retention that have readings waiting in the DEFAULT partition). A new partition is
  made as a plain table, the DEFAULT partition's rows of its day are moved into it, and it is
  attached; writers wait for the few milliseconds this holds the DEFAULT partition.
- :func:`detach` detaches the daily partitions older than ``today - retention_days`` (they stay
  in ``twin_part`` as plain tables, or are dropped), moves the DEFAULT partition's rows older
  than that into such tables too, and records each day in ``twin.observation_detached``: the
  roll-ups of those days are kept and no longer recomputed.

Every function takes the day explicitly (the callers pass today's UTC date); nothing here
reads the clock. Statements are built with :mod:`psycopg.sql` (identifiers quoted, values as
literals or bound parameters).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import psycopg
from psycopg import sql

from twin.db import partitions as parts
from twin.db.models import PART_SCHEMA

SCHEMA = PART_SCHEMA
DEFAULT = "observation_default"
PARENT = sql.Identifier("twin", "observation")
_DAILY = re.compile(r"observation_p(\d{8})")
#: Serialises partition maintenance (ensure, detach) across processes.
LOCK_KEY = 0x7477_696E_0017


@dataclass(frozen=True)
class Partition:
    name: str
    day: date | None  # None: the DEFAULT partition
    state: str  # attached | default | detached | dropped
    rows_estimate: int | None  # the planner's estimate (no scan); None when unknown
    bytes: int | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat() if self.day else None
        return out


def partition_name(day: date) -> str:
    return f"observation_p{day:%Y%m%d}"


def day_of(name: str) -> date | None:
    m = _DAILY.fullmatch(name)
    return datetime.strptime(m.group(1), "%Y%m%d").date() if m else None


def bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants a day's partition covers: ``[start, end)``."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


def _table(name: str) -> sql.Identifier:
    return sql.Identifier(SCHEMA, name)


def partitions(conn: psycopg.Connection) -> list[Partition]:
    """Attached partitions (daily and DEFAULT) and the detached days, by day."""
    rows = conn.execute(
        "SELECT c.relname, c.relpartbound IS NOT NULL AND pg_get_expr(c.relpartbound, c.oid)"
        " = 'DEFAULT', c.reltuples::bigint, pg_total_relation_size(c.oid)"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'twin.observation'::regclass"
    ).fetchall()
    out = [Partition(name, None if is_default else day_of(name),
                     "default" if is_default else "attached",
                     None if est < 0 else est, size)
           for name, is_default, est, size in rows]  # fmt: skip
    for day, name, n, dropped in conn.execute(
        "SELECT day, partition, rows, dropped FROM twin.observation_detached"
    ).fetchall():
        size = None if dropped else _size(conn, name)
        out.append(Partition(name, day, "dropped" if dropped else "detached", n, size))
    return sorted(out, key=lambda p: (p.day is None, p.day or date.min, p.state))


def _size(conn: psycopg.Connection, name: str) -> int | None:
    row = conn.execute(
        "SELECT pg_total_relation_size(c.oid) FROM pg_class c"
        " WHERE c.relnamespace = %s::regnamespace AND c.relname = %s",
        (SCHEMA, name),
    ).fetchone()
    return int(row[0]) if row else None


def _attached_days(conn: psycopg.Connection) -> set[date]:
    return {p.day for p in partitions(conn) if p.state == "attached" and p.day is not None}


def _default_days(conn: psycopg.Connection, *, before: datetime | None = None) -> list[date]:
    """UTC days of the readings waiting in the DEFAULT partition (it is meant to stay small)."""
    q = sql.SQL(
        "SELECT DISTINCT (observed_at AT TIME ZONE 'UTC')::date FROM {}"
        " WHERE %(before)s::timestamptz IS NULL OR observed_at < %(before)s ORDER BY 1"
    ).format(_table(DEFAULT))
    return [r[0] for r in conn.execute(q, {"before": before}).fetchall()]


def _lock(conn: psycopg.Connection) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))


def _move_from_default(conn: psycopg.Connection, name: str, day: date) -> int:
    start, end = bounds(day)
    where = sql.SQL("observed_at >= {} AND observed_at < {}").format(
        sql.Literal(start), sql.Literal(end)
    )
    return parts.move_rows(conn, DEFAULT, name, where)


def _create(conn: psycopg.Connection, day: date) -> int:
    """Make, fill from DEFAULT and attach the partition of ``day``; rows moved."""
    name = partition_name(day)
    start, end = bounds(day)
    lo, hi = sql.Literal(start), sql.Literal(end)
    with conn.transaction():
        _lock(conn)
        parts.hold_parent(conn, "observation")
        parts.hold_partition(conn, DEFAULT)
        parts.create_like(conn, "observation", name)
        moved = _move_from_default(conn, name, day)
        parts.attach(conn, "observation", name,
                     sql.SQL("FROM ({}) TO ({})").format(lo, hi),
                     sql.SQL("observed_at >= {} AND observed_at < {}").format(lo, hi))  # fmt: skip
    return moved


def ensure(
    conn: psycopg.Connection, *, today: date, ahead_days: int, retention_days: int | None = None
) -> dict[str, int]:
    """Partitions of ``[today - 1, today + ahead_days]`` (and of the days since ``today -
    retention_days`` with readings in DEFAULT), each attached with the DEFAULT partition's rows
    of its day: ``{name: rows moved}`` of those made."""
    if ahead_days < 0:
        raise ValueError(f"ahead_days must be >= 0, got {ahead_days}")
    wanted = {today + timedelta(days=k) for k in range(-1, ahead_days + 1)}
    if retention_days is not None:
        first, last = today - timedelta(days=retention_days), today + timedelta(days=ahead_days)
        wanted |= {d for d in _default_days(conn) if first <= d <= last}
    made: dict[str, int] = {}
    for day in sorted(wanted - _attached_days(conn)):
        made[partition_name(day)] = _create(conn, day)
    return made


def _record(conn: psycopg.Connection, day: date, name: str, rows: int) -> None:
    """Count ``rows`` more taken out on ``day``; ``dropped`` says whether its table is gone."""
    conn.execute(
        "INSERT INTO twin.observation_detached (day, partition, rows, dropped)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (day) DO UPDATE SET"
        " rows = twin.observation_detached.rows + EXCLUDED.rows,"
        " dropped = EXCLUDED.dropped, detached_at = now()",
        (day, name, rows, _size(conn, name) is None),
    )


def detach(
    conn: psycopg.Connection, *, today: date, retention_days: int, drop: bool = False
) -> dict[str, int]:
    """Detach (or drop, with ``drop``) the daily partitions of days before ``today -
    retention_days``, and take the DEFAULT partition's older rows out the same way:
    ``{name: rows}`` of each day taken out."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, got {retention_days}")
    cutoff = today - timedelta(days=retention_days)
    done: dict[str, int] = {}
    for day in sorted(d for d in _attached_days(conn) if d < cutoff):
        name = partition_name(day)
        with conn.transaction():
            _lock(conn)
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(_table(name))).fetchone()
            rows = int(row[0]) if row else 0
            conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(PARENT, _table(name)))
            if drop:
                conn.execute(sql.SQL("DROP TABLE {}").format(_table(name)))
            _record(conn, day, name, rows)
        done[name] = rows
    for day in _default_days(conn, before=bounds(cutoff)[0]):
        name = partition_name(day)
        with conn.transaction():
            _lock(conn)
            conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(_table(DEFAULT)))
            if drop:
                start, end = bounds(day)
                rows = conn.execute(
                    sql.SQL("DELETE FROM {} WHERE observed_at >= %s AND observed_at < %s")
                    .format(_table(DEFAULT)), (start, end),
                ).rowcount  # fmt: skip
            else:
                if not parts.exists(conn, name):
                    parts.create_like(conn, "observation", name)
                rows = _move_from_default(conn, name, day)
            _record(conn, day, name, rows)
        done[name] = done.get(name, 0) + rows
    return done
