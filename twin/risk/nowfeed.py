"""The risk layers the rolling nowcast feeds, updated after each step for the cells that changed.

A layer is *nowcast-fed* when its source query reads the bound parameter ``nowcast_step`` (the
latest nowcast step when it is newer than the latest flood run: ``twin.db.runs.nowcast_step_id``).
After a step, :func:`update_nowcast_layers` re-reads those layers' sources, scores them (the same
:func:`twin.risk.scoring.score_layer` as ``twin risk compute``) and compares the result with the
stored scores: only the cells whose row changed (score, level, components or the small-count
flag; new cells; cells gone dry) are rewritten, then the one map at those cells (from the stored
scores of the other combined layers), then, at every coarser resolution, the parents of those
cells. The rows written are those a full ``twin risk compute`` over the same inputs writes
(tests/runs/test_nowloop.py checks it row by row); ``computed_at`` tells which rows changed.

Not written here: the ``risk_snapshot`` trend rows (a full compute writes them; a step every
five minutes would bury the cockpit's "against the previous compute" under near-copies), and the
layers that do not read the nowcast (they keep what the last full compute left).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg

from twin import grid
from twin.city.load import bump_layer_versions
from twin.db.runs import latest_run_id
from twin.risk import diff
from twin.risk.catalog import ONEMAP, Catalog, Layer
from twin.risk.compute import (
    RISK_VERSION_KEY,
    _frame_rows,
    copy_scores,
    mark_hidden_people,
    read_inputs,
    source_params,
)
from twin.risk.scoring import combine, roll_up, score_layer


def nowcast_layers(catalog: Catalog) -> list[Layer]:
    """The catalog's layers whose source query reads ``%(nowcast_step)s``."""
    return [lyr for lyr in catalog.layers if "%(nowcast_step)s" in lyr.sql]


def update_nowcast_layers(
    url: str,
    catalog: Catalog,
    *,
    resolutions: list[int],
    k: int,
    as_of: datetime | None = None,
) -> dict[str, Any]:
    """Bring the nowcast-fed layers and the one map up to date; write only what changed.

    Parameters
    ----------
    url
        Database URL.
    catalog
        The layer catalog; refused while any of its files is broken.
    resolutions
        The twin's H3 resolutions (roll-ups to each one coarser than a layer's).
    k
        Suppression threshold for ``small_count``.
    as_of
        The time event windows end at (default: now), as ``twin risk compute --as-of``.

    Returns
    -------
    ``layers``: per layer id the cells rewritten at its own resolution; ``rows``: rows
    deleted and written over every resolution; ``nowcast_step``, ``seconds``.
    """
    if catalog.errors:
        raise catalog.errors[0]
    t0 = time.perf_counter()
    at = as_of or datetime.now(UTC)
    fed = nowcast_layers(catalog)
    onemap = catalog.get(ONEMAP)
    assert onemap is not None
    parts = [i.name for i in onemap.inputs]
    by_id = {lyr.id: lyr for lyr in catalog.layers}
    out: dict[str, Any] = {"layers": {}, "rows": 0, "nowcast_step": None}
    # layer id -> (layer, its rows at its resolution before, after, cells changed there)
    plan: dict[str, tuple[Layer, pd.DataFrame, pd.DataFrame, set[int]]] = {}
    with psycopg.connect(url) as conn:
        conn.read_only = True
        flood_run = latest_run_id(conn, "flood")
        params = source_params(conn, at, flood_run, latest_run_id(conn, "traffic"))
        out["nowcast_step"] = params["nowcast_step"]
        for lyr in fed:
            new = score_layer(read_inputs(conn, lyr, params), lyr, k=k)
            mark_hidden_people(conn, lyr, new, flood_run)
            old = diff.stored(conn, lyr.id, lyr.res)
            plan[lyr.id] = (lyr, old, new, diff.changed(new, old))
        touched = {c for lid, (_, _, _, ch) in plan.items() if lid in parts for c in ch}
        if touched:
            # The one map at the touched cells, from every combined layer's scores there.
            scored = {}
            for p in parts:
                if p in plan:
                    scored[p] = diff.only(plan[p][2], touched)
                else:
                    scored[p] = diff.only(diff.stored(conn, p, by_id[p].res), touched)
            new_cells = combine(scored)
            old = diff.stored(conn, ONEMAP, onemap.res)
            changed = diff.changed(new_cells, diff.only(old, touched))
            plan[ONEMAP] = (onemap, old, diff.patched(old, new_cells, touched), changed)
    writes: list[tuple[str, int, list[int], pd.DataFrame]] = []  # layer, res, cells, rows
    for lid, (lyr, _old, new, changed) in plan.items():
        out["layers"][lid] = len(changed)
        if not changed:
            continue
        writes.append((lid, lyr.res, sorted(changed), diff.only(new, changed)))
        child_cells = new["cell"].to_numpy(dtype=np.int64)
        changed_arr = np.fromiter(changed, dtype=np.int64, count=len(changed))
        for res in sorted(r for r in resolutions if r < lyr.res):
            parents = set(grid.parent(changed_arr, res).tolist())
            of_child = grid.parent(child_cells, res)
            below = np.isin(of_child, np.fromiter(parents, dtype=np.int64, count=len(parents)))
            up = roll_up(new[below], of_child[below])
            writes.append((lid, res, sorted(parents), up))
    if writes:
        with psycopg.connect(url) as conn:
            frames = []
            for lid, res, cells, rows in writes:
                cur = conn.execute(
                    "DELETE FROM twin.risk_score WHERE layer_id = %s AND res = %s"
                    " AND cell = ANY(%s)",
                    (lid, res, cells),
                )
                out["rows"] += cur.rowcount
                if len(rows):
                    frames.append(_frame_rows(lid, res, rows.reset_index(drop=True), at))
            if frames:
                table = pd.concat(frames, ignore_index=True)
                copy_scores(conn, table)
                out["rows"] += len(table)
            bump_layer_versions(conn, (RISK_VERSION_KEY,))
    out["seconds"] = round(time.perf_counter() - t0, 3)
    return out
