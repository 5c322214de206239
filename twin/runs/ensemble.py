"""A storm ensemble on the twin: ``twin simulate flood --ensemble SPEC.yaml --scheduler ...``.

The client reads the twin's grid once (DEM, raised buildings, roughness, drainage: the inputs
of a storm run, :func:`twin.runs.flood.load_grid`), the members run as tasks on a Dask cluster
(:mod:`twin.runs.ensemble_cluster`; the science never touches the database), and each member's
maxima are folded into per-cell and per-road-link maxima as they come back, so the client holds
a few small tables rather than every member's grid. The results go back in one transaction with
the run (kind ``flood_ensemble``) marked succeeded: per H3 cell at every kept resolution and per
road link reached, the share of members whose max depth exceeds 15 cm and 30 cm, and the two
probability rasters. The ``flood_ensemble`` risk layer reads the latest such run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg

from twin import grid as h3grid
from twin.db.copy import copy_rows
from twin.db.engine import database_url
from twin.runs import floodcells, store
from twin.runs.ensemble_cluster import LOCAL, run_members
from twin.runs.ensemblespec import EnsembleSpec
from twin.runs.flood import TwinGrid, load_grid
from twin.settings import Settings
from twin.sim.ensemble import THRESHOLDS_M, Member, MemberGrid, MemberMaxima, exceedance
from twin.sim.gridfiles import write_geotiffs

KIND = "flood_ensemble"
#: Road links whose max depth reaches this (m) in some member are stored (as flood runs do).
LINK_REACHED_M = 0.05
Sampler = Callable[[dict[str, npt.NDArray[np.floating]]], pd.DataFrame]
CELL_COLUMNS = ["run_id", "res", "cell", "p_over_15cm", "p_over_30cm", "mean_max_depth_m"]
LINK_COLUMNS = ["run_id", "link_id", "p_over_15cm", "p_over_30cm", "mean_max_depth_m"]


@dataclass(frozen=True)
class EnsembleParams:
    spec: EnsembleSpec
    scheduler: str = LOCAL
    workers: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "spec": self.spec.model_dump(mode="json"),
            "members": len(self.spec.members()),
            "scheduler": self.scheduler,
            "workers": self.workers,
        }


def member_grid(g: TwinGrid) -> MemberGrid:
    """What the members need of the twin's grid (the rest stays in the client)."""
    return MemberGrid(
        bed=g.bed, dx=g.dx, manning=g.manning, drainage_m_s=g.drainage_m_s, active=g.active
    )


class Accumulator:
    """Members' maxima folded, as they arrive, into the finest cells' and the road links' max
    depth per member and per-pixel exceedance counts. Rows are kept by member index, so the
    result does not depend on the order in which members complete."""

    def __init__(
        self,
        g: TwinGrid,
        pixels: npt.NDArray[np.int64],
        sample_links: Sampler,
        n_members: int,
    ) -> None:
        self.land = g.land.ravel()
        self.cells, self.inverse = np.unique(pixels.ravel()[self.land], return_inverse=True)
        self.sample_links = sample_links
        self.cell_max = np.zeros((n_members, len(self.cells)))
        self.link_ids: npt.NDArray[np.int64] | None = None
        self.link_max: npt.NDArray[np.float64] | None = None
        self.pixel_counts = np.zeros((len(THRESHOLDS_M), *g.bed.shape), dtype=np.int32)
        self.members: dict[int, dict[str, Any]] = {}
        self.n = n_members

    def add(self, out: MemberMaxima, member: Member) -> None:
        maxd = np.nan_to_num(np.asarray(out.max_depth, dtype=np.float64), nan=0.0)
        np.maximum.at(self.cell_max[out.index], self.inverse, maxd.ravel()[self.land])
        links = self.sample_links({"d": maxd})["d"]
        if self.link_max is None:
            self.link_ids = links.index.to_numpy(dtype=np.int64)
            self.link_max = np.zeros((self.n, len(links)))
        self.link_max[out.index] = links.to_numpy(dtype=np.float64)
        for k, t in enumerate(THRESHOLDS_M):
            self.pixel_counts[k] += maxd > t
        land_max = float(maxd.ravel()[self.land].max()) if self.land.any() else 0.0
        self.members[out.index] = {
            "index": out.index, "label": member.label(),
            "return_period_years": member.return_period_years, "duration_s": member.duration_s,
            "factor": member.factor, "seed": member.seed, "draw": member.draw,
            "sigma": member.sigma, "length_m": member.length_m,
            "max_depth_m": round(land_max, 4), "steps": out.steps, "wall_s": round(out.wall_s, 3),
            "mass_error_rel": out.mass_error_rel, "rain_m3": round(out.rain_m3, 3),
        }  # fmt: skip

    def cell_table(self, resolutions: list[int], run_id: int) -> pd.DataFrame:
        """Per cell at every resolution: exceedance probabilities and mean of the cell's max."""
        frames = []
        for res in resolutions:
            parents = h3grid.parent(self.cells, res)
            ids, inv = np.unique(parents, return_inverse=True)
            at_res = np.zeros((self.n, len(ids)))
            np.maximum.at(at_res.T, inv, self.cell_max.T)
            p = exceedance(at_res)
            frames.append(
                pd.DataFrame(
                    {"run_id": run_id, "res": res, "cell": ids, "p_over_15cm": p[0],
                     "p_over_30cm": p[1], "mean_max_depth_m": at_res.mean(axis=0)}
                )
            )  # fmt: skip
        return pd.concat(frames, ignore_index=True)[CELL_COLUMNS]

    def link_table(self, run_id: int) -> pd.DataFrame:
        """Links some member's water reached: exceedance probabilities and mean of the max."""
        if self.link_max is None or self.link_ids is None or self.link_max.shape[1] == 0:
            return pd.DataFrame(columns=LINK_COLUMNS)
        p = exceedance(self.link_max)
        reached = self.link_max.max(axis=0) >= LINK_REACHED_M
        return pd.DataFrame(
            {"run_id": run_id, "link_id": self.link_ids[reached], "p_over_15cm": p[0][reached],
             "p_over_30cm": p[1][reached],
             "mean_max_depth_m": self.link_max.mean(axis=0)[reached]}
        )[LINK_COLUMNS]  # fmt: skip

    def pixel_probabilities(self) -> npt.NDArray[np.float64]:
        return self.pixel_counts / self.n


def run_ensemble(
    settings: Settings,
    params: EnsembleParams,
    *,
    run_id: int | None = None,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run the ensemble on the twin and store it; returns the run's summary (with ``run_id``).
    A failure (a member, the scheduler) marks the run failed with the error and re-raises."""
    url = database_url(settings)
    t0 = time.perf_counter()
    # The grid first: a twin without a DEM leaves no run behind.
    with psycopg.connect(url) as conn:
        g = load_grid(conn)
        sampler = floodcells.link_sampler(conn, g)
    load_s = time.perf_counter() - t0
    return store.record_run(
        url, KIND, params.as_json(),
        lambda rid: _run(settings, url, rid, params, (g, sampler, load_s), progress),
        run_id=run_id,
    )  # fmt: skip


def _run(
    settings: Settings,
    url: str,
    run_id: int,
    params: EnsembleParams,
    loaded: tuple[TwinGrid, Sampler, float],
    progress: Callable[[float], None] | None,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    g, sampler, load_s = loaded
    members = params.spec.members()
    by_index = {m.index: m for m in members}
    pixels = floodcells.pixel_cells(settings, g)
    acc = Accumulator(g, pixels, sampler, len(members))
    timings["load_s"] = round(load_s + time.perf_counter() - t0, 3)
    t1 = time.perf_counter()
    with store.progress_recorder(url, run_id) as record:

        def done(out: MemberMaxima, n_done: int) -> None:
            acc.add(out, by_index[out.index])
            record(0.95 * n_done / len(members))
            if progress is not None:
                progress(n_done / len(members))

        for _ in run_members(
            member_grid(g), members, scheduler=params.scheduler, workers=params.workers,
            on_done=done,
        ):  # fmt: skip
            pass
    timings["members_s"] = round(time.perf_counter() - t1, 3)
    t2 = time.perf_counter()
    out_dir = settings.data_dir / "runs" / str(run_id)
    probs = acc.pixel_probabilities()
    rasters = {
        "p_over_15cm": out_dir / "p_over_15cm.tif",
        "p_over_30cm": out_dir / "p_over_30cm.tif",
    }
    write_geotiffs(out_dir, {p.name: probs[k] for k, p in enumerate(rasters.values())},
                   g.crs, g.transform)  # fmt: skip
    cells = acc.cell_table(settings.h3_resolutions, run_id)
    links = acc.link_table(run_id)
    with psycopg.connect(url) as conn, conn.transaction():
        copy_rows(conn, "twin.flood_ensemble_cell_result", CELL_COLUMNS, cells)
        copy_rows(conn, "twin.flood_ensemble_link_result", LINK_COLUMNS, links)
        timings["store_s"] = round(time.perf_counter() - t2, 3)
        summary = _summary(run_id, params, g, acc, cells, links, rasters, settings, timings)
        store.finish_run(conn, run_id, summary, timings)
    return summary


def _summary(
    run_id: int,
    params: EnsembleParams,
    g: TwinGrid,
    acc: Accumulator,
    cells: pd.DataFrame,
    links: pd.DataFrame,
    rasters: dict[str, Path],
    settings: Settings,
    timings: dict[str, float],
) -> dict[str, Any]:
    members = [acc.members[i] for i in sorted(acc.members)]
    finest = cells[cells.res == settings.finest_resolution]
    cpu_s = sum(m["wall_s"] for m in members)
    return {
        "run_id": run_id,
        "params": params.as_json(),
        "members": members,
        "n_members": len(members),
        "grid": {"rows": g.bed.shape[0], "cols": g.bed.shape[1], "cell_m": g.dx, "crs": g.crs},
        "thresholds_m": list(THRESHOLDS_M),
        "cells_res": settings.finest_resolution,
        "cells_p15_any": int((finest.p_over_15cm > 0).sum()),
        "cells_p15_half": int((finest.p_over_15cm >= 0.5).sum()),
        "cells_p30_half": int((finest.p_over_30cm >= 0.5).sum()),
        "links_p15_half": int((links.p_over_15cm >= 0.5).sum()),
        "links_p30_half": int((links.p_over_30cm >= 0.5).sum()),
        "links_reached": len(links),
        "max_depth_m": max((m["max_depth_m"] for m in members), default=0.0),
        "mass_error_rel_max": max((abs(m["mass_error_rel"]) for m in members), default=0.0),
        "members_wall_s": timings["members_s"],
        "members_cpu_s": round(cpu_s, 3),
        "rasters": {k: str(v) for k, v in rasters.items()},
    }
