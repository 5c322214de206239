"""A 2D local-inertial flood model on a raster: urban pluvial flooding (waterlogging).

The scheme is Bates et al. (2010) with the theta form of de Almeida et al. (2012):

    q' = [theta q + (1 - theta)/2 (q_prev + q_next) - g h_f dt dη/dx]
         / [1 + g dt n² |q| / h_f^(7/3)]

per cell face, with ``h_f`` the higher water surface minus the higher bed, then continuity
``h' = h + dt/dx (q_in - q_out)`` plus rain and point inflows, minus drainage and infiltration.
The time step follows ``dt = alpha dx / sqrt(g h_max)``.

Mass is conserved to round-off: a cell can never send out more water than it holds (its outgoing
face discharges are scaled down together when they would), every face discharge is applied with
opposite signs to its two cells, and sinks take at most what a cell holds. Depths are never
clipped, so nothing is created or destroyed behind the accounts' back.

Arrays are north-up: ``[row, col]`` with row 0 to the north. ``qx[r, c]`` is the unit discharge
(m²/s) through the face west of cell ``(r, c)`` (positive eastward); ``qy[r, c]`` through the face
north of ``(r, c)`` (positive southward, i.e. toward increasing rows).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numba
import numpy as np
import numpy.typing as npt

from twin.sim.rain import Series

G = 9.81  # gravity (m/s²)
Side = Literal["open", "closed"]
FloatArray = npt.NDArray[np.floating]


@dataclass(frozen=True)
class Boundaries:
    """Each side of the grid: ``closed`` (a wall) or ``open`` (free outflow, counted)."""

    north: Side = "closed"
    south: Side = "closed"
    east: Side = "closed"
    west: Side = "closed"

    @classmethod
    def all(cls, side: Side) -> Boundaries:
        return cls(side, side, side, side)


@dataclass(frozen=True)
class Inflow:
    """Water entering at a set of cells, spread evenly over them.

    ``rows``/``cols`` index the cells (a point inflow with a radius covers every cell whose centre
    is within it); ``discharge`` is the total (m³/s), usually a linear hydrograph.
    """

    rows: npt.NDArray[np.intp]
    cols: npt.NDArray[np.intp]
    discharge: Series
    name: str = ""


@dataclass(frozen=True)
class HazardRating:
    """Flood hazard rating ``HR = d (v + 0.5) + DF`` (Defra/EA FD2320/FD2321, 2006).

    The debris factor DF steps up with depth: ``df_mid`` above ``mid_m``, ``df_deep`` above
    ``deep_m`` (defaults: 0 / 0.5 / 1.0 at 0.25 m and 0.75 m, the precautionary choice for urban
    areas). HR below 0.75 is "low", 0.75-1.25 "danger for some", 1.25-2.0 "danger for most",
    above 2.0 "danger for all".
    """

    mid_m: float = 0.25
    deep_m: float = 0.75
    df_mid: float = 0.5
    df_deep: float = 1.0


@dataclass
class FloodResult:
    """What a run produces. Depths (m), times (s from the start), velocities (m/s)."""

    depth: FloatArray
    max_depth: FloatArray
    time_of_max_s: FloatArray
    max_velocity: FloatArray
    max_hazard: FloatArray
    time_to_threshold_s: FloatArray  # first time depth reached ``threshold_m`` (NaN: never)
    threshold_m: float
    output_times_s: npt.NDArray[np.float64]
    probe_depth: npt.NDArray[np.float64]  # (output time, probe)
    volumes_m3: dict[str, float]
    mass_error_rel: float
    steps: int
    wall_s: float
    cells: int
    dtype: str
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def cell_steps_per_s(self) -> float:
        return self.steps * self.cells / self.wall_s if self.wall_s > 0 else math.inf


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _friction_factor(h, tmp, bits):
    """``h^(-7/3)`` without a division or a libm call: a bit-level first guess of ``h^(-1/3)``
    (the exponent trick with 4/3 * 2^52 * (1023 - 0.045)), three Newton steps (relative error
    below 1e-7, far inside any Manning's n), then the seventh power.

    libm's cbrt and the divisions around it cost most of the face update otherwise.
    """
    tmp[0] = h
    bits[0] = np.uint64(0x553F09FC49D9B000) - bits[0] // 3
    y = tmp[0]
    t = h * (1.0 / 3.0)
    y = y * (4.0 / 3.0 - t * y * y * y)
    y = y * (4.0 / 3.0 - t * y * y * y)
    y = y * (4.0 / 3.0 - t * y * y * y)
    y2 = y * y
    y6 = y2 * y2 * y2
    return y6 * y


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _value(arr, scalar, r, c):
    """A per-cell field, or a uniform one (scalar >= 0) without reading memory for it."""
    return scalar if scalar >= 0.0 else arr[r, c]


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _face(e0, e1, z0, z1, q_old, qa, nf, gdt, dx, hmin, froude, tmp, bits):
    """New unit discharge (m²/s) through a face from cell 0 to cell 1 (positive 0 -> 1)."""
    hf = max(e0, e1) - max(z0, z1)
    if hf <= hmin:
        return 0.0
    new = (qa - gdt * hf * (e1 - e0) / dx) / (
        1.0 + gdt * nf * abs(q_old) * _friction_factor(hf, tmp, bits)
    )
    if froude > 0.0:
        cap = froude * hf * math.sqrt(G * hf)
        new = min(max(new, -cap), cap)
    return new


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _edge(hb, zb, z_in, inner_ok, out_old, q_old, n2b, gdt, dx, hmin, s_open, tmp, bits):
    """Outward unit discharge (m²/s, >= 0) through an open edge face.

    Free outflow: the water surface keeps falling outward at the bed's slope toward the edge
    (at least ``s_open``), and the discharge is capped at critical flow.
    """
    if hb <= hmin:
        return 0.0
    slope = max(s_open, (z_in - zb) / dx) if inner_ok else s_open
    q = (max(out_old, 0.0) + gdt * hb * slope) / (
        1.0 + gdt * n2b * abs(q_old) * _friction_factor(hb, tmp, bits)
    )
    return min(max(q, 0.0), hb * math.sqrt(G * hb))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fluxes(h, z, qx, qy, n2, n2u, active, dt, dx, theta, hmin, froude, sides, s_open, buf):
    """Update face discharges in place from the water-surface slope (semi-implicit friction).

    The theta form averages each face's old discharge with its two neighbours' old ones along
    the flow direction; ``q_prev`` (x) and ``buf`` (y) keep those old values as faces are
    overwritten.
    """
    ny, nx = h.shape
    gdt = G * dt
    half = 0.5 * (1.0 - theta)
    tmp = np.empty(1, dtype=np.float64)
    bits = tmp.view(np.uint64)
    w_open, e_open, n_open, s_open_side = sides[0], sides[1], sides[2], sides[3]
    for r in range(ny):
        q_prev = qx[r, 0]
        qx[r, 0] = 0.0
        if w_open and active[r, 0]:
            qx[r, 0] = -_edge(
                h[r, 0], z[r, 0], z[r, min(1, nx - 1)], nx > 1 and active[r, min(1, nx - 1)],
                -q_prev, q_prev, _value(n2, n2u, r, 0), gdt, dx, hmin, s_open, tmp, bits,
            )  # fmt: skip
        for c in range(1, nx):
            q_old = qx[r, c]
            new = 0.0
            if active[r, c - 1] and active[r, c]:
                z0 = z[r, c - 1]
                z1 = z[r, c]
                new = _face(
                    h[r, c - 1] + z0, h[r, c] + z1, z0, z1, q_old,
                    theta * q_old + half * (q_prev + qx[r, c + 1]),
                    0.5 * (_value(n2, n2u, r, c - 1) + _value(n2, n2u, r, c)),
                    gdt, dx, hmin, froude, tmp, bits,
                )  # fmt: skip
            qx[r, c] = new
            q_prev = q_old
        q_old = qx[r, nx]
        qx[r, nx] = 0.0
        k = nx - 1
        if e_open and active[r, k]:
            qx[r, nx] = _edge(
                h[r, k], z[r, k], z[r, max(k - 1, 0)], nx > 1 and active[r, max(k - 1, 0)],
                q_old, q_old, _value(n2, n2u, r, k), gdt, dx, hmin, s_open, tmp, bits,
            )  # fmt: skip
    for c in range(nx):
        q_old = qy[0, c]
        buf[c] = q_old  # the old north-edge discharge: the first interior row's "previous"
        qy[0, c] = 0.0
        if n_open and active[0, c]:
            qy[0, c] = -_edge(
                h[0, c], z[0, c], z[min(1, ny - 1), c], ny > 1 and active[min(1, ny - 1), c],
                -q_old, q_old, _value(n2, n2u, 0, c), gdt, dx, hmin, s_open, tmp, bits,
            )  # fmt: skip
    for r in range(1, ny):
        for c in range(nx):
            q_old = qy[r, c]
            q_prev = buf[c]
            buf[c] = q_old
            new = 0.0
            if active[r - 1, c] and active[r, c]:
                z0 = z[r - 1, c]
                z1 = z[r, c]
                new = _face(
                    h[r - 1, c] + z0, h[r, c] + z1, z0, z1, q_old,
                    theta * q_old + half * (q_prev + qy[r + 1, c]),
                    0.5 * (_value(n2, n2u, r - 1, c) + _value(n2, n2u, r, c)),
                    gdt, dx, hmin, froude, tmp, bits,
                )  # fmt: skip
            qy[r, c] = new
    k = ny - 1
    for c in range(nx):
        q_old = qy[ny, c]
        qy[ny, c] = 0.0
        if s_open_side and active[k, c]:
            qy[ny, c] = _edge(
                h[k, c], z[k, c], z[max(k - 1, 0), c], ny > 1 and active[max(k - 1, 0), c],
                q_old, q_old, _value(n2, n2u, k, c), gdt, dx, hmin, s_open, tmp, bits,
            )  # fmt: skip


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _limits(h, qx, qy, f, dt, dx):
    """Per cell, the share of its outgoing discharges it can afford (1 unless it would run dry)."""
    ny, nx = h.shape
    for r in range(ny):
        for c in range(nx):
            out = max(-qx[r, c], 0.0) + max(qx[r, c + 1], 0.0)
            out += max(-qy[r, c], 0.0) + max(qy[r + 1, c], 0.0)
            need = out * dt
            avail = h[r, c] * dx
            if need <= avail:
                f[r, c] = 1.0
            elif avail > 0.0:
                f[r, c] = avail / need
            else:
                f[r, c] = 0.0


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _update(
    h, qx, qy, f, active, drain, drain_u, infil, infil_u, maxd, tmax, maxv, maxhr, t_thr,
    dt, dx, t_new, rain_d, thr, vel_h, hr_mid, hr_deep, df_mid, df_deep,
):  # fmt: skip
    """Scale each face by its upwind cell's limit, apply continuity, rain and sinks, track maxima.

    Each face is written back by the later of its two cells (in row-major order) after both
    have read it, so every face is scaled exactly once.
    """
    ny, nx = h.shape
    k = dt / dx
    drained = 0.0
    infiltrated = 0.0
    outflow = 0.0
    hmax = 0.0
    for r in range(ny):
        for c in range(nx):
            qw = qx[r, c]
            qe = qx[r, c + 1]
            qn = qy[r, c]
            qs = qy[r + 1, c]
            # Scale by the upwind cell's limit (a boundary face's upwind cell is this one).
            if qw > 0.0:
                qw *= f[r, c - 1]
            else:
                qw *= f[r, c]
            if qe < 0.0:
                qe *= f[r, c + 1]
            else:
                qe *= f[r, c]
            if qn > 0.0:
                qn *= f[r - 1, c]
            else:
                qn *= f[r, c]
            if qs < 0.0:
                qs *= f[r + 1, c]
            else:
                qs *= f[r, c]
            qx[r, c] = qw
            qy[r, c] = qn
            if c == nx - 1:
                qx[r, c + 1] = qe
                outflow += qe
            if r == ny - 1:
                qy[r + 1, c] = qs
                outflow += qs
            if c == 0:
                outflow -= qw
            if r == 0:
                outflow -= qn
            if not active[r, c]:
                continue
            hn = h[r, c] + ((qw - qe) + (qn - qs)) * k + rain_d
            # Sinks take at most what the cell holds; a cell at round-off below zero gives none.
            if hn > 0.0:
                d = min(_value(drain, drain_u, r, c) * dt, hn)
                hn -= d
                drained += d
                i = min(_value(infil, infil_u, r, c) * dt, hn)
                hn -= i
                infiltrated += i
            h[r, c] = hn
            if hn > hmax:
                hmax = hn
            if hn > maxd[r, c]:
                maxd[r, c] = hn
                tmax[r, c] = t_new
            if hn >= thr and t_thr[r, c] > t_new:
                t_thr[r, c] = t_new
            if hn > vel_h:
                ux = 0.5 * (qw + qe) / hn
                uy = 0.5 * (qn + qs) / hn
                v = math.sqrt(ux * ux + uy * uy)
                if v > maxv[r, c]:
                    maxv[r, c] = v
                df = df_deep if hn > hr_deep else (df_mid if hn > hr_mid else 0.0)
                hr = hn * (v + 0.5) + df
                if hr > maxhr[r, c]:
                    maxhr[r, c] = hr
    return hmax, drained * dx * dx, infiltrated * dx * dx, outflow * dt * dx


def _field(
    value: float | FloatArray, shape: tuple[int, int], dtype: type, name: str
) -> tuple[FloatArray, float]:
    """A per-cell input as ``(array, -1)``, or a uniform one as ``(1x1 array, value)``: kernels
    read the scalar then, which saves a memory stream per field on large grids."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 2 and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, the bed {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} must not be negative")
    if arr.ndim == 0 or (arr.size > 0 and np.all(arr == arr.flat[0])):
        return np.zeros((1, 1), dtype=dtype), float(arr.flat[0])
    return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=dtype), -1.0


def simulate(
    bed: FloatArray,
    *,
    dx: float,
    duration_s: float,
    rain: Series | None = None,
    inflows: Sequence[Inflow] = (),
    manning: float | FloatArray = 0.03,
    drainage_m_s: float | FloatArray = 0.0,
    infiltration_m_s: float | FloatArray = 0.0,
    active: npt.NDArray[np.bool_] | None = None,
    boundaries: Boundaries | None = None,
    initial_depth: float | FloatArray = 0.0,
    probes: Sequence[tuple[int, int]] = (),
    output_interval_s: float | None = None,
    alpha: float = 0.7,
    theta: float = 0.8,
    min_flow_depth_m: float = 1e-4,
    max_dt_s: float = 10.0,
    froude_limit: float | None = None,
    open_slope: float = 1e-3,
    threshold_m: float = 0.15,
    velocity_min_depth_m: float = 0.01,
    hazard: HazardRating | None = None,
    dtype: type = np.float64,
    progress: Callable[[float, float], None] | None = None,
) -> FloodResult:
    """Run the local-inertial model over ``duration_s``.

    Parameters
    ----------
    bed
        Bed elevation (m), 2D, north-up; buildings already raised where they should be.
    dx
        Cell size (m), square cells.
    duration_s
        Simulated time (s).
    rain
        Rain intensity (m/s) over time, uniform over active cells. See :mod:`twin.sim.rain`.
    inflows
        Point or area inflows (m³/s), see :class:`Inflow`.
    manning
        Manning's n (s/m^(1/3)), scalar or per cell; a face takes the mean of n² of its cells.
    drainage_m_s, infiltration_m_s
        Sink capacities (m/s), scalar or per cell; each takes at most the water a cell holds.
    active
        Cells that take part (False: blocked, e.g. buildings in ``block`` mode; no rain there).
    boundaries
        Open or closed per side (all closed by default).
    initial_depth
        Depth (m) at the start, scalar or per cell.
    probes
        ``(row, col)`` cells whose depth is recorded at every output time.
    output_interval_s
        Probe sampling and progress interval (s); the time step is cut to land on each.
    alpha
        Courant-like factor of the adaptive step ``dt = alpha dx / sqrt(g h_max)``; lowered to
        ``0.98 sqrt(theta / 2)`` when above it, the scheme's 2D stability bound.
    theta
        de Almeida's weighting: 1 is Bates et al. (2010); 0.7-0.9 damps checkerboarding.
    min_flow_depth_m
        Faces with a flow depth at or below this carry nothing (wet/dry fronts).
    max_dt_s
        Upper bound on the step while the grid is (nearly) dry.
    froude_limit
        Cap face discharges at this Froude number (None: no cap). Steep terrain and building
        walls in ``raise`` mode run calmer with 1.0; analytic tests run without it.
    open_slope
        Least water-surface slope assumed beyond an open edge (free outflow).
    threshold_m
        Depth (m) whose first arrival is recorded per cell (15 cm: waterlogging under GB 51222).
    velocity_min_depth_m
        Velocities (and hazard) are tracked only where depth exceeds this (m).
    hazard
        Hazard rating parameters (defaults: :class:`HazardRating`).
    dtype
        ``np.float64`` or ``np.float32`` for the state arrays; the volume accounts are float64.
    progress
        Called with ``(t, duration_s)`` at each output time.
    """
    if dtype not in (np.float64, np.float32):
        raise ValueError("dtype must be numpy.float64 or numpy.float32")
    z = np.ascontiguousarray(bed, dtype=dtype)
    if z.ndim != 2 or min(z.shape) < 1:
        raise ValueError("bed must be a 2D array")
    if not np.all(np.isfinite(z)):
        raise ValueError("bed has non-finite values (nodata holes): fill or mask them first")
    if dx <= 0 or duration_s <= 0:
        raise ValueError("dx and duration_s must be positive")
    if not 0 < alpha <= 1 or not 0 <= theta <= 1:
        raise ValueError("alpha must be in (0, 1] and theta in [0, 1]")
    shape = (int(z.shape[0]), int(z.shape[1]))
    ny, nx = shape
    n, n_u = _field(manning, shape, dtype, "manning")
    n2, n2_u = n * n, (n_u * n_u if n_u >= 0 else -1.0)
    drain, drain_u = _field(drainage_m_s, shape, dtype, "drainage")
    infil, infil_u = _field(infiltration_m_s, shape, dtype, "infiltration")
    h0, h0_u = _field(initial_depth, shape, np.float64, "initial_depth")
    h: FloatArray = np.full(shape, h0_u, dtype=dtype) if h0_u >= 0 else h0.astype(dtype)
    act = np.ones(shape, dtype=np.bool_) if active is None else np.asarray(active, dtype=np.bool_)
    if act.shape != shape:
        raise ValueError("active must have the bed's shape")
    h[~act] = 0
    b = boundaries or Boundaries()
    sides = np.array([b.west == "open", b.east == "open", b.north == "open", b.south == "open"])
    hz = hazard or HazardRating()
    for r, c in probes:
        if not (0 <= r < ny and 0 <= c < nx):
            raise ValueError(f"probe cell ({r}, {c}) is outside the {ny} x {nx} grid")
    for inflow in inflows:
        if len(inflow.rows) == 0 or np.any(~act[inflow.rows, inflow.cols]):
            raise ValueError(f"inflow {inflow.name!r} must cover at least one active cell")

    qx = np.zeros((ny, nx + 1), dtype=dtype)
    qy = np.zeros((ny + 1, nx), dtype=dtype)
    f = np.ones(shape, dtype=dtype)
    buf = np.zeros(nx, dtype=dtype)
    # Maxima are float32 whatever the state's precision: they are outputs, not state, and
    # four fewer float64 streams make the update pass markedly faster on large grids.
    stat = np.float32
    maxd = h.astype(stat)
    tmax = np.zeros(shape, dtype=stat)
    maxv = np.zeros(shape, dtype=stat)
    maxhr = np.zeros(shape, dtype=stat)
    t_thr = np.full(shape, np.inf, dtype=stat)
    t_thr[h >= threshold_m] = 0

    cell_area = dx * dx
    n_active = int(act.sum())
    initial = float(h.sum(dtype=np.float64)) * cell_area
    vol = {"rain": 0.0, "inflow": 0.0, "drained": 0.0, "infiltrated": 0.0, "outflow": 0.0}
    interval = output_interval_s if output_interval_s and output_interval_s > 0 else duration_s
    out_times = [0.0]
    samples = [[float(h[r, c]) for r, c in probes]]
    next_out = min(interval, duration_s)
    t = 0.0
    steps = 0
    hmax = float(h.max(initial=0.0))
    # A von Neumann analysis of the frictionless 2D scheme gives |amplification| <= 1 for the
    # checkerboard mode only while alpha <= sqrt(theta / 2): 0.707 for theta = 1 but 0.632 for
    # the usual theta = 0.8 (a lake at rest blows up from round-off at alpha = 0.7 otherwise).
    alpha_eff = min(alpha, 0.98 * math.sqrt(theta / 2)) if theta > 0 else alpha
    started = time.perf_counter()
    while t < duration_s - 1e-9:
        dt = alpha_eff * dx / math.sqrt(G * max(hmax, min_flow_depth_m))
        dt = min(dt, max_dt_s, next_out - t, duration_s - t)
        t_new = next_out if next_out - t <= dt * (1 + 1e-12) else t + dt
        dt = t_new - t
        for inflow in inflows:
            v = inflow.discharge.integral(t, t_new)
            if v:
                # Into the state before the fluxes, so the limiter lets it move this step.
                h[inflow.rows, inflow.cols] += v / (len(inflow.rows) * cell_area)
                vol["inflow"] += v
        rain_d = rain.integral(t, t_new) if rain is not None else 0.0
        if rain_d < 0:
            raise ValueError(f"rain is negative between {t:.1f} s and {t_new:.1f} s")
        vol["rain"] += rain_d * cell_area * n_active
        _fluxes(
            h, z, qx, qy, n2, n2_u, act, dt, dx, theta, min_flow_depth_m,
            froude_limit or 0.0, sides, open_slope, buf,
        )  # fmt: skip
        _limits(h, qx, qy, f, dt, dx)
        hmax, drained, infiltrated, outflow = _update(
            h, qx, qy, f, act, drain, drain_u, infil, infil_u, maxd, tmax, maxv, maxhr, t_thr,
            dt, dx, t_new, rain_d, threshold_m, velocity_min_depth_m,
            hz.mid_m, hz.deep_m, hz.df_mid, hz.df_deep,
        )  # fmt: skip
        vol["drained"] += drained
        vol["infiltrated"] += infiltrated
        vol["outflow"] += outflow
        t = t_new
        steps += 1
        if t >= next_out - 1e-9:
            out_times.append(t)
            samples.append([float(h[r, c]) for r, c in probes])
            next_out = min(next_out + interval, duration_s)
            if progress is not None:
                progress(t, duration_s)
    wall = time.perf_counter() - started
    stored = float(h.sum(dtype=np.float64)) * cell_area
    vol["initial"] = initial
    vol["stored"] = stored
    supplied = initial + vol["rain"] + vol["inflow"]
    removed = vol["drained"] + vol["infiltrated"] + vol["outflow"]
    mass_error = (stored - (supplied - removed)) / supplied if supplied > 0 else 0.0
    t_thr_out = t_thr.astype(np.float64)
    t_thr_out[~np.isfinite(t_thr_out)] = np.nan
    blocked = ~act
    outputs = [maxd, tmax, maxv, maxhr]
    for arr in outputs:
        arr[blocked] = np.nan
    t_thr_out[blocked] = np.nan
    return FloodResult(
        depth=h,
        max_depth=maxd,
        time_of_max_s=tmax,
        max_velocity=maxv,
        max_hazard=maxhr,
        time_to_threshold_s=t_thr_out,
        threshold_m=threshold_m,
        output_times_s=np.array(out_times),
        probe_depth=np.array(samples, dtype=np.float64).reshape(len(out_times), len(probes)),
        volumes_m3=vol,
        mass_error_rel=float(mass_error),
        steps=steps,
        wall_s=wall,
        cells=ny * nx,
        dtype=np.dtype(dtype).name,
        extra={"alpha_effective": alpha_eff},
    )


def pixel_index(
    transform: Sequence[float], shape: tuple[int, int], x: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Row and column of the cell holding each point of a north-up grid, and whether it is
    inside (rows and columns of points outside are clipped to the edge).

    ``transform`` is rasterio's ``(a, b, c, d, e, f)``.
    """
    a, _, c0, _, e, f0 = (float(v) for v in tuple(transform)[:6])
    ny, nx = shape
    col = np.floor((np.asarray(x, dtype=np.float64) - c0) / a).astype(np.intp)
    row = np.floor((np.asarray(y, dtype=np.float64) - f0) / e).astype(np.intp)
    inside = (row >= 0) & (row < ny) & (col >= 0) & (col < nx)
    return np.clip(row, 0, ny - 1), np.clip(col, 0, nx - 1), inside


def cells_within(
    shape: tuple[int, int],
    transform: Sequence[float],
    x: float,
    y: float,
    radius_m: float,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Cells whose centres lie within ``radius_m`` of ``(x, y)``, or else the cell holding it.

    ``transform`` is rasterio's ``(a, b, c, d, e, f)`` of a north-up grid. Raises ValueError when
    the point is outside the grid.
    """
    a, _, c0, _, e, f0 = (float(v) for v in tuple(transform)[:6])
    ny, nx = shape
    rows0, cols0, inside0 = pixel_index(transform, shape, [x], [y])
    if not inside0[0]:
        raise ValueError(f"point ({x:.1f}, {y:.1f}) is outside the grid")
    row, col = int(rows0[0]), int(cols0[0])
    span = math.ceil(radius_m / abs(a)) + 1
    rows = np.arange(max(0, row - span), min(ny, row + span + 1))
    cols = np.arange(max(0, col - span), min(nx, col + span + 1))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    cx = c0 + a * (cc + 0.5)
    cy = f0 + e * (rr + 0.5)
    inside = (cx - x) ** 2 + (cy - y) ** 2 <= radius_m**2
    if not inside.any():
        return np.array([row], dtype=np.intp), np.array([col], dtype=np.intp)
    return rr[inside].astype(np.intp), cc[inside].astype(np.intp)
