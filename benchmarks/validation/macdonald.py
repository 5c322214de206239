"""MacDonald et al.'s (1997) steady 1D flow, the subcritical long channel of the SWASHES
compilation (Delestre et al. 2013): a 1000 m channel, ``q = 2 m²/s``, Manning's ``n = 0.033``,

    h(x) = (4/g)^(1/3) (1 + 1/2 exp(-16 (x/1000 - 1/2)²))

and the bed that makes it the steady solution of the shallow-water equations:

    z'(x) = (q²/(g h³) - 1) h'(x) - n² q² / h^(10/3).

The local-inertial model drops the advection, the ``q²/(g h³) h'`` term (Froude² times the
slope of the depth): its own steady profile on that bed solves ``h' = -z' - n² q²/h^(10/3)``,
integrated here from the same downstream depth. Both are reported: against MacDonald's profile
(the shallow-water answer) and against the local-inertial one (the model's own steady state,
which the scheme should reach to its discretisation error).

Boundaries: the inflow ``q`` spread over the first cell; the east edge open, where the solver's
free outflow puts normal flow for the bed slope at the edge (a normal depth 2 mm from the exact
downstream depth, since h' is ~1e-4 there). Started from the exact profile and run to steady.

Bounds, on the RMSE over every cell but the inflow cell: the local-inertial profile within
1 cm (a first-order scheme's error at dx = 5 m on a profile that changes by 0.37 m over
1000 m; the measured errors halve with dx, 4.2 / 2.0 / 0.9 mm at 10 / 5 / 2.5 m); MacDonald's
within 1 cm plus the RMS gap between the two exact profiles (the model's departure, 1.9 cm: the
flow is near critical at both ends, Fr ~ 1).

The inflow cell is reported apart. The solver adds a step's inflow to the state before the
faces (so that the limiter lets it leave in the same step) and samples depths after the
update, so the inflow cell's sampled depth sits below its mean over a step by about half the
depth one step's inflow adds, ``q dt / (2 dx)``: some 0.2 m here (q = 2 m²/s, dt ~ 1 s,
dx = 5 m). It is the sampling of an operator split, mass-exact, and confined to the cells that
take the inflow.

    PYTHONPATH=$PWD .venv/bin/python -m benchmarks.validation.macdonald
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import cumulative_trapezoid, solve_ivp

from benchmarks.validation.result import CaseResult, Metric
from twin.sim.flood import Boundaries, Inflow, simulate
from twin.sim.flood_kernels import G
from twin.sim.rain import Series

LENGTH, Q, N = 1000.0, 2.0, 0.033
HC = (4 / G) ** (1 / 3)


def depth(x: np.ndarray) -> np.ndarray:
    return HC * (1 + 0.5 * np.exp(-16 * (x / LENGTH - 0.5) ** 2))


def depth_slope(x: np.ndarray) -> np.ndarray:
    return HC * 0.5 * np.exp(-16 * (x / LENGTH - 0.5) ** 2) * (-32 * (x / LENGTH - 0.5) / LENGTH)


def bed_slope(x: np.ndarray) -> np.ndarray:
    h = depth(x)
    return (Q**2 / (G * h**3) - 1) * depth_slope(x) - N**2 * Q**2 / h ** (10 / 3)


def bed(x: np.ndarray) -> np.ndarray:
    """z (m) at ``x`` with z(L) = 0, integrated on a 0.01 m grid."""
    fine = np.linspace(0.0, LENGTH, 100_001)
    z = cumulative_trapezoid(bed_slope(fine), fine, initial=0.0)
    return np.interp(x, fine, z - z[-1])


def local_inertial_depth(x: np.ndarray) -> np.ndarray:
    """The local-inertial steady depth on MacDonald's bed, from h(L) upstream."""

    def rhs(s: float, h: np.ndarray) -> np.ndarray:
        return -bed_slope(np.array([s])) - N**2 * Q**2 / h ** (10 / 3)

    sol = solve_ivp(
        rhs, (LENGTH, 0.0), depth(np.array([LENGTH])), rtol=1e-10, atol=1e-12, dense_output=True
    )
    return np.asarray(sol.sol(x)[0])


def run(dx: float = 5.0, duration_s: float = 7200.0, theta: float = 0.8) -> CaseResult:
    cols = round(LENGTH / dx)
    x = (np.arange(cols) + 0.5) * dx
    z = bed(x)[None, :]
    inflow = Inflow(np.array([0]), np.array([0]), Series.constant(Q * dx), "q")
    r = simulate(
        z,
        dx=dx,
        duration_s=duration_s,
        inflows=[inflow],
        manning=N,
        theta=theta,
        initial_depth=depth(x)[None, :],
        boundaries=Boundaries(east="open"),
    )
    h = r.depth[0]
    mac, li = depth(x), local_inertial_depth(x)
    gap = float(np.sqrt(np.mean((li - mac)[1:] ** 2)))  # the model's departure, exact
    rmse_mac = float(np.sqrt(np.mean((h - mac)[1:] ** 2)))
    rmse_li = float(np.sqrt(np.mean((h - li)[1:] ** 2)))
    return CaseResult(
        case="macdonald",
        settings={
            "dx_m": dx,
            "duration_s": duration_s,
            "theta": theta,
            "li_macdonald_gap_m": gap,
            "mass_error_rel": r.mass_error_rel,
            "outflow_over_inflow": r.volumes_m3["outflow"] / r.volumes_m3["inflow"],
        },
        metrics={
            "RMSE vs local-inertial steady profile": Metric(
                rmse_li, 0.01, "m", "1 cm: discretisation error at dx = 5 m"
            ),
            "max error vs local-inertial profile": Metric(
                float(np.abs(h - li)[1:].max()), math.inf, "m", "reported only"
            ),
            "RMSE vs MacDonald (shallow water)": Metric(
                rmse_mac, 0.01 + gap, "m", "1 cm + the exact profiles' RMS gap"
            ),
            "max error vs MacDonald": Metric(
                float(np.abs(h - mac)[1:].max()), math.inf, "m", "reported only"
            ),
            "inflow cell vs local-inertial": Metric(
                float(h[0] - li[0]), math.inf, "m", "reported (sampling of the split)"
            ),
        },
        curves={
            "model": (x, h + z[0]),
            "macdonald": (x, mac + z[0]),
            "local-inertial": (x, li + z[0]),
            "bed": (x, z[0]),
            "depth model": (x, h),
            "depth macdonald": (x, mac),
            "depth li": (x, li),
        },
        wall_s=r.wall_s,
        steps=r.steps,
    )


if __name__ == "__main__":
    for dx in (10.0, 5.0, 2.5):
        res = run(dx=dx)
        for k, m in res.metrics.items():
            print(
                f"dx={dx} {k}: {m.value:.4g} {m.unit} (bound {m.tolerance:g}) "
                f"{'ok' if m.passed else 'FAIL'}"
            )
        print(res.settings)
