"""UK Environment Agency Test 1, flooding a disconnected water body (Néelz & Pender 2010,
SC080035; 2013 update SC120002), in its form: a 1D-ish valley, 700 m by 100 m, whose ground
falls from the fed end into a basin, rises to a ridge and drops into a depression behind it; the
depression is reached only once the basin in front of the ridge has filled and overtops it.
The questions of the test are when the ridge is overtopped and what level the depression is
left at once the flood has gone.

The report drives its profile with a water level at the boundary and gives the profile as a
figure; its numbers (profile, levels, results) were not found in public text. The twin's model
has no stage boundary, so the case here is fed by an inflow hydrograph on the west column, and
the profile is stated in full instead:

    bed (m) linear between x = 0, 250, 300, 450, 550, 700 m and z = 9.5, 9.5, 10.0, 9.0, 9.0,
    10.5; Manning's n 0.03, 10 m cells, closed edges, dry start, 20 hours; inflow 0 -> 5 m³/s
    over 30 min, held 1 h, back to 0 over 30 min (27,000 m³).

Expectations, each from the bed and the hydrograph alone (no flood model): the basin in front
of the ridge holds ``V_front``, the volume under its saddle (the highest cell on the ridge);
the ridge is overtopped when the inflow so far reaches ``V_front``; after the flood the basin
stands at the saddle's level and the depression holds the rest, at the level the quasi-static
fill-and-spill gives (:func:`benchmarks.validation.ea_common.pour`), unique here since there
is one path. Bounds: the levels within 2 cm (18 hours after the inflow stops the head left
over the ridge is a few mm, and nothing else holds water back); the overtopping (first 1 mm on
the first cell past the saddle) within the output interval plus the time the inflow takes to
add 2 cm over the basin: the basin's surface tilts towards the ridge while it fills, by
millimetres of friction slope and by the slosh of the fill, which the flat-surface estimate
ignores. landlab's OverlandFlow on the same bed is reported side by side.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.validation.ea_test1 [--dx 10]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from benchmarks.validation import ea_common as ea
from benchmarks.validation.result import CaseResult, Metric
from twin.sim.flood import Inflow, simulate
from twin.sim.rain import Series

LENGTH, WIDTH, N = 700.0, 100.0, 0.03
PROFILE_X = np.array([0.0, 250.0, 300.0, 450.0, 550.0, 700.0])
PROFILE_Z = np.array([9.5, 9.5, 10.0, 9.0, 9.0, 10.5])
HYDRO_T = np.array([0.0, 1800.0, 5400.0, 7200.0])
HYDRO_Q = np.array([0.0, 5.0, 5.0, 0.0])
VOLUME_M3 = float(np.sum(0.5 * (HYDRO_Q[1:] + HYDRO_Q[:-1]) * np.diff(HYDRO_T)))
LEVEL_BOUND_M = 0.02
OVERTOP_M = 1e-3
POINTS = {"basin": (150.0, WIDTH / 2), "depression": (500.0, WIDTH / 2)}


def bed(dx: float) -> np.ndarray:
    """The profile at the cell centres, the same across the width (north-up rows)."""
    x = (np.arange(round(LENGTH / dx)) + 0.5) * dx
    return np.tile(np.interp(x, PROFILE_X, PROFILE_Z), (round(WIDTH / dx), 1))


def inflow_time(volume: float) -> float:
    """When the hydrograph's cumulative volume reaches ``volume`` (m³; NaN if never)."""
    fine = np.linspace(HYDRO_T[0], HYDRO_T[-1], 20001)
    q = np.interp(fine, HYDRO_T, HYDRO_Q)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (q[1:] + q[:-1]) * np.diff(fine))])
    return float(np.interp(volume, cum, fine)) if volume <= cum[-1] else math.nan


def run(
    dx: float = 10.0, duration_s: float = 20 * 3600.0, output_s: float = 60.0,
    landlab: bool = False,
) -> CaseResult:  # fmt: skip
    z = bed(dx)
    ny, nx = z.shape
    rows = np.arange(ny, dtype=np.intp)
    cols = np.zeros(ny, dtype=np.intp)
    xc = (np.arange(nx) + 0.5) * dx
    ridge = (xc > PROFILE_X[1]) & (xc < PROFILE_X[3])
    crest_col = int(np.nonzero(ridge)[0][np.argmax(z[0][ridge])])
    saddle = float(z[0, crest_col])
    past = crest_col + 1  # the first cell past the saddle, on the depression's side
    points = dict(POINTS, past_ridge=((past + 0.5) * dx, WIDTH / 2))
    probes, index = ea.probes_for(points, dx, z.shape)
    hydro = Series(HYDRO_T, HYDRO_Q, "linear")
    r = simulate(
        z, dx=dx, duration_s=duration_s, inflows=[Inflow(rows, cols, hydro, "inflow")],
        manning=N, probes=probes, output_interval_s=output_s,
    )  # fmt: skip
    # Expectations from the bed alone.
    front = z[:, :crest_col]
    v_front = float(np.sum(saddle - front[front < saddle])) * dx * dx
    t_over = inflow_time(v_front)
    expect = ea.pour(z, (ny // 2, 0), VOLUME_M3, dx)
    e_dep = float(np.mean([expect[c] for c in ea.gauge_cells(*POINTS["depression"], dx, z.shape)]))
    basin_area = float(np.sum(front < saddle)) * dx * dx
    bound_t = output_s + LEVEL_BOUND_M * basin_area / float(HYDRO_Q.max())
    series = ea.gauge_series(r, index)
    t = r.output_times_s
    level = {k: float(series[k][-1]) + _bed_at(z, points[k], dx) for k in POINTS}
    t_model = ea.arrival_s(t, series["past_ridge"], OVERTOP_M)
    metrics = {
        "basin final level - saddle": Metric(
            level["basin"] - saddle, LEVEL_BOUND_M, "m", "the basin ends full: 2 cm"
        ),
        "depression final level": Metric(
            level["depression"] - e_dep, LEVEL_BOUND_M, "m", "volume left after the basin: 2 cm"
        ),
        "overtopping time": Metric(
            t_model - t_over, bound_t, "s", "output interval + 2 cm of inflow over the basin"
        ),
    }
    settings: dict[str, float | str] = {
        "dx_m": dx, "duration_s": duration_s, "manning": N, "inflow_m3": VOLUME_M3,
        "saddle_m": saddle, "v_front_m3": v_front, "t_overtop_expected_s": t_over,
        "depression_level_expected_m": e_dep, "mass_error_rel": r.mass_error_rel,
    }  # fmt: skip
    curves = {
        "bed": (xc, z[0]),
        "level": (xc, np.where(r.depth[0] > 1e-3, r.depth[0] + z[0], np.nan)),
        "basin": (t, series["basin"] + _bed_at(z, points["basin"], dx)),
        "depression": (t, series["depression"] + _bed_at(z, points["depression"], dx)),
    }  # fmt: skip
    if landlab:
        ll = ea.run_landlab(
            z, dx=dx, duration_s=duration_s, manning=N, inflow_cells=(rows, cols),
            q_times_s=HYDRO_T, q_m3s=HYDRO_Q, probes=probes, output_s=output_s,
        )  # fmt: skip
        if ll is not None:
            lt = ll["t"]
            ls = {k: ll["probe_depth"][:, ix].mean(axis=1) for k, ix in index.items()}
            metrics["landlab basin final level - saddle"] = Metric(
                float(ls["basin"][-1]) + _bed_at(z, points["basin"], dx) - saddle, math.inf, "m",
                "reported",
            )  # fmt: skip
            metrics["landlab depression final level"] = Metric(
                float(ls["depression"][-1]) + _bed_at(z, points["depression"], dx) - e_dep,
                math.inf, "m", "reported",
            )  # fmt: skip
            metrics["landlab overtopping time"] = Metric(
                ea.arrival_s(lt, ls["past_ridge"], OVERTOP_M) - t_over, math.inf, "s", "reported"
            )
            curves["landlab basin"] = (lt, ls["basin"] + _bed_at(z, points["basin"], dx))
            curves["landlab depression"] = (
                lt, ls["depression"] + _bed_at(z, points["depression"], dx),
            )  # fmt: skip
            settings["landlab_wall_s"] = float(ll["wall_s"])
    return CaseResult(
        case="ea_test1", settings=settings, metrics=metrics, curves=curves, wall_s=r.wall_s,
        steps=r.steps,
    )  # fmt: skip


def _bed_at(z: np.ndarray, point: tuple[float, float], dx: float) -> float:
    return float(np.mean([z[c] for c in ea.gauge_cells(*point, dx, z.shape)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dx", type=float, default=10.0)
    ap.add_argument("--landlab", action="store_true", help="also run landlab (its virtualenv)")
    args = ap.parse_args()
    res = run(dx=args.dx, landlab=args.landlab)
    ea.print_result(res)


if __name__ == "__main__":
    main()
