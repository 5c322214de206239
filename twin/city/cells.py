"""Joins onto H3 cells: parcel and patch overlaps, and the per-cell statistics.

The counting happens in SQL (``twin/db/sql/cell_stats.sql``) over the finest cell stored on each
entity, rolled up to every configured resolution by ``twin.h3_parent``; Python adds what SQL
cannot do without an H3 extension: cell boundaries and the polygons' area-weighted overlaps.
Everything runs in the caller's transaction, so readers never see half a refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import shapely

from twin import grid
from twin.access.suppression import cell_hidden_fields
from twin.db.copy import copy_rows
from twin.db.queries import query

SQL = "cell_stats.sql"
log = logging.getLogger(__name__)
DEFAULT_K = 10  # the default of TWIN_SUPPRESSION_K


def polygon_cells(
    ids: Sequence[int] | np.ndarray, geoms: Sequence[shapely.Geometry] | np.ndarray, res: int
) -> pd.DataFrame:
    """Area-weighted overlaps of polygons (EPSG:4326) with cells: columns id, res, cell, share."""
    gs = pd.Series(list(geoms), index=list(ids), dtype=object)
    df = grid.polygons_to_cells(gs.to_numpy(), res)
    return pd.DataFrame(
        {
            "id": np.asarray(gs.index)[df.polygon.to_numpy(dtype=np.int64)],
            "res": res,
            "cell": df.cell.to_numpy(),
            "share": df.share.to_numpy(),
        }
    )


def refresh_cell_stats(
    conn: psycopg.Connection,
    resolutions: Sequence[int],
    *,
    as_of: datetime | None = None,
    cells: npt.ArrayLike | None = None,
    k: int = DEFAULT_K,
) -> int:
    """Recompute ``twin.cell_stats`` at ``resolutions``; returns the rows written.

    Parameters
    ----------
    resolutions
        H3 resolutions to keep (the entities' stored cells must be at least as fine).
    as_of
        End of the 30-day event window (default: now).
    cells
        Incremental refresh: the (finest) cells whose entities changed, old and new positions
        both. Every cell under their parents at the coarsest resolution is recomputed, which
        gives exactly the rows a full refresh would. None: full refresh.
    k
        Suppression threshold (``TWIN_SUPPRESSION_K``): which people counts to hide from the
        public is decided here, for the whole table (:func:`mark_hidden`).
    """
    res_list = sorted({int(r) for r in resolutions})
    r0 = res_list[0]
    full = cells is None
    scope: list[int] = []
    if cells is not None:
        scope = _scope(cells, r0)
        if not scope:
            return 0
    params = {
        "as_of": as_of or datetime.now().astimezone(),
        "full": full,
        "r0": r0,
        "scope": scope,
        "resolutions": res_list,
    }
    conn.execute(query(SQL, "drop_temp"))
    conn.execute(query(SQL, "create_fine"), params)
    conn.execute(query(SQL, "create_agg"))
    prev: int | None = None
    for r in reversed(res_list):  # finest first: each level rolls up the one below
        conn.execute(query(SQL, "rollup"), {"res": r, "prev": prev})
        prev = r
    conn.execute(query(SQL, "create_landuse"), params)
    conn.execute(query(SQL, "analyze_temp"))
    shaped = conn.execute(query(SQL, "cells_to_shape")).fetchall()
    conn.execute(query(SQL, "create_geom"))
    if shaped:
        _copy_cell_shapes(conn, shaped, res_list)
    conn.execute(query(SQL, "delete_stats"), params)
    cur = conn.execute(query(SQL, "insert_stats"))
    conn.execute(query(SQL, "drop_temp"))
    mark_hidden(conn, k=k)
    refresh_area_counts(conn, None if full else scope, r0=r0)
    return cur.rowcount


@dataclass(frozen=True)
class CellRefresh:
    """What an incremental :func:`refresh_cells_reporting` did: the rows written, and the
    cells (any resolution) that gained or lost their statistics row."""

    rows: int
    rowset_changed: list[int]


def refresh_cells_reporting(
    conn: psycopg.Connection,
    resolutions: Sequence[int],
    *,
    cells: npt.ArrayLike,
    as_of: datetime | None = None,
    k: int = DEFAULT_K,
) -> CellRefresh:
    """An incremental :func:`refresh_cell_stats` that also reports the cells whose statistics
    row came or went.

    Why: a risk layer that reads only statistics columns an ingest cannot change can differ
    afterwards only where a row came or went (:func:`twin.risk.incremental.refresh_cells`);
    without this list it has to look for such cells itself, and one whose rows stop where the
    statistics rows do not (``elderly_alone`` keeps only cells with residents) always seems to
    differ there, and is read again after every ingest.
    """
    r0 = min(int(r) for r in resolutions)
    scope = _scope(cells, r0)
    if not scope:
        return CellRefresh(0, [])
    before = _rowset(conn, scope, r0)
    rows = refresh_cell_stats(conn, resolutions, cells=cells, as_of=as_of, k=k)
    return CellRefresh(rows, sorted(before ^ _rowset(conn, scope, r0)))


def _scope(cells: npt.ArrayLike, r0: int) -> list[int]:
    """The cells at ``r0`` above ``cells`` (those at least as fine as ``r0``)."""
    arr = np.unique(np.asarray(cells, dtype=np.int64))
    arr = arr[grid.resolution(arr) >= r0] if arr.size else arr
    return np.unique(grid.parent(arr, r0)).tolist() if arr.size else []


def _rowset(conn: psycopg.Connection, scope: list[int], r0: int) -> set[int]:
    rows = conn.execute(query(SQL, "scope_rowset"), {"scope": scope, "r0": r0})
    return {int(c) for (c,) in rows}


def refresh_area_counts(conn: psycopg.Connection, scope: Sequence[int] | None, *, r0: int) -> int:
    """Rewrite ``twin.area_counts`` (buildings and residents per grid patch); returns the areas
    written.

    ``scope``: the cells at resolution ``r0`` whose entities changed (old and new places), as
    :func:`refresh_cell_stats` works them out; None: every area. Redone are the patches that
    overlap a cell in scope and the patches of the buildings now in scope, which covers a
    building or resident that moved out of a patch as well as into one.
    """
    if scope is None:
        conn.execute(query(SQL, "area_counts_delete"), {"areas": None})
        return conn.execute(query(SQL, "area_counts_insert_all")).rowcount
    if not scope:
        return 0
    shapes = shapely.to_wkb(
        shapely.set_srid(grid.boundaries(np.asarray(scope, dtype=np.int64)), 4326),
        hex=True,
        include_srid=True,
    )
    areas = [
        r[0]
        for r in conn.execute(
            query(SQL, "scope_areas"), {"cells": list(shapes), "scope": list(scope), "r0": r0}
        ).fetchall()
    ]
    conn.execute(query(SQL, "area_counts_delete"), {"areas": areas})
    return conn.execute(query(SQL, "area_counts_insert"), {"areas": areas}).rowcount


def mark_hidden(conn: psycopg.Connection, *, k: int) -> int:
    """Store in ``cell_stats.hidden`` the people fields each cell must hide from the public.

    The whole table is decided at once, even after an incremental refresh: a changed count can
    make a sibling, a parent or the city total the one that gives it away. Returns the rows
    whose flags changed."""
    rows = conn.execute(query(SQL, "people_counts")).fetchall()
    if not rows:
        return 0
    res, cells, pop, eld, jobs, by_age = zip(*rows, strict=True)
    t0 = time.perf_counter()
    hidden = cell_hidden_fields(
        res, cells, {"population": pop, "elderly": eld, "jobs": jobs}, by_age, k=k
    )
    log.info("suppression: %d cell rows decided in %.2f s, %d with hidden fields",
             len(rows), time.perf_counter() - t0, sum(1 for h in hidden if h))  # fmt: skip
    frame = pd.DataFrame(
        {"res": res, "cell": cells, "hidden": ["{" + ",".join(h) + "}" for h in hidden]}
    )
    conn.execute(query(SQL, "create_hidden"))
    copy_rows(conn, "_cs_hidden", ["res", "cell", "hidden"], frame)
    cur = conn.execute(query(SQL, "update_hidden"))
    return cur.rowcount


def _copy_cell_shapes(
    conn: psycopg.Connection, shaped: list[tuple[int, int]], res_list: list[int]
) -> None:
    """Boundaries, centres and parents of the cells to write (SQL has no H3 geometry)."""
    res_arr = np.array([c[0] for c in shaped], dtype=np.int64)
    cell_arr = np.array([c[1] for c in shaped], dtype=np.int64)
    # Parent: the cell at the next coarser configured resolution (none for the coarsest).
    parents = pd.array(np.zeros(len(cell_arr), dtype=np.int64), dtype="Int64")
    parents[:] = pd.NA
    for r in res_list:
        coarser = [c for c in res_list if c < r]
        mask = res_arr == r
        if coarser and mask.any():
            parents[mask] = grid.parent(cell_arr[mask], coarser[-1])
    polys = grid.boundaries(cell_arr)
    lon, lat = grid.cell_centers(cell_arr)
    centres = np.asarray(shapely.points(lon, lat), dtype=object)
    rows = conn.execute(query(SQL, "grid_patches")).fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    patch = centre_patches(centres, ids, shapely.from_wkb([r[1] for r in rows]))
    frame = pd.DataFrame(
        {
            "res": res_arr,
            "cell": cell_arr,
            "parent": parents,
            "geom": shapely.to_wkb(shapely.set_srid(polys, 4326), hex=True, include_srid=True),
            "center": shapely.to_wkb(shapely.set_srid(centres, 4326), hex=True, include_srid=True),
            "patch": patch,
        }
    )
    copy_rows(conn, "_cs_geom", ["res", "cell", "parent", "geom", "center", "patch"], frame)


def centre_patches(
    centres: npt.NDArray[np.object_], ids: npt.NDArray[np.int64], patches: npt.NDArray[np.object_]
) -> pd.arrays.IntegerArray:
    """For each cell centre (lon/lat points), the id of the one grid patch that holds it
    (boundary included, as PostGIS ``ST_Intersects``), or NA where none or several do: those
    few are settled in SQL by overlap area. One STRtree query for every centre: looking each
    up in PostGIS was a third of the insert at city scale (0.07 ms x 150 k cells)."""
    out = pd.array(np.zeros(len(centres), dtype=np.int64), dtype="Int64")
    out[:] = pd.NA
    if len(centres) == 0 or len(ids) == 0:
        return out
    point, patch = shapely.STRtree(patches).query(centres, predicate="intersects")
    hits = np.bincount(point, minlength=len(centres))
    sole = hits[point] == 1
    out[point[sole]] = ids[patch[sole]]
    return out
