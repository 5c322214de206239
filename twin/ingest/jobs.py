"""`twin ingest jobs`: workplaces for the twin's residents from non-residential floor area.

Method
------
1. **Jobs per building** = non-residential floor area (m²) / floor area per job of its use
   class. Floor area is footprint x floors, as for homes (:func:`twin.ingest.population.floor_area`;
   a ``mixed`` building is half homes). The default floor areas per job,
   :data:`M2_PER_JOB`, follow the UK Homes and Communities Agency's *Employment Density Guide*
   (3rd ed., 2015: general office 12 m² net internal area per full-time job, high-street retail
   15-20 m², light industry 47 m², general warehousing 70-95 m²), converted to gross floor area
   at about 80 % net-to-gross and rounded; schools, hospitals, public and transport buildings,
   which the guide does not cover, are the project's estimates (staff per floor area of
   typical Chinese and European buildings of the kind). They are defaults: a TOML file
   (``[m2_per_job]`` with a value per use, see :func:`read_rates`) overrides any of them.
2. **Workers**: each resident works with the employment rate of their age band,
   :data:`EMPLOYMENT_RATE` (of the whole band, OECD-like rates for an urban population; the
   same rates the demo city uses), drawn with ``seed``. When the city has more workers than
   jobs, only as many workers as there are jobs get one (the others work outside the twin or
   are not employed); when it has more jobs, some stay vacant (filled by commuters from
   outside, whom the twin does not model). Both are counted in the summary.
3. **Who works where**: workers and jobs are summed per H3 zone (resolution 8, coarser while
   there are more than :data:`MAX_ZONES`) and distributed with the doubly constrained gravity
   model of :mod:`twin.sim.demand` on straight-line distance (km), calibrated to a mean commute
   of ``mean_commute_km`` (Hyman's method; a small city whose zones all lie closer reports
   that its spread is as wide as the margins allow). Zone flows are made whole by largest
   remainder per home zone, and each destination zone's workers are spread over its buildings
   in proportion to their jobs, so no building receives more than its jobs (rounded up).

Everything is deterministic for a seed, runs in one transaction, and refreshes the cells
whose ``jobs`` change. Residents keep their homes; only ``workplace_building_id`` and
``work_cell`` are written.
"""

from __future__ import annotations

import json
import time
import tomllib
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd
import psycopg
from pyproj import Transformer

from twin import grid as h3grid
from twin.city.cells import refresh_cell_stats
from twin.city.load import bump_layer_versions
from twin.city.meta import read_city, with_city
from twin.db.engine import database_url
from twin.db.models.city import AGE_BANDS, BUILDING_USES
from twin.ingest.population import floor_area, largest_remainder, load_buildings
from twin.ingest.report import IngestError, Progress, Report, quiet
from twin.settings import Settings
from twin.sim.demand import gravity

#: Gross floor area per job (m²) by building use (see the module: HCA Employment Density Guide
#: 2015 for office, commercial, industrial and warehouse; project estimates for the rest).
#: Residential buildings hold no jobs; ``mixed`` ones count their non-residential half as
#: commercial.
M2_PER_JOB: dict[str, float] = {
    "office": 15.0,
    "commercial": 22.0,
    "industrial": 60.0,
    "warehouse": 100.0,
    "public": 25.0,
    "education": 50.0,
    "health": 30.0,
    "transport": 80.0,
    "mixed": 22.0,
    "other": 200.0,
}
JOB_USES = tuple(u for u in BUILDING_USES if u != "residential")
#: Share of each age band (AGE_BANDS order) with a job.
EMPLOYMENT_RATE = dict(zip(AGE_BANDS, (0.0, 0.45, 0.85, 0.75, 0.12, 0.0), strict=True))
#: Gravity zones: the n x n cost matrix must stay small (MAX_ZONES² doubles).
MAX_ZONES = 3000
MEAN_COMMUTE_KM = 8.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


# ----------------------------------------------------------------------------- pure science
def jobs_per_building(
    footprint_m2: npt.ArrayLike,
    floors: npt.ArrayLike,
    use: npt.ArrayLike,
    *,
    m2_per_job: dict[str, float] | None = None,
) -> FloatArray:
    """Jobs (persons) each building can hold: non-residential floor area / area per job.

    Parameters
    ----------
    footprint_m2, floors, use : (n,) arrays
        Footprint (m²), storeys (NaN: the default) and use class of each building.
    m2_per_job : keyword-only
        Gross floor area per job (m²) by use; :data:`M2_PER_JOB` where a use is missing.

    Returns
    -------
    (n,) float array of jobs; 0 for homes and for uses whose area per job is not positive.
    """
    rates = {**M2_PER_JOB, **(m2_per_job or {})}
    home, total = floor_area(footprint_m2, floors, use)
    per_job = np.array([rates.get(u, np.inf) for u in np.asarray(use, dtype=object)], dtype=float)
    per_job = np.where(per_job > 0, per_job, np.inf)
    return (total - home) / per_job


def spread_whole(weights: FloatArray, n: int, *, rng: np.random.Generator) -> IntArray:
    """``n`` whole items over slots in proportion to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    if n <= 0 or w.sum() <= 0:
        return np.zeros(len(w), dtype=np.int64)
    quota = w * (n / w.sum())
    return largest_remainder(quota, np.zeros(len(w), dtype=np.int64), np.array([n]), rng=rng)


def commute_flows(
    workers: FloatArray,
    jobs: FloatArray,
    x_m: FloatArray,
    y_m: FloatArray,
    *,
    mean_commute_km: float = MEAN_COMMUTE_KM,
    rng: np.random.Generator,
) -> tuple[IntArray, str]:
    """Whole numbers of commuters between zones, home zone (rows) x work zone (columns).

    Parameters
    ----------
    workers, jobs : (n,) arrays
        Workers living in and jobs located in each zone (persons).
    x_m, y_m : (n,) arrays
        Zone centres in a metric CRS (m).
    mean_commute_km : keyword-only
        Target mean straight-line commute (km) for the gravity model's calibration.

    Returns
    -------
    (flows, note): an (n, n) int array whose row sums are ``workers`` exactly (those are whole),
    and the calibration note (empty when the target was met).
    """
    w = np.asarray(workers, dtype=np.float64)
    d_km = np.hypot(x_m[:, None] - x_m[None, :], y_m[:, None] - y_m[None, :]) / 1000.0
    dist = gravity(w, np.asarray(jobs, dtype=np.float64), d_km, target_mean_cost=mean_commute_km)
    n = len(w)
    groups = np.repeat(np.arange(n), n)
    whole = largest_remainder(dist.trips.ravel(), groups, np.round(w).astype(np.int64), rng=rng)
    return whole.reshape(n, n), dist.note


# ----------------------------------------------------------------------------- files
def read_rates(path: Path) -> dict[str, float]:
    """Floor area per job (m²) by use from a TOML file: ``[m2_per_job]`` ``office = 12.5``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IngestError(path, "file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise IngestError(path, f"not a TOML file: {exc}") from None
    table = data.get("m2_per_job")
    if not isinstance(table, dict):
        raise IngestError(path, "needs a [m2_per_job] table: use = square metres per job")
    out: dict[str, float] = {}
    for use, value in table.items():
        if use not in BUILDING_USES or use == "residential":
            raise IngestError(
                path, f"use {use!r} is not one of {', '.join(JOB_USES)}",
                field="m2_per_job",
            )  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise IngestError(
                path, f"{use} = {value!r}: square metres per job must be a positive number",
                field="m2_per_job",
            )  # fmt: skip
        out[use] = float(value)
    return out


# ----------------------------------------------------------------------------- database
def ingest_jobs(
    settings: Settings,
    *,
    rates: Path | None = None,
    seed: int = 0,
    mean_commute_km: float = MEAN_COMMUTE_KM,
    progress: Progress = quiet,
) -> Report:
    """Workplaces for every resident from non-residential floor area (see the module)."""
    t0 = time.perf_counter()
    m2 = read_rates(rates) if rates else {}
    report = Report(str(rates) if rates else "floor area", "jobs")
    if not mean_commute_km > 0:
        raise IngestError(report.path, "mean_commute_km must be positive")
    rng = np.random.default_rng([seed, 13])
    with psycopg.connect(database_url(settings)) as conn, conn.transaction():
        settings = with_city(settings, read_city(conn))
        b = load_buildings(conn)
        cap = jobs_per_building(b.footprint_m2, b.floors, b.use, m2_per_job=m2)
        cap = np.where(b.cell.notna().to_numpy(), cap, 0.0)
        if b.empty or cap.sum() < 1:
            raise IngestError(
                report.path, "the twin has no non-residential floor area to put jobs in: load "
                "buildings with a use first (`twin ingest osm` or `twin ingest buildings "
                "--use-field`)",
            )  # fmt: skip
        people = conn.execute(
            "SELECT id, home_building_id, age_band FROM twin.person ORDER BY id"
        ).fetchall()
        if not people:
            raise IngestError(
                report.path, "the twin has no residents to give jobs to: run `twin ingest "
                "population GRID.tif` or `twin ingest people FILE` first",
            )  # fmt: skip
        progress("drawing workers")
        pid = np.array([p[0] for p in people], dtype=np.int64)
        pos = pd.Index(b.id.to_numpy()).get_indexer([p[1] for p in people])
        rate = np.array([EMPLOYMENT_RATE.get(p[2], 0.0) for p in people])
        works = (rng.random(len(pid)) < rate) & (pos >= 0)
        works &= b.cell.notna().to_numpy()[np.maximum(pos, 0)]
        jobs_total = int(np.floor(cap.sum()))
        worker_idx = np.flatnonzero(works)
        if len(worker_idx) > jobs_total:  # more workers than jobs: a random subset works here
            worker_idx = np.sort(rng.choice(worker_idx, jobs_total, replace=False))
        progress(f"distributing {len(worker_idx):,} workers over {jobs_total:,} jobs")
        work_b = _assign(b, cap, pos[worker_idx], settings, mean_commute_km, rng, report)
        old = [
            r[0]
            for r in conn.execute(
                "SELECT DISTINCT work_cell FROM twin.person WHERE work_cell IS NOT NULL"
            )
        ]
        progress("writing workplaces")
        conn.execute(
            "CREATE TEMP TABLE _work (id bigint PRIMARY KEY, building bigint) ON COMMIT DROP"
        )
        with conn.cursor().copy("COPY _work (id, building) FROM STDIN") as cp:
            for i, w in zip(
                pid[worker_idx].tolist(), b.id.to_numpy()[work_b].tolist(), strict=True
            ):
                cp.write_row((i, w))
        conn.execute(
            "UPDATE twin.person p SET workplace_building_id = w.building, work_cell = bb.cell"
            " FROM (SELECT p2.id, w.building FROM twin.person p2 LEFT JOIN _work w USING (id)) w"
            " LEFT JOIN twin.building bb ON bb.id = w.building WHERE p.id = w.id"
        )
        new = np.unique(b.cell.to_numpy(dtype=np.int64, na_value=0)[work_b]).tolist()
        conn.execute(
            "INSERT INTO twin.audit_log (action, resource, detail) VALUES ('ingest', 'person', %s)",
            (json.dumps({"jobs": jobs_total, "workers": len(worker_idx), "seed": seed,
                         "rates": str(rates) if rates else "default"}),),
        )  # fmt: skip
        progress("refreshing the affected cells")
        report.details["cells_refreshed"] = refresh_cell_stats(
            conn, settings.h3_resolutions, cells=[c for c in old + new if c],
            k=settings.suppression_k,
        )  # fmt: skip
        bump_layer_versions(conn, ("cell_stats",))
    report.read = len(b)
    report.loaded = len(worker_idx)
    report.details.update(
        jobs=jobs_total,
        workers_wanting_jobs=int(works.sum()),
        workers_placed=len(worker_idx),
        jobs_vacant=jobs_total - len(worker_idx),
        workers_without_job_here=int(works.sum()) - len(worker_idx),
        buildings_with_jobs=int((cap >= 1).sum()),
        seed=seed,
    )
    report.seconds = time.perf_counter() - t0
    return report


def _assign(
    b: pd.DataFrame,
    cap: FloatArray,
    home_pos: IntArray,
    settings: Settings,
    mean_commute_km: float,
    rng: np.random.Generator,
    report: Report,
) -> IntArray:
    """Building index (into ``b``) of each worker's workplace, in the order of ``home_pos``."""
    cells = b.cell.to_numpy(dtype=np.int64, na_value=0)
    placed = cells > 0  # a building without a cell cannot be a zone's (the caller zeroes cap)
    res = 8
    while True:
        zone_of = np.zeros(len(cells), dtype=np.int64)
        zone_of[placed] = h3grid.parent(cells[placed], res)
        zones = np.unique(zone_of[placed])
        if len(zones) <= MAX_ZONES or res <= 5:
            break
        res -= 1
    zi = np.clip(np.searchsorted(zones, zone_of), 0, len(zones) - 1)
    home_z = zi[home_pos]
    workers = np.bincount(home_z, minlength=len(zones)).astype(float)
    jobs = np.bincount(zi, weights=cap, minlength=len(zones)).astype(np.float64)
    lon, lat = h3grid.cell_centers(zones)
    x, y = Transformer.from_crs("EPSG:4326", settings.metric_crs, always_xy=True).transform(
        lon, lat
    )
    flows, note = commute_flows(
        workers, jobs, np.asarray(x), np.asarray(y), mean_commute_km=mean_commute_km, rng=rng
    )
    report.details.update(zone_res=res, zones=len(zones), calibration=note or "target met")
    out = np.empty(len(home_pos), dtype=np.int64)
    dest_of = np.empty(len(home_pos), dtype=np.int64)
    for z in np.flatnonzero(workers):  # each home zone's workers, shuffled over its flows
        members = np.flatnonzero(home_z == z)
        dest_of[members] = rng.permutation(np.repeat(np.arange(len(zones)), flows[z]))
    for z in np.unique(dest_of) if len(dest_of) else []:
        members = np.flatnonzero(dest_of == z)
        here = np.flatnonzero(zi == z)
        counts = spread_whole(cap[here], len(members), rng=rng)
        out[members] = rng.permutation(np.repeat(here, counts))
    return out
