"""The bulk store path of the MQTT bridge: Observation JSON -> rows, and rows -> PostGIS by COPY.

- :func:`rows_of` turns the Observations of one message into rows (the fields of
  :class:`~twin.sense.write.Reading`, in its order, as a plain tuple). The common form, an
  object of only ``phenomenonTime`` (one instant) and ``result`` (a finite number), is read
  here directly; any other object goes through :func:`~twin.sense.write.reading_from`, so a
  message is accepted or refused exactly as there (the fast path only ever says yes to what
  ``reading_from`` would accept, and hands it everything else).
- :func:`store_rows` writes a batch in one binary ``COPY`` into a temporary staging table of
  the connection (:func:`prepare`), then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``
  into the partitioned ``twin.observation``: a replayed or redelivered reading, or the same
  reading twice in a batch, is stored once. It runs in the caller's transaction; the staging
  table is emptied before each use and at commit (``ON COMMIT DELETE ROWS``), and a rolled-back
  savepoint takes its rows with it. The statements are in ``twin/db/sql/sense_ingest.sql``.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from twin.db.queries import query
from twin.sense.write import reading_from

#: (datastream, time, value, until, result_time, quality, parameters, feature): Reading's order.
Row = tuple[int, datetime, float, datetime | None, datetime | None, int | None,
            dict[str, Any] | None, int | None]  # fmt: skip

FILE = "sense_ingest.sql"
_TYPES = ["int8", "timestamptz", "float8", "timestamptz", "timestamptz", "int2", "jsonb", "int8"]
_FAST_KEYS = frozenset(("phenomenonTime", "result"))
_fromiso = datetime.fromisoformat


def rows_of(body: Any, datastream: int) -> list[Row]:
    """The rows of one message's JSON (an Observation or a list of them) to ``datastream``;
    :class:`~twin.sense.write.BadEntity` when any of them is not a valid Observation."""
    items = body if isinstance(body, list) else [body]
    out: list[Row] = []
    append = out.append
    for item in items:
        row = _fast(item, datastream)
        if row is None:
            r, _ = reading_from(item, datastream=datastream)
            row = (r.datastream, r.time, r.value, r.until, r.result_time, r.quality,
                   r.parameters, r.feature)  # fmt: skip
        append(row)
    return out


def _fast(item: Any, datastream: int) -> Row | None:
    """The row of ``{"phenomenonTime": "<instant with offset>", "result": <finite number>}``;
    None for anything else (left to ``reading_from``, which accepts or refuses it)."""
    if type(item) is not dict or item.keys() - _FAST_KEYS:
        return None
    result: Any = item.get("result")
    stamp = item.get("phenomenonTime")
    kind = type(result)
    if (kind is not float and kind is not int) or type(stamp) is not str or "/" in stamp:
        return None
    try:
        value = float(result)
        when = _fromiso(stamp)
    except (ValueError, OverflowError):
        return None
    if when.tzinfo is None or not math.isfinite(value):
        return None
    return (datastream, when, value, None, None, None, None, None)


async def prepare(conn: AsyncConnection) -> None:
    """Make the connection's staging table (once per connection, outside any savepoint that
    may roll back)."""
    await conn.execute(query(FILE, "stage_create"))


async def store_rows(
    conn: AsyncConnection, rows: list[Row], *, want_ids: bool = True
) -> tuple[list[int], int]:
    """Store ``rows`` (:func:`prepare` first): the ids in the rows' order (empty without
    ``want_ids``) and how many rows were new."""
    if not rows:
        return [], 0
    async with conn.cursor() as cur:
        await cur.execute(query(FILE, "stage_clear"))
        async with cur.copy(query(FILE, "stage_copy")) as cp:
            cp.set_types(_TYPES)
            for row in rows:
                await cp.write_row(row)
        if not want_ids:
            await cur.execute(query(FILE, "stage_insert"))
            return [], max(0, cur.rowcount)
        await cur.execute(query(FILE, "stage_insert_returning"))
        new = await cur.fetchall()
        if len(new) == len(rows):  # all new: their ids by key, in the rows' order
            by_key = {(r[1], r[2]): r[0] for r in new}
            return [by_key[(r[0], r[1])] for r in rows], len(new)
        # Some were there already (or twice in the batch): every row's id by its key.
        await cur.execute(query(FILE, "stage_ids"))
        found = {(r[0], r[1]): r[2] for r in await cur.fetchall()}
        return [found[(r[0], r[1])] for r in rows], len(new)


__all__ = ["Row", "prepare", "rows_of", "store_rows"]
