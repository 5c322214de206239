"""The incremental risk refresh after an ingest: rescore only the cells the new data touched.

After ``twin ingest buildings`` the risk map changes only where the buildings are, and only in the
layers that read what the ingest wrote. :func:`refresh_cells` takes the (finest) cells whose data
changed and the tables the ingest wrote, and for each layer whose source query names one of
those tables (``twin.<table>``):

- ``linear``, ``log`` and ``step`` inputs normalise cell by cell, so the source query is run
  restricted to the touched cells at the layer's resolution (``SELECT * FROM (source) WHERE
  cell = ANY(cells)``: the same rows the full query gives there) and only those cells rescored;
- a layer with a ``quantile`` input ranks every cell against all the others (one new value can
  move every rank), so its source is read in full and every cell rescored;

- a layer whose only written input is ``cell_stats`` and that names none of the columns the
  ingest can change (:data:`BUILDING_STAT_COLUMNS`) is rescored only at the cells where the
  statistics row and the layer's stored row disagree about existing (a cell that gained or lost
  its row);

then the rows compared with the stored ones and only those that changed rewritten
(:mod:`twin.risk.diff`), the one map at the cells where a combined layer changed, and the parents
at every coarser resolution. A layer whose source names none of the written tables keeps its
inputs; its small-count flags are checked all the same (:data:`FLAG_DRIFT_SQL`), as the
suppression model decides the whole city's hidden counts again after every refresh of the cell
statistics. The rows are those a full ``twin risk compute`` at the same ``as_of`` writes
(tests/risk/test_incremental.py checks every layer, every cell).

What a full compute does that this does not: the ``risk_snapshot`` trend rows (as the nowcast
feed), and the event windows of the untouched cells stay where the last full compute ended them.
Locality is the contract: a source's row for a cell must depend only on the written tables' rows
in that cell (true of every shipped layer for buildings; not of ``hazardous_chemicals`` for hazard
sites, which reads sites within 500 m: that is why only the building ingest uses this).
"""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from psycopg import sql

from twin import grid
from twin.db.runs import latest_run_id
from twin.risk import diff
from twin.risk.catalog import ONEMAP, Catalog, Layer
from twin.risk.compute import (
    FLOOD_INPUTS,
    RISK_FULL_KEY,
    mark_hidden_people,
    read_inputs,
    source_params,
)
from twin.risk.scoring import combine, score_layer

BUILDING_TABLES = ("building", "address", "cell_stats")  # what `twin ingest buildings` writes
#: The ``cell_stats`` columns a building ingest can change: residents, jobs and enterprises are
#: counted by their own cells, which it does not move (tests/risk/test_incremental.py checks
#: it); ``hidden``, because the suppression model decides the whole city again (the stored
#: flags follow it through FLAG_DRIFT_SQL). Cells may also gain or lose their row (a building
#: in a cell that had nothing).
BUILDING_STAT_COLUMNS = ("buildings", "floor_area_m2", "height_mean_m", "height_max_m", "hidden")
# A whole-row reference: any column may be read (``s.*``, ``SELECT *``).
_WHOLE_ROW = re.compile(r"\.\*|\bSELECT\s+\*", re.IGNORECASE)

# Cells (of those given) where the layer's stored rows and the cell statistics rows disagree
# about existence: the only places a layer reading unchanged statistics columns can change.
ROWSET_SQL = """
SELECT c FROM unnest(%(cells)s::bigint[]) AS c
WHERE EXISTS (SELECT 1 FROM twin.cell_stats s WHERE s.res = %(res)s AND s.cell = c)
   <> EXISTS (SELECT 1 FROM twin.risk_score r
              WHERE r.layer_id = %(layer)s AND r.res = %(res)s AND r.cell = c)
"""
_TABLE = re.compile(r"\btwin\.(\w+)\b(?!\s*\()")  # a schema-qualified table, not a function

RESTRICTED_SQL = "SELECT * FROM (\n{}\n) AS src WHERE src.cell = ANY(%(cells)s::bigint[])"

# Stored rows whose small-count flag the current suppression decisions would set otherwise. The
# flag is "a people input is 1..k-1" (the stored raw values: unchanged where the inputs are) or
# "the cell hides a count": it drifts where a cell hides a count it did not, or no longer hides
# one and its flag does not come from its own raw values.
FLAG_DRIFT_SQL = """
WITH r AS (
    SELECT r.cell, r.small_count, r.components,
           coalesce(cardinality(s.hidden) > 0, false) OR coalesce(f.people_hidden, false) AS hidden
    FROM twin.risk_score r
    LEFT JOIN twin.cell_stats s ON %(stats)s AND s.res = r.res AND s.cell = r.cell
    LEFT JOIN twin.flood_cell_result f
           ON %(flood)s AND f.run_id = %(run)s AND f.res = r.res AND f.cell = r.cell
    WHERE r.layer_id = %(layer)s AND r.res = %(res)s
)
SELECT cell FROM r
WHERE (NOT small_count AND hidden)
   OR (small_count AND NOT hidden
       AND NOT EXISTS (SELECT 1 FROM unnest(%(people)s::text[]) AS p(name)
                       WHERE (components -> p.name ->> 'value')::float8 >= 1
                         AND (components -> p.name ->> 'value')::float8 < %(k)s))
"""


LAST_FULL_SQL = """
SELECT (SELECT updated_at FROM twin.layer_version WHERE layer = %(key)s),
       array(SELECT DISTINCT layer_id FROM twin.risk_snapshot)
"""


def can_refresh(url: str, catalog: Catalog) -> bool:
    """Whether the stored scores are a full compute of this catalog to patch: every layer and
    the one map computed (a ``risk_snapshot`` row), the last full compute after every layer
    file's last change."""
    with psycopg.connect(url) as conn:
        row = conn.execute(LAST_FULL_SQL, {"key": RISK_FULL_KEY}).fetchone()
    when, computed = row if row is not None else (None, [])
    if when is None:
        return False
    if any(lyr.id not in computed for lyr in catalog.all_layers()):
        return False
    return all(not lyr.path or Path(lyr.path).stat().st_mtime <= when.timestamp()
               for lyr in catalog.layers)  # fmt: skip


def tables_read(layer: Layer) -> set[str]:
    """The ``twin.`` tables a layer's source query names."""
    return set(_TABLE.findall(layer.sql))


def reads_changed_columns(layer: Layer, columns: tuple[str, ...] | None) -> bool:
    """Whether a layer's source may read one of ``columns`` of ``cell_stats`` (None: every
    column may have changed). Conservative: a column's name anywhere in the query, or a
    whole-row reference, counts as read."""
    if columns is None or _WHOLE_ROW.search(layer.sql):
        return True
    return any(re.search(rf"\b{re.escape(c)}\b", layer.sql) for c in columns)


def _rowset_changes(
    conn: psycopg.Connection, layer: Layer, cells: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    rows = conn.execute(ROWSET_SQL, {"cells": cells.tolist(), "res": layer.res,
                                     "layer": layer.id})  # fmt: skip
    return np.asarray([int(c) for (c,) in rows], dtype=np.int64)


def _restricted(
    conn: psycopg.Connection, layer: Layer, params: dict[str, Any], cells: npt.NDArray[np.int64]
) -> pd.DataFrame:
    """The layer's source rows at ``cells`` only."""
    query = sql.SQL(RESTRICTED_SQL).format(sql.SQL(layer.sql))
    wrapped = dataclasses.replace(layer, sql=query.as_string(conn))
    return read_inputs(conn, wrapped, {**params, "cells": cells.tolist()})


def _flag_drift(conn: psycopg.Connection, layer: Layer, k: int, flood_run: int | None) -> set[int]:
    people = [i.name for i in layer.inputs if i.people]
    if not people:
        return set()
    rows = conn.execute(FLAG_DRIFT_SQL, {
        "layer": layer.id, "res": layer.res, "people": people, "k": k, "run": flood_run,
        "stats": any(n not in FLOOD_INPUTS for n in people),
        "flood": flood_run is not None and any(n in FLOOD_INPUTS for n in people),
    })  # fmt: skip
    return {int(c) for (c,) in rows}


def refresh_cells(
    url: str,
    catalog: Catalog,
    cells: npt.ArrayLike,
    *,
    resolutions: list[int],
    k: int,
    tables: tuple[str, ...] = BUILDING_TABLES,
    stat_columns: tuple[str, ...] | None = BUILDING_STAT_COLUMNS,
    as_of: datetime | None = None,
    rowset_cells: npt.ArrayLike | None = None,
) -> dict[str, Any]:
    """Rescore the cells whose data changed; write only the rows that changed.

    Parameters
    ----------
    url
        Database URL.
    catalog
        The layer catalog; refused while any of its files is broken.
    cells
        H3 cells (int64, any resolution at least as fine as the layers') whose rows in
        ``tables`` changed: old and new positions both.
    resolutions
        The twin's H3 resolutions (roll-ups to each one coarser than a layer's).
    k
        Suppression threshold for ``small_count``.
    tables
        The ``twin`` tables whose rows changed (default: what a building ingest writes).
    stat_columns
        Where ``tables`` has ``cell_stats``: the columns of it that may have changed (default:
        a building ingest's, :data:`BUILDING_STAT_COLUMNS`; None: any). A layer whose only
        changed input is ``cell_stats`` and that reads none of them is rescored only where a
        cell gained or lost its statistics row.
    as_of
        The time event windows end at (default: now).
    rowset_cells
        The cells (any resolution) that gained or lost their ``cell_stats`` row in the same
        change (a building ingest reports them: :class:`twin.city.cells.CellRefresh`). A layer
        reading none of ``stat_columns`` is then rescored only there; None: looked for, as the
        cells where the statistics rows and the layer's rows disagree about existing (which
        also finds the cells a layer leaves out, and so reads them again every time).

    Returns
    -------
    ``layers``: per layer id recomputed, the cells rescored (``scope``) and the cells whose row
    changed (``changed``) at its resolution; ``rows``: rows deleted plus written over every
    resolution; ``seconds``.
    """
    if catalog.errors:
        raise catalog.errors[0]
    t0 = time.perf_counter()
    at = as_of or datetime.now(UTC)
    fine = np.unique(np.asarray(cells, dtype=np.int64))
    rowset = None if rowset_cells is None else np.unique(np.asarray(rowset_cells, dtype=np.int64))
    onemap = catalog.get(ONEMAP)
    assert onemap is not None
    parts = [i.name for i in onemap.inputs]
    by_id = {lyr.id: lyr for lyr in catalog.layers}
    out: dict[str, Any] = {"layers": {}, "rows": 0}
    new: dict[str, pd.DataFrame] = {}  # layer id -> its new rows at (at least) the changed cells
    diffs: dict[str, set[int]] = {}
    with psycopg.connect(url) as conn:
        conn.read_only = True
        flood_run = latest_run_id(conn, "flood")
        params = source_params(conn, at, flood_run, latest_run_id(conn, "traffic"))
        for lyr in catalog.layers:
            drift = _flag_drift(conn, lyr, k, flood_run)
            written = tables_read(lyr) & set(tables)
            own = fine[grid.resolution(fine) >= lyr.res] if written else fine[:0]
            at_cells = np.unique(grid.parent(own, lyr.res))
            if written == {"cell_stats"} and not reads_changed_columns(lyr, stat_columns):
                # Its statistics columns are as they were: only a row that came or went counts.
                if rowset is None:
                    at_cells = _rowset_changes(conn, lyr, at_cells)
                else:
                    at_cells = np.intersect1d(at_cells, rowset[grid.resolution(rowset) == lyr.res])
            reads = at_cells.size > 0
            if not reads and not drift:
                continue
            full = any(i.normalise == "quantile" for i in lyr.inputs)  # ranks: every cell
            if full:
                rows, old = read_inputs(conn, lyr, params), diff.stored(conn, lyr.id, lyr.res)
            else:
                scope = np.union1d(at_cells, diff.cell_array(drift))
                rows = _restricted(conn, lyr, params, scope)
                old = diff.stored(conn, lyr.id, lyr.res, scope)
            scored = score_layer(rows, lyr, k=k)
            mark_hidden_people(conn, lyr, scored, flood_run)
            new[lyr.id], diffs[lyr.id] = scored, diff.changed(scored, old)
            out["layers"][lyr.id] = {"scope": len(rows) if full else len(scope),
                                     "full": full, "changed": len(diffs[lyr.id])}  # fmt: skip
        touched = {c for p in parts if p in diffs for c in diffs[p]}
        if touched:
            # The one map at the touched cells, from every combined layer's rows there.
            scored_parts = diff.stored_layers(conn, parts, diff.cell_array(touched))
            for p in parts:
                if p in diffs:
                    scored_parts[p] = diff.patched(scored_parts[p], new[p], diffs[p] & touched)
            new[ONEMAP] = combine(scored_parts)
            old = diff.stored(conn, ONEMAP, onemap.res, diff.cell_array(touched))
            diffs[ONEMAP] = diff.changed(new[ONEMAP], old)
            out["layers"][ONEMAP] = {"scope": len(touched), "full": False,
                                     "changed": len(diffs[ONEMAP])}  # fmt: skip
        writes: list[diff.Write] = []
        for lid, cells_changed in diffs.items():
            lyr = onemap if lid == ONEMAP else by_id[lid]
            writes += diff.roll_up_writes(conn, lyr, new[lid], cells_changed, resolutions)
    if writes:
        with psycopg.connect(url) as conn:
            out["rows"] = diff.write_changes(conn, writes, at)
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
