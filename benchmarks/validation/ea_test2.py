"""UK Environment Agency Test 2, filling of floodplain depressions (Néelz & Pender 2010,
SC080035; 2013 update SC120002), rebuilt from its written specification.

The report's words: a 2000 m square of 4 x 4 depressions about 0.5 m deep, obtained by
multiplying sinusoids west-east and north-south, on an underlying slope of 1:1500 to the south
and 1:3000 to the east (about 2 m of fall along the north-west to south-east diagonal);
Manning's n 0.03, 20 m cells, dry at the start, closed edges, 48 hours; an inflow along a 100 m
line running south from the north-west corner, peaking at 20 m³/s with a time base of about 85
minutes; the final water levels at gauges in the depressions. The report's own DEM and
hydrograph table are distributed with its dataset, not in the text, so here the bed is

    z(x, y) = 10 + y / 1500 - x / 3000 - 0.5 sin²(π x / 500) sin²(π y / 500)   (m, y north)

and the hydrograph a triangle rising to 20 m³/s at 20 minutes and back to 0 at 85 (51,000 m³);
the gauges are the 16 depression centres, numbered row by row from the north-west. The
published levels belong to the report's DEM and volume, so they are not compared here.

What can be held without the report's numbers, each computed from the bed alone: at rest no
basin holds water above its lowest saddle (found by a priority-flood from the basin's bottom,
:func:`benchmarks.validation.ea_common.spill_level`), so every gauge's final level is at most
its basin's saddle, and the basin under the inflow, which receives 51,000 m³ whatever path the
water takes after it, is full: at its saddle. The bound is 2 cm both times: after 48 h the
water above a saddle has drained to a head of a few mm (the weir discharge at 2 cm is some
5e-3 m²/s, a hundred times what would empty the excess in the hours left).

Which basins fill beyond the first is not fixed by volume and geometry here: the lowest rim
point of every depression of a product of sinusoids on a plane is its south-east corner, where
four depressions meet, and the edges of the square are rims that run downhill (the model's
closed walls make them gutters). The split between the basins at a corner is decided by the
flow. The quasi-static fill-and-spill of the same volume (:func:`ea_common.pour`, water
routed down the steepest descent from each saddle) is reported next to the model and to
landlab's OverlandFlow on the same bed, not held.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.validation.ea_test2 [--dx 20]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.validation import ea_common as ea
from benchmarks.validation.result import CaseResult, Metric
from twin.sim.flood import Inflow, simulate
from twin.sim.rain import Series

SIDE, N, DEPTH, CELL = 2000.0, 0.03, 0.5, 500.0
HYDRO_T = np.array([0.0, 1200.0, 5100.0])
HYDRO_Q = np.array([0.0, 20.0, 0.0])
VOLUME_M3 = float(np.sum(0.5 * (HYDRO_Q[1:] + HYDRO_Q[:-1]) * np.diff(HYDRO_T)))
POINTS = {
    str(4 * i + j + 1): (CELL * (j + 0.5), SIDE - CELL * (i + 0.5))
    for i in range(4)
    for j in range(4)
}
FULL_BOUND_M = 0.02


def bed(dx: float) -> np.ndarray:
    """The reconstructed DEM (m) at the cell centres of a north-up grid."""
    c = (np.arange(round(SIDE / dx)) + 0.5) * dx
    x, y = np.meshgrid(c, c[::-1])
    dep = np.sin(np.pi * x / CELL) ** 2 * np.sin(np.pi * y / CELL) ** 2
    return 10.0 + y / 1500.0 - x / 3000.0 - DEPTH * dep


def inflow_cells(dx: float) -> tuple[np.ndarray, np.ndarray]:
    """West-edge cells along the 100 m south of the north-west corner."""
    rows = np.arange(math.ceil(100.0 / dx - 1e-9), dtype=np.intp)
    return rows, np.zeros(len(rows), dtype=np.intp)


def run(dx: float = 20.0, duration_s: float = 48 * 3600.0, landlab: bool = False) -> CaseResult:
    z = bed(dx)
    rows, cols = inflow_cells(dx)
    probes, index = ea.probes_for(POINTS, dx, z.shape)
    hydro = Series(HYDRO_T, HYDRO_Q, "linear")
    r = simulate(
        z, dx=dx, duration_s=duration_s, inflows=[Inflow(rows, cols, hydro, "inflow")],
        manning=N, probes=probes, output_interval_s=1800.0,
    )  # fmt: skip
    expect = ea.pour(z, (int(rows[len(rows) // 2]), 0), VOLUME_M3, dx)
    ll = None
    if landlab:
        ll = ea.run_landlab(
            z, dx=dx, duration_s=duration_s, manning=N, inflow_cells=(rows, cols),
            q_times_s=HYDRO_T, q_m3s=HYDRO_Q, probes=probes, output_s=1800.0, chunk_s=10.0,
        )  # fmt: skip
    model_level = np.where(r.depth > 1e-3, r.depth + z, np.nan)
    metrics: dict[str, Metric] = {}
    settings: dict[str, float | str] = {
        "dx_m": dx, "duration_s": duration_s, "manning": N, "inflow_m3": VOLUME_M3,
        "mass_error_rel": r.mass_error_rel,
    }  # fmt: skip
    gauges = np.arange(1, 17, dtype=float)
    exp_v, mod_v, ll_v, sad_v = [], [], [], []
    lz = np.where(ll["depth"] > 1e-3, ll["depth"] + z, np.nan) if ll is not None else None
    for g, ix in index.items():
        cells = [probes[i] for i in ix]
        saddle = ea.spill_level(z, cells[0])
        e, m = _mean_level(expect, cells), _mean_level(model_level, cells)
        exp_v.append(e)
        mod_v.append(m)
        sad_v.append(saddle)
        if g == "1":  # the basin under the inflow overflows whatever the path: full at its saddle
            metrics["final level - saddle, gauge 1"] = Metric(
                m - saddle, FULL_BOUND_M, "m", "the fed basin is full: its saddle's level, 2 cm"
            )
        else:
            metrics[f"water above the saddle, gauge {g}"] = Metric(
                max(m - saddle, 0.0) if np.isfinite(m) else 0.0,
                FULL_BOUND_M,
                "m",
                "at rest no basin holds water above its saddle: 2 cm",
            )
        metrics[f"final level vs fill-and-spill, gauge {g}"] = Metric(
            _diff(m, e), math.inf, "m", "reported (the spill path is not unique)"
        )
        if lz is not None:
            ll_v.append(_mean_level(lz, cells))
            metrics[f"landlab final level vs model, gauge {g}"] = Metric(
                _diff(ll_v[-1], m), math.inf, "m", "reported (landlab - model)"
            )
    settings["stored_over_inflow"] = float(np.sum(r.depth)) * dx * dx / VOLUME_M3
    settings["wet_gauges_model"] = int(np.isfinite(mod_v).sum())
    settings["wet_gauges_fill_and_spill"] = int(np.isfinite(exp_v).sum())
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {
        "fill-and-spill": (gauges, np.array(exp_v)),
        "model": (gauges, np.array(mod_v)),
        "saddle": (gauges, np.array(sad_v)),
        "bottom": (gauges, np.array([min(z[probes[i]] for i in ix) for ix in index.values()])),
    }
    if ll is not None:
        curves["landlab"] = (gauges, np.array(ll_v))
        settings["landlab_wall_s"] = float(ll["wall_s"])
        settings["landlab_stored_over_inflow"] = float(ll["stored_m3"]) / VOLUME_M3
        settings["wet_gauges_landlab"] = int(np.isfinite(ll_v).sum())
    return CaseResult(
        case="ea_test2", settings=settings, metrics=metrics, curves=curves, wall_s=r.wall_s,
        steps=r.steps,
    )  # fmt: skip


def _diff(a: float, b: float) -> float:
    """a - b, 0 where both are dry, NaN where only one is."""
    if not np.isfinite(a) and not np.isfinite(b):
        return 0.0
    return a - b if np.isfinite(a) and np.isfinite(b) else math.nan


def _mean_level(level: np.ndarray, cells: list[tuple[int, int]]) -> float:
    vals = [level[c] for c in cells]
    return float(np.mean(vals)) if all(np.isfinite(vals)) else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dx", type=float, default=20.0)
    ap.add_argument("--landlab", action="store_true", help="also run landlab (its virtualenv)")
    args = ap.parse_args()
    res = run(dx=args.dx, landlab=args.landlab)
    ea.print_result(res)
    for k in ("fill-and-spill", "model", "saddle", "landlab"):
        if k in res.curves:
            print(f"{k:>15}", np.round(res.curves[k][1], 3))


if __name__ == "__main__":
    main()
