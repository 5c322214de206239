"""`twin risk compute`: read each layer's inputs from the model, score them, write ``risk_score``.

Two phases, so a layer's SQL can neither change the model nor leave half a result behind:
every source query runs first in one READ ONLY transaction (a snapshot of the model); then one
write transaction replaces the scores of the computed layers, writes the level counts per admin
area to ``risk_snapshot`` (cockpit trends) and bumps the tiles' data version. Any error names the
layer file and leaves the previous scores in place.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa

from twin import grid
from twin.city.load import bump_layer_versions, ewkb
from twin.db.copy import copy_arrow
from twin.db.runs import latest_run_id, nowcast_step_id
from twin.risk.catalog import LEVELS, ONEMAP, Catalog, CatalogError, Layer
from twin.risk.scoring import combine, roll_up, score_layer

RISK_VERSION_KEY = "risk_score"
# Bumped by a compute of every layer: when the stored scores last were a full compute of the
# catalog (twin.risk.incremental patches them only if no layer file is newer).
RISK_FULL_KEY = "risk_score_full"


class ComputeError(RuntimeError):
    """A layer's source query failed or returned the wrong shape; names the file."""


@dataclass
class ComputeResult:
    computed_at: datetime
    flood_run: int | None
    traffic_run: int | None
    levels: dict[str, dict[str, int]] = field(default_factory=dict)  # layer -> level -> cells
    seconds: float = 0.0
    # Where the time went: per layer its source query, then scoring (the one map, roll-ups and
    # rows to write included) and writing (delete, COPY, snapshot).
    timings: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "computed_at": self.computed_at.isoformat(),
            "flood_run": self.flood_run,
            "traffic_run": self.traffic_run,
            "layers": self.levels,
            "seconds": round(self.seconds, 3),
            "timings_s": self.timings,
        }


def read_inputs(conn: psycopg.Connection, layer: Layer, params: dict[str, Any]) -> pd.DataFrame:
    """Run a layer's source query; one row per cell at the layer's resolution."""
    try:
        cur = conn.execute(layer.sql.encode(), {**params, "res": layer.res})
    except psycopg.Error as exc:
        raise ComputeError(f"{layer.path}: source.sql: {exc}".strip()) from exc
    cols = [d.name for d in cur.description or []]
    want = ["cell", *(i.name for i in layer.inputs)]
    missing = [c for c in want if c not in cols]
    if missing:
        raise ComputeError(f"{layer.path}: source.sql: returns no column {missing[0]!r} "
                           f"(it returns {cols})")  # fmt: skip
    df = pd.DataFrame(cur.fetchall(), columns=cols)[want]
    df = df[df["cell"].notna()]
    df["cell"] = df["cell"].astype(np.int64)
    if df["cell"].duplicated().any():
        dup = grid.to_hex([int(df["cell"][df["cell"].duplicated()].iloc[0])])[0]
        raise ComputeError(f"{layer.path}: source.sql: cell {dup} appears more than once")
    if len(df):
        res = grid.resolution(df["cell"].to_numpy())
        bad = res != layer.res
        if bad.any():
            raise ComputeError(
                f"{layer.path}: source.sql: cells must be at resolution {layer.res}, "
                f"found {int(res[bad][0])}"
            )
    return df


def _frame_rows(layer_id: str, res: int, df: pd.DataFrame, at: datetime) -> pd.DataFrame:
    cells = df["cell"].to_numpy(dtype=np.int64)
    return pd.DataFrame(
        {
            "layer_id": layer_id,
            "res": res,
            "cell": cells,
            "score": df["score"].to_numpy(),
            "level": df["level"].to_numpy(),
            "components": [json.dumps(c) for c in df["components"]],
            "small_count": df["small_count"].to_numpy(),
            "computed_at": at.isoformat(),
            "geom": ewkb([grid.boundary(int(c)) for c in cells]),
        }
    )


def copy_scores(conn: psycopg.Connection, rows: pd.DataFrame) -> None:
    """COPY rows of :func:`_frame_rows` into ``risk_score`` (Arrow's CSV writer: the rows carry
    long JSON and EWKB strings, which pandas writes several times slower)."""
    table = pa.Table.from_pandas(rows, preserve_index=False)
    copy_arrow(conn, "twin.risk_score", list(rows.columns), table)


SNAPSHOT_SQL = """
INSERT INTO twin.risk_snapshot (computed_at, layer_id, area_id, blue, yellow, orange, red)
WITH RECURSIVE up(grid, area) AS (
    SELECT id, id FROM twin.admin_area WHERE level = 'grid'
    UNION ALL
    SELECT up.grid, a.parent_id FROM up JOIN twin.admin_area a ON a.id = up.area
    WHERE a.parent_id IS NOT NULL
),
lay AS (SELECT * FROM unnest(%(layers)s::text[], %(res)s::int[]) AS l(layer_id, res)),
counts AS (
    SELECT r.layer_id, up.area,
           count(*) FILTER (WHERE r.level = 'blue') AS blue,
           count(*) FILTER (WHERE r.level = 'yellow') AS yellow,
           count(*) FILTER (WHERE r.level = 'orange') AS orange,
           count(*) FILTER (WHERE r.level = 'red') AS red
    FROM twin.risk_score r
    JOIN lay ON lay.layer_id = r.layer_id AND lay.res = r.res
    JOIN twin.cell_stats c ON c.res = r.res AND c.cell = r.cell
    JOIN up ON up.grid = c.area_id
    GROUP BY r.layer_id, up.area
)
SELECT %(at)s, lay.layer_id, a.id, coalesce(c.blue, 0), coalesce(c.yellow, 0),
       coalesce(c.orange, 0), coalesce(c.red, 0)
FROM twin.admin_area a CROSS JOIN lay
LEFT JOIN counts c ON c.area = a.id AND c.layer_id = lay.layer_id
"""


# Cells whose people counts the public does not get, as decided by the one suppression model
# (twin.access.suppression): cell statistics, and the affected people of a flood run.
STATS_HIDDEN_SQL = """
SELECT cell FROM twin.cell_stats WHERE res = %(res)s AND cardinality(hidden) > 0
"""
FLOOD_HIDDEN_SQL = """
SELECT cell FROM twin.flood_cell_result
WHERE run_id = %(run)s AND res = %(res)s AND people_hidden
"""
FLOOD_INPUTS = ("affected_people",)


def mark_hidden_people(
    conn: psycopg.Connection, layer: Layer, scored: pd.DataFrame, flood_run: int | None
) -> None:
    """Flag ``small_count`` where a people input repeats a count the suppression model hides.

    A score is invertible to its people inputs (the other inputs are public), so a cell's score
    and people components may go public only where every count they rest on does. Inputs named
    as a flood result's count follow the flood run's flags; every other people input (a cell
    statistic or a function of one) follows the cell's statistics: any hidden people field of
    the cell hides it (conservative: the input may mix fields).
    """
    people = [i.name for i in layer.inputs if i.people]
    if not people or not len(scored):
        return
    hidden: set[int] = set()
    if any(n not in FLOOD_INPUTS for n in people):
        hidden |= {c for (c,) in conn.execute(STATS_HIDDEN_SQL, {"res": layer.res})}
    if flood_run is not None and any(n in FLOOD_INPUTS for n in people):
        rows = conn.execute(FLOOD_HIDDEN_SQL, {"run": flood_run, "res": layer.res})
        hidden |= {c for (c,) in rows}
    if hidden:
        cells = scored["cell"].to_numpy(dtype=np.int64)
        scored["small_count"] = scored["small_count"].to_numpy(dtype=bool) | np.isin(
            cells, np.fromiter(hidden, dtype=np.int64)
        )


def source_params(
    conn: psycopg.Connection, at: datetime, flood_run: int | None, traffic_run: int | None
) -> dict[str, Any]:
    """The bound parameters of every layer's source query (``res`` aside)."""
    return {"as_of": at, "flood_run": flood_run, "traffic_run": traffic_run,
            "nowcast_step": nowcast_step_id(conn, flood_run),
            "ensemble_run": latest_run_id(conn, "flood_ensemble")}  # fmt: skip


def compute_risk(
    url: str,
    catalog: Catalog,
    *,
    resolutions: list[int],
    k: int,
    only: list[str] | None = None,
    as_of: datetime | None = None,
) -> ComputeResult:
    """Score the catalog's layers (or ``only`` these ids) and the one map; write them.

    Parameters
    ----------
    url
        Database URL.
    catalog
        The layer catalog; refused while any of its files is broken.
    resolutions
        The twin's H3 resolutions: scores are also rolled up to each one coarser than a layer's.
    k
        Suppression threshold for ``small_count``.
    only
        Layer ids to compute (the one map is recomputed whenever a combined layer is).
    as_of
        The time event windows end at (default: now).
    """
    if catalog.errors:
        raise catalog.errors[0]
    t0 = time.perf_counter()
    layers = list(catalog.layers)
    if only:
        known = {lyr.id for lyr in layers} | {ONEMAP}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise CatalogError("layers", unknown[0], f"no such layer; layers: {sorted(known)}")
        todo = [lyr for lyr in layers if lyr.id in only]
    else:
        todo = layers
    onemap = catalog.get(ONEMAP)
    assert onemap is not None
    parts = {i.name for i in onemap.inputs}
    with_onemap = not only or ONEMAP in only or any(lyr.id in parts for lyr in todo)
    # The one map needs every combined layer's scores, computed or not.
    need = {lyr.id: lyr for lyr in layers if lyr in todo or (with_onemap and lyr.id in parts)}
    at = as_of or datetime.now(UTC)
    scored: dict[str, pd.DataFrame] = {}
    sources: dict[str, float] = {}
    t_score = 0.0
    with psycopg.connect(url) as conn:
        conn.read_only = True
        flood_run = latest_run_id(conn, "flood")
        traffic_run = latest_run_id(conn, "traffic")
        params = source_params(conn, at, flood_run, traffic_run)
        for lyr in need.values():
            t = time.perf_counter()
            inputs = read_inputs(conn, lyr, params)
            sources[lyr.id] = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            scored[lyr.id] = score_layer(inputs, lyr, k=k)
            mark_hidden_people(conn, lyr, scored[lyr.id], flood_run)
            t_score += time.perf_counter() - t
    t = time.perf_counter()
    result = ComputeResult(computed_at=at, flood_run=flood_run, traffic_run=traffic_run)
    out: dict[str, tuple[Layer, pd.DataFrame]] = {lyr.id: (lyr, scored[lyr.id]) for lyr in todo}
    if with_onemap:
        out[ONEMAP] = (onemap, combine({p: scored[p] for p in parts if p in scored}))
    frames = []
    for lid, (lyr, df) in out.items():
        result.levels[lid] = {lvl: int((df["level"] == lvl).sum()) for lvl in LEVELS}
        frames.append(_frame_rows(lid, lyr.res, df, at))
        for res in sorted(r for r in resolutions if r < lyr.res):
            up = roll_up(df, grid.parent(df["cell"].to_numpy(dtype=np.int64), res))
            frames.append(_frame_rows(lid, res, up, at))
    rows = pd.concat(frames, ignore_index=True)
    t_score += time.perf_counter() - t
    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM twin.risk_score WHERE layer_id = ANY(%s)", (list(out),))
        copy_scores(conn, rows)
        conn.execute(
            SNAPSHOT_SQL,
            {"layers": list(out), "res": [lyr.res for lyr, _ in out.values()], "at": at},
        )
        bump_layer_versions(
            conn, (RISK_VERSION_KEY,) if only else (RISK_VERSION_KEY, RISK_FULL_KEY)
        )
    result.timings = {"sources": sources, "score": round(t_score, 3),
                      "write": round(time.perf_counter() - t, 3), "rows": len(rows)}  # fmt: skip
    result.seconds = time.perf_counter() - t0
    return result
