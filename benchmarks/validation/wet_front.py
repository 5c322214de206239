"""The wet front over a horizontal frictional plane (Hunter et al. 2005; used by Bates et al.
2010 and de Almeida et al. 2012 for the local-inertial scheme).

A front advancing at a constant velocity ``u`` over a flat bed with Manning's ``n`` has

    h(x, t) = [(7/3) n² u² (u t - x)]^(3/7)   for x <= u t, 0 beyond,

fed at ``x = 0`` with ``q(t) = u h(0, t)``. The twin gets that as an inflow hydrograph spread
over the first column (the solver puts inflows into cells, so the water enters at the first
cell centre, ``dx / 2`` downstream of the analytic ``x = 0``).

The solution is exact for the zero-inertia (diffusive) equations only. Put into the local-
inertial momentum equation, the local acceleration ``∂q/∂t = u² ∂h/∂s`` of this travelling wave
is ``u²/g`` times the pressure term it neglects (0.10 at u = 1 m/s, 0.004 at u = 0.2 m/s), so
the model converges to a profile that differs from it by that order, whatever ``dx``: a
departure of the model, not of its discretisation (checked by ``--convergence``: the errors
do not fall as ``dx`` does). Looking for a travelling wave ``h = f(u t - x)`` of the
local-inertial equation instead gives ``(3/7) f^(7/3) - (3/4)(u²/g) f^(4/3) = n² u² (u t - x)``:
its front is a bore of height ``(7/4) u²/g`` (0.18 m at u = 1 m/s), which is what the model
shows. Profile and front are then reported, not held to a bound; where ``u²/g`` is below 1 %
the case is in the diffusive regime the solution describes, and the bounds are de Almeida et
al.'s "a few mm" of RMSE for dx = 5 m (5 mm) and a front within two cells (half a cell from
where the inflow enters, one for the thresholded front, rounded up), at the dx = 5 m of the
published test: on finer grids the front error stays near 10 m (1.5-2 % of u t) instead of
shrinking with dx, the model's own front again (``--convergence``).

That travelling wave is itself an exact solution of the model's equations, so ``local_inertial
=True`` feeds the plane with its ``q = u f(u t)`` and compares with it: the test of the scheme
at u = 1 m/s. Its bore is a discontinuity a first-order scheme smears over a few cells, so the
RMSE is held (5 mm, as above) behind it, ``u t - x >= 5 dx``, and without the inflow cell (whose
sampled depth sits below its step mean, see :mod:`benchmarks.validation.macdonald`); the whole
profile's RMSE and the front are reported.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.validation.wet_front [--convergence]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.optimize import brentq

from benchmarks.validation.result import CaseResult, Metric
from twin.sim.flood import Inflow, simulate
from twin.sim.flood_kernels import G
from twin.sim.rain import Series

FRONT_DEPTH_M = 0.01  # the front: the last cell wetter than this
BORE_CELLS = 5  # cells behind the local-inertial bore left out of its held RMSE


def exact(x: np.ndarray, t: float, n: float, u: float) -> np.ndarray:
    """Hunter et al.'s depth (m) at ``x`` (m) and ``t`` (s)."""
    return (7 / 3 * n**2 * u**2 * np.clip(u * t - x, 0, None)) ** (3 / 7)


def exact_local_inertial(x: np.ndarray, t: float, n: float, u: float) -> np.ndarray:
    """The local-inertial travelling wave's depth (m): ``f(u t - x)`` with
    ``(3/7) f^(7/3) - (3/4)(u²/g) f^(4/3) = n² u² (u t - x)``, ``f >= (7/4) u²/g``; 0 ahead."""
    r = u * u / G
    s = u * t - np.asarray(x, dtype=np.float64)
    out = np.zeros_like(s)
    for i, si in enumerate(s):
        if si >= 0:
            c = n * n * u * u * si
            out[i] = brentq(
                lambda f, c=c: 3 / 7 * f ** (7 / 3) - 0.75 * r * f ** (4 / 3) - c,
                1.75 * r * (1 - 1e-12),
                100.0,
                xtol=1e-14,
            )
    return out


def run(
    n: float = 0.01,
    u: float = 1.0,
    dx: float = 5.0,
    duration_s: float = 3600.0,
    times_s: tuple[float, ...] = (900.0, 1800.0, 2700.0, 3600.0),
    theta: float = 0.8,
    local_inertial: bool = False,
) -> CaseResult:
    """Run one plane (one row of cells, closed sides) and compare profiles at ``times_s``, with
    Hunter's solution or (``local_inertial``) the model's own travelling wave.

    Tolerances as in the module's note: Hunter's with ``u²/g`` >= 1 % is reported only, below
    it 5 mm of RMSE and two cells of front position; the local-inertial wave 5 mm of RMSE
    behind its bore.
    """
    cols = int(np.ceil(1.15 * u * duration_s / dx))
    x = (np.arange(cols) + 0.5) * dx
    t = np.linspace(0.0, duration_s, int(duration_s) + 1)
    if local_inertial:
        q_in = u * exact_local_inertial(-u * t, 0.0, n, u)  # u f(u t), m²/s
    else:
        q_in = u * (7 / 3 * n**2 * u**3 * t) ** (3 / 7)  # u h(0, t), m²/s
    inflow = Inflow(np.array([0]), np.array([0]), Series(t, q_in * dx, "linear"), "x = 0")
    probes = [(0, c) for c in range(cols)]
    every = float(np.gcd.reduce([int(s) for s in (*times_s, duration_s)]))
    r = simulate(
        np.zeros((1, cols)),
        dx=dx,
        duration_s=duration_s,
        inflows=[inflow],
        manning=n,
        theta=theta,
        probes=probes,
        output_interval_s=every,
    )
    ratio = u * u / G
    diffusive = ratio < 0.01
    metrics: dict[str, Metric] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    worst_rmse, worst_front = 0.0, 0.0
    for ts in times_s:
        k = int(np.argmin(np.abs(r.output_times_s - ts)))
        h = r.probe_depth[k]
        ex = exact_local_inertial(x, ts, n, u) if local_inertial else exact(x, ts, n, u)
        rmse = float(np.sqrt(np.mean((h - ex)[x < 1.1 * u * ts] ** 2)))
        wet = x[h > FRONT_DEPTH_M]
        front = float(wet.max() + dx / 2) if len(wet) else 0.0
        # The analytic front at FRONT_DEPTH_M: u t - s with (7/3 n² u² s)^(3/7) = FRONT_DEPTH_M;
        # the local-inertial wave's is its bore, at u t.
        front_ex = u * ts - (
            0 if local_inertial else FRONT_DEPTH_M ** (7 / 3) / (7 / 3 * n**2 * u**2)
        )
        worst_rmse = max(worst_rmse, rmse)
        worst_front = max(worst_front, abs(front - front_ex) / (u * ts))
        curves[f"model t={ts:.0f}s"] = (x, h)
        curves[f"exact t={ts:.0f}s"] = (x, ex)
        if local_inertial:
            behind = (u * ts - x >= BORE_CELLS * dx) & (np.arange(cols) > 0)
            held = float(np.sqrt(np.mean((h - ex)[behind] ** 2)))
            metrics[f"RMSE behind the bore t={ts:.0f}s"] = Metric(
                held, 0.005, "m", "a few mm (de Almeida et al. 2012, dx = 5 m)"
            )
            metrics[f"RMSE t={ts:.0f}s"] = Metric(rmse, np.inf, "m", "reported (bore smeared)")
            metrics[f"front error t={ts:.0f}s"] = Metric(
                front - front_ex, np.inf, "m", "reported (bore smeared)"
            )
            continue
        metrics[f"RMSE t={ts:.0f}s"] = Metric(
            rmse,
            0.005 if diffusive else np.inf,
            "m",
            "a few mm (de Almeida et al. 2012, dx = 5 m)"
            if diffusive
            else "reported only (zero-inertia solution)",
        )
        metrics[f"front error t={ts:.0f}s"] = Metric(
            front - front_ex,
            2 * dx if diffusive else np.inf,
            "m",
            "two cells" if diffusive else "reported only (zero-inertia front)",
        )
    return CaseResult(
        case="wet_front_local_inertial" if local_inertial else "wet_front",
        settings={
            "n": n,
            "u_m_s": u,
            "dx_m": dx,
            "duration_s": duration_s,
            "theta": theta,
            "u2_over_g": ratio,
            "worst_rmse_m": worst_rmse,
            "worst_front_rel": worst_front,
            "mass_error_rel": r.mass_error_rel,
        },
        metrics=metrics,
        curves=curves,
        wall_s=r.wall_s,
        steps=r.steps,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--convergence", action="store_true", help="also run dx = 10, 2.5, 1 m")
    args = ap.parse_args()
    cases = [(0.01, 1.0, False), (0.005, 1.0, False), (0.01, 0.2, False)]
    cases += [(0.01, 1.0, True), (0.005, 1.0, True)]
    for n, u, li in cases:
        for dx in (10.0, 5.0, 2.5, 1.0) if args.convergence else (5.0,):
            res = run(n=n, u=u, dx=dx, local_inertial=li)
            s = res.settings
            held = [m.value for k, m in res.metrics.items() if k.startswith("RMSE behind")]
            print(
                f"{'local-inertial wave' if li else 'Hunter'} n={n} u={u} dx={dx}: worst RMSE "
                f"{s['worst_rmse_m']:.4f} m"
                + (f" (behind the bore {max(held):.4f} m)" if held else "")
                + f", worst front error {100 * float(s['worst_front_rel']):.2f} % of u t, "
                f"{'ok' if res.passed else 'FAIL'}"
            )


if __name__ == "__main__":
    main()
