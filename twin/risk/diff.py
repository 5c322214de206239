"""Write only the score rows that changed: what the nowcast feed and the incremental refresh share.

Both compute a layer's new rows for some cells, compare them with the stored rows there (score,
level, components and the small-count flag), and rewrite only the cells whose row changed (new
cells and cells gone to zero included), then the parents of those cells at every coarser
resolution, rolled up from the layer's children under each parent: the stored ones with the
changed ones patched in. The rows written are those a full ``twin risk compute`` over the same
inputs writes; ``computed_at`` tells which rows changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from h3.api import basic_int

from twin import grid
from twin.city.load import bump_layer_versions
from twin.risk.catalog import Layer
from twin.risk.compute import RISK_VERSION_KEY, _frame_rows, copy_scores
from twin.risk.scoring import roll_up

COLUMNS = ["cell", "score", "level", "components", "small_count"]
STORED_SQL = """
SELECT cell, score, level, components, small_count FROM twin.risk_score
WHERE layer_id = %(layer)s AND res = %(res)s
"""
# Without components (what a roll-up or the one map reads of a child: not its parts).
STORED_AT_SQL = """
SELECT cell, score, level, CASE WHEN %(components)s THEN components END, small_count
FROM twin.risk_score
WHERE layer_id = %(layer)s AND res = %(res)s AND cell = ANY(%(cells)s)
"""
# The rows of several layers at the given cells (one resolution: the cells'), no components.
STORED_LAYERS_SQL = """
SELECT layer_id, cell, score, level, NULL AS components, small_count FROM twin.risk_score
WHERE layer_id = ANY(%(layers)s) AND cell = ANY(%(cells)s)
"""
DELETE_SQL = "DELETE FROM twin.risk_score WHERE layer_id = %s AND res = %s AND cell = ANY(%s)"

# layer id, resolution, the cells to replace, their new rows (cells without a row: deleted)
Write = tuple[str, int, list[int], pd.DataFrame]


def stored(
    conn: psycopg.Connection,
    layer_id: str,
    res: int,
    cells: npt.ArrayLike | None = None,
    *,
    components: bool = True,
) -> pd.DataFrame:
    """The stored rows of a layer at ``res``: every cell, or only ``cells`` (``components``
    None unless asked for)."""
    if cells is None:
        rows = conn.execute(STORED_SQL, {"layer": layer_id, "res": res}).fetchall()
    else:
        at = np.asarray(cells, dtype=np.int64).tolist()
        rows = conn.execute(STORED_AT_SQL, {"layer": layer_id, "res": res, "cells": at,
                                            "components": components}).fetchall()  # fmt: skip
    df = pd.DataFrame(rows, columns=COLUMNS)
    df["cell"] = df["cell"].astype(np.int64)
    return df


def stored_layers(
    conn: psycopg.Connection, layer_ids: list[str], cells: npt.ArrayLike
) -> dict[str, pd.DataFrame]:
    """Per layer id, its stored rows at ``cells`` (without components), in one query."""
    at = np.asarray(cells, dtype=np.int64).tolist()
    rows = conn.execute(STORED_LAYERS_SQL, {"layers": layer_ids, "cells": at}).fetchall()
    df = pd.DataFrame(rows, columns=["layer_id", *COLUMNS])
    df["cell"] = df["cell"].astype(np.int64)
    return {lid: df[df["layer_id"] == lid][COLUMNS].reset_index(drop=True) for lid in layer_ids}


def _key(df: pd.DataFrame) -> dict[int, tuple[Any, ...]]:
    """cell -> what a stored row says (components as parsed JSON: dicts compare by content)."""
    return {
        int(c): (float(s), str(lv), comp, bool(sc))
        for c, s, lv, comp, sc in zip(
            df["cell"], df["score"], df["level"], df["components"], df["small_count"], strict=True
        )
    }


def changed(new: pd.DataFrame, old: pd.DataFrame) -> set[int]:
    """Cells whose row differs between ``new`` and ``old`` (or is in only one of them)."""
    a, b = _key(new), _key(old)
    return {c for c in a.keys() | b.keys() if a.get(c) != b.get(c)}


def cell_array(cells: set[int] | list[int]) -> npt.NDArray[np.int64]:
    return np.fromiter(cells, dtype=np.int64, count=len(cells))


def only(df: pd.DataFrame, cells: set[int]) -> pd.DataFrame:
    return df[df["cell"].isin(cell_array(cells))]


def patched(old: pd.DataFrame, new: pd.DataFrame, cells: set[int]) -> pd.DataFrame:
    """``old`` with the rows of ``cells`` replaced by those of ``new`` (absent: dropped)."""
    keep = old[~old["cell"].isin(cell_array(cells))]
    return pd.concat([keep, only(new, cells)], ignore_index=True)


def children(cells: npt.ArrayLike, res: int) -> npt.NDArray[np.int64]:
    """Every child at ``res`` of each cell (int64 H3 ids)."""
    out = [
        c for p in np.asarray(cells, dtype=np.int64).tolist()
        for c in basic_int.cell_to_children(int(np.uint64(np.int64(p))), res)
    ]  # fmt: skip
    return np.asarray(out, dtype=np.uint64).astype(np.int64)


def roll_up_writes(
    conn: psycopg.Connection,
    layer: Layer,
    rows: pd.DataFrame,
    cells: set[int],
    resolutions: list[int],
) -> list[Write]:
    """The rows to write for a layer whose ``cells`` changed at its own resolution.

    ``rows``: the layer's new rows at (at least) those cells. Returns the layer's own rows at
    ``cells`` and, per coarser resolution, the rolled-up rows of the parents of ``cells``
    that changed (the children of each parent: the stored ones, ``cells`` patched in).
    """
    if not cells:
        return []
    new = only(rows, cells)
    writes: list[Write] = [(layer.id, layer.res, sorted(cells), new)]
    coarser = sorted((r for r in resolutions if r < layer.res), reverse=True)
    if not coarser:
        return writes
    # The children under every touched parent, down from the coarsest touched parents.
    top = np.unique(grid.parent(cell_array(cells), coarser[-1]))
    kids = stored(conn, layer.id, layer.res, children(top, layer.res), components=False)
    kids = patched(kids, new, cells)
    kid_cells = kids["cell"].to_numpy(dtype=np.int64)
    for res in coarser:
        parents = np.unique(grid.parent(cell_array(cells), res))
        of_kid = grid.parent(kid_cells, res)
        below = np.isin(of_kid, parents)
        up = roll_up(kids[below], of_kid[below])
        old = stored(conn, layer.id, res, parents)
        diff = changed(up, old)
        if diff:
            writes.append((layer.id, res, sorted(diff), only(up, diff)))
    return writes


def write_changes(conn: psycopg.Connection, writes: list[Write], at: datetime) -> int:
    """Replace the rows of each write's cells (one transaction: the caller's); returns the rows
    deleted plus written. Bumps the tiles' data version when anything changed."""
    if not writes:
        return 0
    n = 0
    frames = []
    for lid, res, cells, rows in writes:
        n += conn.execute(DELETE_SQL, (lid, res, cells)).rowcount
        if len(rows):
            frames.append(_frame_rows(lid, res, rows.reset_index(drop=True), at))
    if frames:
        table = pd.concat(frames, ignore_index=True)
        copy_scores(conn, table)
        n += len(table)
    bump_layer_versions(conn, (RISK_VERSION_KEY,))
    return n
