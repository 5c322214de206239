"""A 2D local-inertial flood model on a raster: urban pluvial flooding (waterlogging).

The scheme is Bates et al. (2010) with the theta form of de Almeida et al. (2012):

    q' = [theta q + (1 - theta)/2 (q_prev + q_next) - g h_f dt dη/dx]
         / [1 + g dt n² |q| / h_f^(7/3)]

per cell face, with ``h_f`` the higher water surface minus the higher bed and ``|q|`` the
magnitude of the old discharge vector at the face (its own discharge and the mean of the four
faces of the other direction around it; ``friction="face"``: its own only), then continuity
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

import numpy as np
import numpy.typing as npt

from twin.sim import flood_bands, flood_inflows
from twin.sim import flood_kernels as fk
from twin.sim.flood_kernels import G
from twin.sim.flood_region import ActiveRegion
from twin.sim.flood_state import FloodState
from twin.sim.rain import Series
from twin.sim.threads import check_threads, numba_threads

Side = Literal["open", "closed"]
Friction = Literal["vector", "face"]
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
    state: FloodState | None = None  # where the run stopped, to continue from (initial_state)

    @property
    def cell_steps_per_s(self) -> float:
        return self.steps * self.cells / self.wall_s if self.wall_s > 0 else math.inf


def _field(
    value: float | FloatArray, shape: tuple[int, int], dtype: type, name: str
) -> tuple[FloatArray, float]:
    """A per-cell input as ``(array, -1)``, or a uniform one as ``(one row of it, value)``:
    kernels read row 0 for every row then, which saves a memory stream per field on large
    grids."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 2 and arr.shape != shape:
        raise ValueError(f"{name} has shape {arr.shape}, the bed {shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    if np.any(arr < 0):
        raise ValueError(f"{name} must not be negative")
    if arr.ndim == 0 or (arr.size > 0 and np.all(arr == arr.flat[0])):
        u = float(arr.flat[0])
        return np.full((1, shape[1]), u, dtype=dtype), u
    return np.ascontiguousarray(np.broadcast_to(arr, shape), dtype=dtype), -1.0


def simulate(
    bed: FloatArray,
    *,
    dx: float,
    duration_s: float,
    rain: Series | None = None,
    rain_factor: float | FloatArray = 1.0,
    inflows: Sequence[Inflow] = (),
    manning: float | FloatArray = 0.03,
    drainage_m_s: float | FloatArray = 0.0,
    infiltration_m_s: float | FloatArray = 0.0,
    active: npt.NDArray[np.bool_] | None = None,
    boundaries: Boundaries | None = None,
    initial_depth: float | FloatArray = 0.0,
    initial_state: FloodState | None = None,
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
    maxima_every_step: bool = True,
    inflow_cfl: bool = True,
    drop_weir: bool = False,
    alpha_cap: bool = True,
    active_region: bool = True,
    friction: Friction = "vector",
    threads: int = 1,
) -> FloodResult:
    """Run the local-inertial model over ``duration_s``, from a dry grid, an initial depth or
    where an earlier run stopped (``initial_state``).

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
    rain_factor
        Dimensionless factor of ``rain`` per cell (scalar or per cell, >= 0; default 1): a cell
        gets ``rain(t) * rain_factor``. A rain field constant over the run (a nowcast step, see
        :mod:`twin.sim.nowcast`) is ``rain = Series.constant(1 mm/h in m/s)`` with the field in
        mm/h as the factor.
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
    initial_state
        Continue a run where it stopped (its ``FloodResult.state``; see
        :mod:`twin.sim.flood_state`): depth, face discharges, maxima and volume accounts are
        carried, and the run covers ``[state.time_s, state.time_s + duration_s]`` on the state's
        clock, which is the clock of ``rain``, the inflows, the output times and every time
        in the result. ``initial_depth`` must stay 0. The state is not modified.
    probes
        ``(row, col)`` cells whose depth is recorded at every output time.
    output_interval_s
        Probe sampling and progress interval (s); the time step is cut to land on each.
    alpha
        Courant-like factor of the adaptive step ``dt = alpha dx / sqrt(g h_max)``; lowered to
        ``0.98 sqrt(theta / 2)`` when above it, the scheme's 2D stability bound (see
        ``alpha_cap``).
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
    maxima_every_step
        Track the maxima (depth and its time, velocity, hazard, time to ``threshold_m``) after
        every step (default), or only at output times, as a model sampled every
        ``output_interval_s`` would see them: about a sixth less time per step on a wet grid
        (the tracking is vectorised and runs over the active region only), at the cost of peaks
        between outputs; on a partly dry grid it saves next to nothing, since each output time
        then sweeps the whole grid.
    inflow_cfl
        Shorten the step so that its stability bound holds for the depth after the inflows of
        that step (default). False is the old rule (the bound from the depth before them): a
        strong point inflow on dry ground then drops metres of water into its cells in the
        first step, and the collapse of that column overshoots the true depths downstream.
    drop_weir
        Cap the discharge over a free overfall (a face whose lower water surface is below its
        higher bed: a raised building's wall top, a kerb, a terrace step) at a broad-crested
        weir's ``(2/3)^(3/2) sqrt(g) h_f^(3/2)`` (m²/s). Without it the face is pushed by the
        whole drop over ``dx`` and the upper cell empties each step, whatever its depth.
    alpha_cap
        Lower ``alpha`` to ``0.98 sqrt(theta / 2)`` (default). False runs the given ``alpha``
        as landlab does (0.7 with theta 0.8): about 10 % fewer steps, stable only where friction
        damps the checkerboard mode (a frictionless lake at rest then grows from round-off).
    active_region
        Sweep only the box of cells a step can change: the wet cells, the inflows' and, while
        it rains, those the rain falls on (default; see :mod:`twin.sim.flood_region`): the
        same result bit for bit, in a fraction of the time on a mostly dry grid fed by inflows
        or by a storm over part of it (``rain_factor`` 0 elsewhere). False sweeps the whole
        grid every step.
    friction
        The discharge magnitude in a face's Manning term: ``"vector"`` (default) that of the
        whole discharge vector, ``sqrt(q² + q_t²)`` with ``q_t`` the mean of the four
        neighbouring faces of the other direction (previous step), so that the friction does
        not depend on the flow's direction to the grid; ``"face"`` the face's own ``|q|``
        (Bates et al. 2010, landlab), under which a flow along a grid diagonal feels 1/sqrt(2)
        of its friction and runs ahead of one along an axis (the "friction decoupling" of
        Cozzolino et al. 2019: the scheme loses its rotational invariance).
    threads
        Threads that share each step, by bands of rows (see :mod:`twin.sim.flood_bands`):
        1 (default) runs on the calling thread; more, up to numba's ``NUMBA_NUM_THREADS``,
        gives the same result bit for bit. Worth it on large grids (a step of a million cells
        and more); the per-step start of the threads outweighs it on a small active region.
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
    if friction not in ("vector", "face"):
        raise ValueError(f"friction must be 'vector' or 'face', not {friction!r}")
    check_threads(threads)
    shape = (int(z.shape[0]), int(z.shape[1]))
    ny, nx = shape
    n, _ = _field(manning, shape, dtype, "manning")
    n2 = n * n
    drain, _ = _field(drainage_m_s, shape, dtype, "drainage")
    infil, _ = _field(infiltration_m_s, shape, dtype, "infiltration")
    rainw, _ = _field(rain_factor, shape, np.float64, "rain_factor")
    st = initial_state
    if st is not None:
        if np.any(np.asarray(initial_depth) != 0):
            raise ValueError("initial_depth and initial_state exclude each other")
        st.check(shape)
        h: FloatArray = st.depth.astype(dtype, copy=True)
    else:
        h0, h0_u = _field(initial_depth, shape, np.float64, "initial_depth")
        h = np.full(shape, h0_u, dtype=dtype) if h0_u >= 0 else h0.astype(dtype)
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

    # The kernels' own bed: blocked cells raised to BLOCKED stand for the mask (see fk).
    zk = z.copy()
    zk[~act] = fk.BLOCKED
    qx: FloatArray = np.zeros((ny, nx + 1), dtype=dtype)
    qy: FloatArray = np.zeros((ny + 1, nx), dtype=dtype)
    if st is not None:
        qx, qy = st.qx.astype(dtype, copy=True), st.qy.astype(dtype, copy=True)
    bufs = flood_bands.buffers(shape, dtype)
    sinks = bool(drain.any() or infil.any())
    thr32 = float(np.float32(threshold_m))  # see fk._update_row: the maxima are float32
    p = fk.params(dtype)
    p[fk.P_DX], p[fk.P_THETA], p[fk.P_HALF] = dx, theta, 0.5 * (1.0 - theta)
    p[fk.P_HMIN], p[fk.P_FROUDE], p[fk.P_SOPEN] = min_flow_depth_m, froude_limit or 0.0, open_slope
    p[fk.P_VELH], p[fk.P_HRMID], p[fk.P_HRDEEP] = velocity_min_depth_m, hz.mid_m, hz.deep_m
    p[fk.P_DFMID], p[fk.P_DFDEEP] = hz.df_mid, hz.df_deep
    p[fk.P_WEIR] = fk.WEIR if drop_weir else 0.0
    # Maxima are float32 whatever the state's precision: they are outputs, not state, and
    # four fewer float64 streams make the update pass markedly faster on large grids.
    stat = np.float32
    cell_area = dx * dx
    # The rain the active cells get per metre of the step's depth (the number of active cells
    # when uniform: exact, so the accounts are those of a run without factors).
    rain_cells = float(np.broadcast_to(rainw, shape)[act].sum(dtype=np.float64))
    vol = {"rain": 0.0, "inflow": 0.0, "drained": 0.0, "infiltrated": 0.0, "outflow": 0.0}
    if st is None:
        maxd = h.astype(stat)
        tmax = np.zeros(shape, dtype=stat)
        maxv = np.zeros(shape, dtype=stat)
        maxhr = np.zeros(shape, dtype=stat)
        t_thr = np.full(shape, np.inf, dtype=stat)
        t_thr[h >= threshold_m] = 0
        initial = float(h.sum(dtype=np.float64)) * cell_area
        t0, hmax, steps_before = 0.0, float(h.max(initial=0.0)), 0
    else:
        maxd, tmax = st.max_depth.astype(stat), st.time_of_max_s.astype(stat)
        maxv, maxhr = st.max_velocity.astype(stat), st.max_hazard.astype(stat)
        t_thr = st.time_to_threshold_s.astype(stat)
        # The running accounts go on from where they were: added to in the same order as in
        # one long run, so a chain of runs reports its volumes bit for bit.
        vol.update({k: float(st.volumes_m3.get(k, 0.0)) for k in vol})
        initial = float(st.volumes_m3.get("initial", 0.0))
        t0, hmax, steps_before = float(st.time_s), float(st.hmax_m), st.steps
    t_end = t0 + duration_s
    interval = output_interval_s if output_interval_s and output_interval_s > 0 else duration_s
    out_times = [t0]
    samples = [[float(h[r, c]) for r, c in probes]]
    next_out = min(t0 + interval, t_end)
    t = t0
    steps = 0
    # A von Neumann analysis of the frictionless 2D scheme gives |amplification| <= 1 for the
    # checkerboard mode only while alpha <= sqrt(theta / 2): 0.707 for theta = 1 but 0.632 for
    # the usual theta = 0.8 (a lake at rest blows up from round-off at alpha = 0.7 otherwise).
    alpha_eff = min(alpha, 0.98 * math.sqrt(theta / 2)) if theta > 0 and alpha_cap else alpha
    # Cells wetter than this can move water; with sinks, any water changes a cell.
    region = ActiveRegion(
        shape, wet_m=0.0 if sinks else min_flow_depth_m,
        seeds=[(f.rows, f.cols) for f in inflows], enabled=active_region,
        rain_cells=(np.broadcast_to(rainw, shape) > 0) & act,
    )  # fmt: skip
    packed = flood_inflows.pack(inflows, cell_area)
    started = time.perf_counter()
    with numba_threads(threads):
        while t < t_end - 1e-9:
            dt = alpha_eff * dx / math.sqrt(G * max(hmax, min_flow_depth_m))
            dt = min(dt, max_dt_s, next_out - t, t_end - t)
            if inflows and inflow_cfl:
                dt = flood_inflows.inflow_step(
                    dt, t, hmax, alpha_eff * dx, min_flow_depth_m, *packed
                )
            t_new = next_out if next_out - t <= dt * (1 + 1e-12) else t + dt
            dt = t_new - t
            for i, inflow in enumerate(inflows):
                v = flood_inflows.volume(i, t, t_new, *packed)
                if v:
                    # Into the state before the fluxes, so the limiter lets it move this step.
                    h[inflow.rows, inflow.cols] += v / (len(inflow.rows) * cell_area)
                    vol["inflow"] += v
            rain_d = rain.integral(t, t_new) if rain is not None else 0.0
            if rain_d < 0:
                raise ValueError(f"rain is negative between {t:.1f} s and {t_new:.1f} s")
            p[fk.P_DT], p[fk.P_GDT], p[fk.P_GDX] = dt, G * dt, G * dt / dx
            p[fk.P_K], p[fk.P_RAIN] = dt / dx, rain_d
            # The rain the cells get, in the state's precision (float32 rounds it by up to 6e-8).
            vol["rain"] += float(p[fk.P_RAIN]) * cell_area * rain_cells
            track = maxima_every_step or t_new >= next_out - 1e-9
            # Rain changes every cell it falls on (the region takes in their box); maxima taken
            # at output times only must see every cell.
            box = region.box(h, qx, qy, full=track and not maxima_every_step, rain=rain_d > 0)
            hmax, drained, infiltrated, outflow = flood_bands.step(
                h, zk, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, bufs, p,
                t_new, threshold_m, thr32, sinks, sides, track, box, friction == "vector",
                threads > 1,
            )  # fmt: skip
            region.after(h, box)
            vol["drained"] += drained
            vol["infiltrated"] += infiltrated
            vol["outflow"] += outflow
            t = t_new
            steps += 1
            if t >= next_out - 1e-9:
                out_times.append(t)
                samples.append([float(h[r, c]) for r, c in probes])
                next_out = min(next_out + interval, t_end)
                if progress is not None:
                    progress(t - t0, duration_s)
    wall = time.perf_counter() - started
    stored = float(h.sum(dtype=np.float64)) * cell_area
    vol["initial"] = initial
    vol["stored"] = stored
    supplied = initial + vol["rain"] + vol["inflow"]
    removed = vol["drained"] + vol["infiltrated"] + vol["outflow"]
    mass_error = (stored - (supplied - removed)) / supplied if supplied > 0 else 0.0
    state = FloodState(
        time_s=t, depth=h, qx=qx, qy=qy, hmax_m=float(hmax), max_depth=maxd.copy(),
        time_of_max_s=tmax.copy(), max_velocity=maxv.copy(), max_hazard=maxhr.copy(),
        time_to_threshold_s=t_thr.copy(), volumes_m3={**vol, "initial": initial},
        steps=steps_before + steps,
    )  # fmt: skip
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
        extra={
            "alpha_effective": alpha_eff,
            "swept_share": region.swept_cells / max(steps * ny * nx, 1),
        },
        state=state,
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
    *,
    open_cells: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Cells whose centres lie within ``radius_m`` of ``(x, y)``, or else the cell holding it.

    ``transform`` is rasterio's ``(a, b, c, d, e, f)`` of a north-up grid. With ``open_cells``
    (a mask of the grid: True where water can be put, i.e. not inside a raised or blocked
    building) only open cells within the radius count, and when none is, the open cell nearest
    to the point: a point inflow is a pipe or a culvert that spills onto the street, not onto a
    roof, from where the water would fall the building's height in one step. Raises ValueError
    when the point is outside the grid or no cell is open.
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
    if open_cells is not None:
        if open_cells.shape != shape:
            raise ValueError("open_cells must have the grid's shape")
        inside &= open_cells[rr, cc]
        if not inside.any():
            orr, occ = np.nonzero(open_cells)
            if len(orr) == 0:
                raise ValueError("no open cell on the grid")
            d2 = (c0 + a * (occ + 0.5) - x) ** 2 + (f0 + e * (orr + 0.5) - y) ** 2
            k = int(np.argmin(d2))
            return orr[k : k + 1].astype(np.intp), occ[k : k + 1].astype(np.intp)
    if not inside.any():
        return np.array([row], dtype=np.intp), np.array([col], dtype=np.intp)
    return rr[inside].astype(np.intp), cc[inside].astype(np.intp)
