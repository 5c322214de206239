"""A flood run's results mapped onto the model: cells, road links, buildings, people, events."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
import shapely
from pyproj import Transformer
from scipy import ndimage

from twin import grid as h3grid
from twin.access.suppression import suppress
from twin.city.cells import refresh_cell_stats
from twin.city.load import ewkb
from twin.db.copy import copy_rows
from twin.settings import Settings
from twin.sim.flood import FloodResult, pixel_index

if TYPE_CHECKING:
    from twin.runs.flood import TwinGrid


def pixel_cells(settings: Settings, g: TwinGrid) -> npt.NDArray[np.int64]:
    """The finest-resolution cell of every pixel (cached per grid, in memory and on disk)."""
    return h3grid.raster_to_cells(
        g.transform, g.bed.shape, g.crs, settings.finest_resolution,
        cache_dir=settings.data_dir / "cache",
    )  # fmt: skip


def cell_table(
    settings: Settings,
    g: TwinGrid,
    result: FloodResult,
    cells: npt.NDArray[np.int64],
    flooded_m: float,
) -> pd.DataFrame:
    """Per cell at every kept resolution, over land pixels: max and mean of the max depth (m),
    time of the max (s) at the deepest pixel, share of pixels reaching ``flooded_m``, first time
    any pixel reached it (s), max hazard rating."""
    land = g.land.ravel()
    maxd = np.nan_to_num(result.max_depth.ravel()[land].astype(np.float64))
    base = pd.DataFrame(
        {
            "cell": cells.ravel()[land],
            "max_depth_m": maxd,
            "time_of_max_s": result.time_of_max_s.ravel()[land].astype(np.float64),
            "flooded": (maxd >= flooded_m).astype(np.float64),
            "time_to_15cm_s": result.time_to_threshold_s.ravel()[land],
            "max_hazard": np.nan_to_num(result.max_hazard.ravel()[land].astype(np.float64)),
        }
    )
    frames = []
    for res in settings.h3_resolutions:
        df = base.assign(cell=h3grid.parent(base.cell.to_numpy(), res))
        grouped = df.groupby("cell", sort=True)
        deepest = df.loc[grouped.max_depth_m.idxmax()].set_index("cell")
        frames.append(
            pd.DataFrame(
                {
                    "res": res,
                    "max_depth_m": grouped.max_depth_m.max(),
                    "mean_max_depth_m": grouped.max_depth_m.mean(),
                    "time_of_max_s": deepest.time_of_max_s,
                    "flooded_share": grouped.flooded.mean(),
                    "time_to_15cm_s": grouped.time_to_15cm_s.min(),
                    "max_hazard": grouped.max_hazard.max(),
                }
            ).reset_index()
        )
    return pd.concat(frames, ignore_index=True)


def building_depths(g: TwinGrid, result: FloodResult) -> pd.Series:
    """Max depth of the water at each building's walls (m): the deepest ground pixel touching
    its footprint (roofs are raised, so the water stands around them, not on them)."""
    maxd = np.nan_to_num(result.max_depth.astype(np.float64))
    bid = g.building_id
    ground = np.where(bid > 0, -np.inf, maxd)
    around = ndimage.maximum_filter(ground, size=3, mode="nearest")
    mask = bid > 0
    df = pd.DataFrame({"id": bid[mask], "depth": around[mask]})
    depth = df.groupby("id").depth.max()
    ids, xs, ys = g.building_points
    missing = ~np.isin(ids, depth.index.to_numpy())
    if missing.any():
        r, c, inside = pixel_index(g.transform, g.bed.shape, xs[missing], ys[missing])
        extra = pd.Series(np.where(inside, maxd[r, c], 0.0), index=ids[missing])
        depth = pd.concat([depth, extra])
    depth = depth[np.isfinite(depth)]
    return depth.clip(lower=0.0)


def link_depths(conn: psycopg.Connection, g: TwinGrid, result: FloodResult) -> pd.Series:
    """Max depth along each road link (m), sampled every half cell; bridges are above it."""
    return link_depth_table(conn, g, {"max_depth": result.max_depth})["max_depth"]


def link_depth_table(
    conn: psycopg.Connection, g: TwinGrid, depths: dict[str, npt.NDArray[np.floating]]
) -> pd.DataFrame:
    """Max depth along each road link (m) of each named depth grid, one column each (index:
    link id), sampled every half cell; bridges are above the water and left out."""
    return link_sampler(conn, g)(depths)


def link_sampler(
    conn: psycopg.Connection, g: TwinGrid
) -> Callable[[dict[str, npt.NDArray[np.floating]]], pd.DataFrame]:
    """:func:`link_depth_table` for many depth grids on one grid: the links are read and
    sampled once (an ensemble's members one after another)."""
    rows = conn.execute(
        "SELECT id, ST_AsBinary(geom) FROM twin.road_link WHERE NOT bridge ORDER BY id"
    ).fetchall()
    if not rows:
        return lambda depths: pd.DataFrame({k: pd.Series(dtype=np.float64) for k in depths})
    to_grid = Transformer.from_crs("EPSG:4326", g.crs, always_xy=True)
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    lines = shapely.from_wkb([bytes(r[1]) for r in rows])
    coords, index = shapely.get_coordinates(
        shapely.segmentize(
            shapely.transform(
                lines, lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1]))
            ),
            g.dx / 2,
        ),
        return_index=True,
    )
    r, c, inside = pixel_index(g.transform, g.bed.shape, coords[:, 0], coords[:, 1])

    def sample(depths: dict[str, npt.NDArray[np.floating]]) -> pd.DataFrame:
        sampled = {}
        for name, grid_depth in depths.items():
            d = np.nan_to_num(np.asarray(grid_depth, dtype=np.float64))
            sampled[name] = np.where(inside, d[r, c], 0.0)
        return pd.DataFrame(sampled, index=ids[index]).groupby(level=0).max()

    return sample


def store_results(
    conn: psycopg.Connection,
    settings: Settings,
    run_id: int,
    g: TwinGrid,
    result: FloodResult,
    *,
    started_at: datetime,
    link_states: tuple[float, float],
    building_m: float,
    event_m: float,
    max_events: int,
    event_areas: frozenset[int] | None = None,
) -> dict[str, Any]:
    """Write the run's results in the caller's transaction; returns counts for the summary.

    ``event_areas``: simulated events only in these admin areas (None: everywhere)."""
    slowed_m, closed_m = link_states
    pixels = pixel_cells(settings, g)
    cells = cell_table(settings, g, result, pixels, slowed_m)

    bdepth = building_depths(g, result)
    affected = bdepth[bdepth >= building_m]
    b_rows = conn.execute(
        "SELECT b.id, b.cell, (SELECT count(*) FROM twin.person p WHERE p.home_building_id = b.id)"
        " FROM twin.building b WHERE b.id = ANY(%s)",
        (affected.index.to_list(),),
    ).fetchall()
    bdf = pd.DataFrame(b_rows, columns=["id", "cell", "people"])
    per_cell = []
    for res in settings.h3_resolutions:
        if bdf.empty:
            break
        cell = h3grid.parent(bdf.cell.to_numpy(dtype=np.int64), res)
        per_cell.append(
            bdf.assign(cell=cell, res=res)
            .groupby(["res", "cell"])
            .agg(affected_buildings=("id", "size"), affected_people=("people", "sum"))
            .reset_index()
        )
    cells = cells.merge(
        pd.concat(per_cell)
        if per_cell
        else pd.DataFrame(columns=["res", "cell", "affected_buildings", "affected_people"]),
        on=["res", "cell"],
        how="left",
    )
    cells["affected_buildings"] = cells.affected_buildings.fillna(0).astype(np.int64)
    cells["affected_people"] = cells.affected_people.fillna(0).astype(np.int64)
    cells["people_hidden"], total_hidden = people_hidden(cells, bdf, settings)
    cells.insert(0, "run_id", run_id)
    copy_rows(conn, "twin.flood_cell_result", list(cells.columns), cells)

    reached = bdepth[bdepth >= 0.05]
    copy_rows(
        conn, "twin.flood_building_result", ["run_id", "building_id", "max_depth_m"],
        pd.DataFrame(
            {"run_id": run_id, "building_id": reached.index, "max_depth_m": reached.values}
        ),
    )  # fmt: skip

    ldepth = link_depths(conn, g, result)
    ldepth = ldepth[ldepth >= 0.05]
    state = np.where(
        ldepth >= closed_m, "closed", np.where(ldepth >= slowed_m, "slowed", "passable")
    )
    copy_rows(
        conn, "twin.flood_link_result", ["run_id", "link_id", "max_depth_m", "state"],
        pd.DataFrame({"run_id": run_id, "link_id": ldepth.index, "max_depth_m": ldepth.values,
                      "state": state}),
    )  # fmt: skip

    n_events = _events(conn, settings, run_id, g, result, pixels, started_at, event_m, max_events,
                       event_areas)  # fmt: skip
    finest = cells[cells.res == settings.finest_resolution]
    return {
        "flooded_cells": int((finest.max_depth_m >= slowed_m).sum()),
        "cells_res": settings.finest_resolution,
        "slowed_links": int((state == "slowed").sum()),
        "closed_links": int((state == "closed").sum()),
        "affected_buildings": len(affected),
        "affected_people": int(bdf.people.sum()) if not bdf.empty else 0,
        "affected_people_hidden": total_hidden,
        "events": n_events,
    }


def people_hidden(
    cells: pd.DataFrame, bdf: pd.DataFrame, settings: Settings
) -> tuple[npt.NDArray[np.bool_], bool]:
    """Per row of ``cells``: whether its ``affected_people`` is hidden from the public, and
    whether the run's total is (the one model of :func:`twin.access.suppression.suppress`: atoms per
    finest cell, every resolution and the run's total as nodes)."""
    out = np.zeros(len(cells), dtype=bool)
    if bdf.empty:
        return out, False
    fine = h3grid.parent(bdf.cell.to_numpy(dtype=np.int64), settings.finest_resolution)
    model = suppress(
        fine, ["people"] * len(fine), bdf.people.to_numpy(dtype=np.int64),
        resolutions=settings.h3_resolutions, fields={"people": None},
        k=settings.suppression_k,
    )  # fmt: skip
    for r, hidden in model.cells["people"].items():
        m = (cells.res == r).to_numpy()
        out[m] = np.isin(cells.cell.to_numpy(dtype=np.int64)[m], list(hidden))
    return out, model.totals["people"]


def _events(
    conn: psycopg.Connection,
    settings: Settings,
    run_id: int,
    g: TwinGrid,
    result: FloodResult,
    cells: npt.NDArray[np.int64],
    started_at: datetime,
    event_m: float,
    max_events: int,
    event_areas: frozenset[int] | None = None,
) -> int:
    """Waterlogging events at the deepest land pixel of the worst cells (one per cell); with
    ``event_areas``, only those in these admin areas (a scoped user's run)."""
    res = min(9, settings.finest_resolution)
    maxd = np.where(g.land, np.nan_to_num(result.max_depth.astype(np.float64)), 0.0)
    deep = np.flatnonzero(maxd.ravel() >= event_m)
    if len(deep) == 0:
        return 0
    df = pd.DataFrame({"px": deep, "depth": maxd.ravel()[deep]})
    df["cell"] = h3grid.parent(cells.ravel()[deep], res)
    worst = df.loc[df.groupby("cell").depth.idxmax()].nlargest(max_events, "depth")
    rows, cols = np.unravel_index(worst.px.to_numpy(), g.bed.shape)
    a, _, c0, _, e, f0 = g.transform[:6]
    x = c0 + a * (cols + 0.5)
    y = f0 + e * (rows + 0.5)
    lon, lat = Transformer.from_crs(g.crs, "EPSG:4326", always_xy=True).transform(x, y)
    depth = worst.depth.to_numpy()
    tmax = result.time_of_max_s[rows, cols].astype(np.float64)
    frame = pd.DataFrame(
        {
            "type": "waterlogging",
            "severity": np.where(depth >= 1.0, 4, np.where(depth >= 0.5, 3, 2)),
            "status": "open",
            "source": "simulation",
            "occurred_at": [started_at + timedelta(seconds=float(t)) for t in tmax],
            "description": [f"simulated waterlogging {d:.2f} m deep (run {run_id})" for d in depth],
            "sim_run_id": run_id,
            "cell": h3grid.points_to_cells(lon, lat, settings.finest_resolution),
            "geom": ewkb(shapely.points(lon, lat)),
        }
    )
    copy_rows(conn, "twin.event", list(frame.columns), frame)
    conn.execute(
        "UPDATE twin.event x SET area_id = a.id FROM twin.admin_area a "
        "WHERE x.sim_run_id = %s AND a.level = 'grid' AND ST_Intersects(a.geom, x.geom)",
        (run_id,),
    )
    if event_areas is not None:
        gone = conn.execute(
            "DELETE FROM twin.event WHERE sim_run_id = %s"
            " AND (area_id IS NULL OR area_id <> ALL(%s)) RETURNING cell",
            (run_id, sorted(event_areas)),
        ).fetchall()
        frame = frame[~frame["cell"].isin([r[0] for r in gone])] if gone else frame
    # The cell card counts open events from cell_stats: recount the cells that gained some.
    refresh_cell_stats(
        conn, settings.h3_resolutions, cells=frame["cell"].to_numpy(), k=settings.suppression_k
    )
    return len(frame)
