"""Residents by home district: the LIST partitions of ``twin.person``.

``twin.person`` is partitioned by LIST of ``district_id`` (migration ``0023_partitions``), the
admin area at level ``district`` above the resident's home building (or, without one, above the
grid patch holding most of the home cell); ``0`` means none and such rows go to the DEFAULT
partition ``twin_part.person_default``. Each district has ``twin_part.person_d<id>``, so a
query on one district (``WHERE district_id = X``: a district cockpit, a scoped count) reads
one partition.

:func:`ensure` gives every district its partition (and drops the empty ones of districts that
are gone); loaders call it after writing admin areas and before writing residents. Loaders of
residents fill ``district_id`` with :func:`assign`. Both run in the caller's transaction.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import psycopg
from psycopg import sql

from twin.db import partitions as parts
from twin.db.queries import query

TABLE = "person"
DEFAULT = "person_default"
#: district_id of a resident without a known district (kept in the DEFAULT partition).
NO_DISTRICT = 0
_NAME = re.compile(r"person_d(\d+)")


def partition_name(district: int) -> str:
    return f"person_d{int(district)}"


def district_of(name: str) -> int | None:
    m = _NAME.fullmatch(name)
    return int(m.group(1)) if m else None


def ensure(conn: psycopg.Connection) -> dict[str, int]:
    """A partition for every district (rows of it moved out of DEFAULT), the empty partitions
    of districts no longer in ``twin.admin_area`` dropped: ``{name: rows moved}`` of those
    made, ``{name: -1}`` of those dropped."""
    wanted = {int(r[0]) for r in conn.execute(query("districts.sql", "districts"))}
    have = {d: c.name for c in parts.children(conn, TABLE)
            if (d := district_of(c.name)) is not None}  # fmt: skip
    out: dict[str, int] = {}
    for district in sorted(set(have) - wanted):
        name = have[district]
        if conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(parts.part(name))
                        ).fetchone() == (False,):  # fmt: skip
            conn.execute(sql.SQL("DROP TABLE {}").format(parts.part(name)))
            out[name] = -1
    missing = sorted(wanted - set(have))
    if not missing:
        return out
    parts.hold_parent(conn, TABLE)
    parts.hold_partition(conn, DEFAULT)
    for district in missing:
        name = partition_name(district)
        cond = sql.SQL("district_id = {}").format(sql.Literal(district))
        parts.create_like(conn, TABLE, name)
        out[name] = parts.move_rows(conn, DEFAULT, name, cond)
        parts.attach(conn, TABLE, name, sql.SQL("IN ({})").format(sql.Literal(district)), cond)
    return out


def assign(conn: psycopg.Connection, home_building: Any, home_cell: Any) -> np.ndarray:
    """``district_id`` of residents, from their home buildings' and home cells' ids (arrays or
    series, nullable; int64 out, :data:`NO_DISTRICT` where unknown): the district of
    the home building's area, else of the home cell's grid patch."""
    b = pd.Series(pd.array(home_building, dtype="Int64"))
    c = pd.Series(pd.array(home_cell, dtype="Int64"))
    out = np.full(len(b), NO_DISTRICT, dtype=np.int64)
    bids = b.dropna().unique()
    if len(bids):
        rows = conn.execute(query("districts.sql", "building_districts"),
                            {"ids": [int(x) for x in bids]}).fetchall()  # fmt: skip
        got = b.map(dict(rows)).to_numpy(dtype="float64", na_value=np.nan)
        found = ~np.isnan(got)
        out[found] = got[found].astype(np.int64)
    need = (out == NO_DISTRICT) & c.notna().to_numpy()
    if need.any():
        cells = c[need].unique()
        rows = conn.execute(query("districts.sql", "cell_districts"),
                            {"cells": [int(x) for x in cells]}).fetchall()  # fmt: skip
        got = c[need].map(dict(rows)).to_numpy(dtype="float64", na_value=np.nan)
        found = ~np.isnan(got)
        out[np.flatnonzero(need)[found]] = got[found].astype(np.int64)
    return out
