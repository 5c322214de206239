"""One time step of the flood model over bands of rows, on one thread or several, with the same
result bit for bit whatever the number of threads.

Why bands: the row sweep of :mod:`twin.sim.flood_kernels` (faces of row ``r``, limits of row
``r - 1``, continuity of row ``r - 2``) runs on one core; a whole city (10 M cells and more)
needs both. The grid is cut into fixed bands of :data:`BAND_ROWS` rows (band ``g`` holds rows
``g * BAND_ROWS`` to ``(g + 1) * BAND_ROWS - 1``, clipped to the active region), and each band
runs the row sweep on its own rows. The cut depends on the grid only, never on the number of
threads, so one thread and two do the very same arithmetic in the same order.

What makes the bands independent within a step: every face and every cell of the scheme is
computed from the *old* state only, so the order of the rows does not matter as long as no row
overwrites what another band still has to read. Three places do:

- A band's first row reads the old discharges of the row above (theta form, vector friction)
  and its last row those of the row below: before the bands start, the old discharges around
  each border are copied aside (phase 0, serial, five rows per border).
- The faces on a border (the north faces of a band's first row) are computed by the band
  below, into ``qy``, and also by the band above, into a row of its own (``south``), from the
  copies: the same function on the same inputs, so the same bits. Both bands then have every
  face their cells' outflow limits need.
- A border face is scaled by the limit of its upwind cell, which may sit in either band; and
  the continuity of the two rows beside it needs the scaled face. So the bands leave both rows'
  continuity for later, keep their first and last rows' limits, and after all bands are done
  the border faces are scaled (serial, one row per border) and the rows left are updated
  (phase B, one task per band).

Reductions are never shared between threads: each band keeps its own per-column maxima and
sink accounts (``acc[g]``) and outflow (``out[g]``), summed in band order at the end. A band
outside the active region would hold zeros, so skipping it changes no sum: a run with the active
region gives the full sweep's volumes bit for bit, like its depths.
"""

from __future__ import annotations

import numba
import numpy as np

from twin.sim.flood_kernels import (
    _OPTIONS,
    P_DT,
    P_DX,
    _cont_row,
    _faces_row,
    _limits_row,
    _north_row,
    _scale,
    _scale_row,
)

#: Rows per band: enough that the copies at the borders (five rows each) and the rows updated
#: after the bands stay a few per cent of a step, few enough that two threads share even a
#: small active region.
BAND_ROWS = 64

_jit = numba.njit(**_OPTIONS)
_pjit = numba.njit(parallel=True, **_OPTIONS)


def buffers(shape: tuple[int, int], dtype: type) -> tuple[np.ndarray, ...]:
    """The per-band work arrays of :func:`step` for a ``shape`` grid:
    ``(fb, xb, yb, south, lim, hy, hx, acc, out)``."""
    ny, nx = shape
    nb = max((ny + BAND_ROWS - 1) // BAND_ROWS, 1)
    return (
        np.ones((nb, 4, nx + 2), dtype=dtype),  # limits of the rows in flight, and a row of 1
        np.zeros((nb, 2, nx + 1), dtype=dtype),  # old qx of two rows
        np.zeros((nb, 2, nx), dtype=dtype),  # old qy of two rows
        np.zeros((nb, nx), dtype=dtype),  # the band's own copy of its south border's faces
        np.ones((nb, 2, nx + 2), dtype=dtype),  # limits of the band's first and last rows
        np.zeros((nb, 3, nx), dtype=dtype),  # old qy of the rows around its north border
        np.zeros((nb, 2, nx + 1), dtype=dtype),  # old qx of the rows either side of it
        np.zeros((nb, 3, nx), dtype=np.float64),  # per-column max depth, drained, infiltrated
        np.zeros(nb, dtype=np.float64),  # outflow (m²/s summed over edge faces)
    )


@_jit
def _rows(g, r0, r1):
    """Rows ``b0:b1`` of band ``g`` within the region ``r0:r1``, and whether it borders another
    band of the region above (``top``) and below (``bot``)."""
    b0 = max(g * BAND_ROWS, r0)
    b1 = min((g + 1) * BAND_ROWS, r1)
    return b0, b1, b0 > r0, b1 < r1


@_jit
def _save_borders(g0, g1, r0, r1, c0, c1, qx, qy, hy, hx):
    """Phase 0: the old discharges around each band's north border, before any band runs:
    ``qy[b - 1 : b + 2]`` into ``hy[g]``, ``qx[b - 1 : b + 1]`` into ``hx[g]`` (``b`` its
    first row)."""
    for g in range(g0, g1):
        b0, _, top, _ = _rows(g, r0, r1)
        if top:
            for i in range(3):
                hy[g, i, c0:c1] = qy[b0 - 1 + i, c0:c1]
            for i in range(2):
                hx[g, i, c0 : c1 + 1] = qx[b0 - 1 + i, c0 : c1 + 1]


@_jit
def _band(
    g, r0, r1, c0, c1, h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, fb,
    xb, yb, south, lim, hy, hx, acc, out, p, t_new, thr, thr32, sinks, sides, track, vector,
):  # fmt: skip
    """Phase A: the row sweep over band ``g``, but for the continuity of its border rows and
    the scaling of its border faces (see the module)."""
    b0, b1, top, bot = _rows(g, r0, r1)
    fbg, xbg, ybg, acg = fb[g], xb[g], yb[g], acc[g]
    acg[:] = 0.0
    if top:
        # The first row's faces read the old qx and qy of the row above, as if swept there.
        xbg[(b0 - 1) % 2, c0 : c1 + 1] = hx[g, 0, c0 : c1 + 1]
        ybg[(b0 - 1) % 2, c0:c1] = hy[g, 0, c0:c1]
    # The old discharges around the south border: qy[b1 - 1 : b1 + 2], qx[b1 - 1 : b1 + 1].
    by, bx = (hy[g + 1], hx[g + 1]) if bot else (hy[g], hx[g])
    outflow = 0.0
    for s in range(b0, b1 + 2):
        if s < b1:
            last = bot and s == b1 - 1
            nxt = by[1] if last else qy[s + 1]
            _faces_row(s, r0, c0, c1, h, z, qx, qy, nxt, n2, xbg, ybg, p, sides, vector)
            if last:
                # The north faces of the band below, from the old state, into our own row.
                n2u = n2[s if n2.shape[0] > 1 else 0]
                n2d = n2[b1 if n2.shape[0] > 1 else 0]
                _north_row(
                    c0, c1, h[s], z[s], h[b1], z[b1], n2u, n2d, by[1], ybg[s % 2], by[2],
                    xbg[s % 2], bx[1], south[g], p, vector,
                )  # fmt: skip
        r = s - 1
        if b0 <= r < b1:
            qs = south[g] if bot and r == b1 - 1 else qy[r + 1]
            _limits_row(c0, c1, h[r], qx[r], qy[r], qs, fbg[r % 3], p)
            if r == b0:
                lim[g, 0, :] = fbg[r % 3]
            if r == b1 - 1:
                lim[g, 1, :] = fbg[r % 3]
        r = s - 2
        if b0 <= r < b1:
            fu = fbg[(r - 1) % 3] if r > b0 else fbg[3]
            fd = fbg[(r + 1) % 3] if r < b1 - 1 else fbg[3]
            south_edge = not (bot and r == b1 - 1)
            _scale_row(r, c0, c1, qx, qy, fu, fbg[r % 3], fd, r == 0, south_edge)
            if not ((top and r == b0) or (bot and r == b1 - 1)):
                outflow += _cont_row(
                    r, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr,
                    t_thr, acg, p, t_new, thr, thr32, sinks, track,
                )  # fmt: skip
    out[g] = outflow


@_jit
def _finish(
    g, r0, r1, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, acc,
    out, p, t_new, thr, thr32, sinks, track,
):  # fmt: skip
    """Phase B: continuity of band ``g``'s border rows, once their border faces are scaled."""
    b0, b1, top, bot = _rows(g, r0, r1)
    acg = acc[g]
    if top:
        out[g] += _cont_row(
            b0, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, acg,
            p, t_new, thr, thr32, sinks, track,
        )  # fmt: skip
    if bot and not (top and b1 - 1 == b0):
        out[g] += _cont_row(
            b1 - 1, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr,
            acg, p, t_new, thr, thr32, sinks, track,
        )  # fmt: skip


@_jit
def _serial(
    g0, g1, r0, r1, c0, c1, h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr,
    fb, xb, yb, south, lim, hy, hx, acc, out, p, t_new, thr, thr32, sinks, sides, track, vector,
    phase,
):  # fmt: skip
    """Phase A (``phase`` 0) or B (1) over bands ``g0:g1``, one after the other."""
    for g in range(g0, g1):
        if phase == 0:
            _band(
                g, r0, r1, c0, c1, h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv,
                maxhr, t_thr, fb, xb, yb, south, lim, hy, hx, acc, out, p, t_new, thr, thr32,
                sinks, sides, track, vector,
            )  # fmt: skip
        else:
            _finish(
                g, r0, r1, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr,
                t_thr, acc, out, p, t_new, thr, thr32, sinks, track,
            )  # fmt: skip


@_pjit
def _parallel(
    g0, g1, r0, r1, c0, c1, h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr,
    fb, xb, yb, south, lim, hy, hx, acc, out, p, t_new, thr, thr32, sinks, sides, track, vector,
    phase,
):  # fmt: skip
    """:func:`_serial`, the bands shared among numba's threads."""
    for i in numba.prange(g1 - g0):
        g = g0 + i
        if phase == 0:
            _band(
                g, r0, r1, c0, c1, h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv,
                maxhr, t_thr, fb, xb, yb, south, lim, hy, hx, acc, out, p, t_new, thr, thr32,
                sinks, sides, track, vector,
            )  # fmt: skip
        else:
            _finish(
                g, r0, r1, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr,
                t_thr, acc, out, p, t_new, thr, thr32, sinks, track,
            )  # fmt: skip


def step(
    h: np.ndarray, z: np.ndarray, qx: np.ndarray, qy: np.ndarray, n2: np.ndarray,
    drain: np.ndarray, infil: np.ndarray, rainw: np.ndarray, maxd: np.ndarray, tmax: np.ndarray,
    maxv: np.ndarray, maxhr: np.ndarray, t_thr: np.ndarray, bufs: tuple[np.ndarray, ...],
    p: np.ndarray, t_new: float, thr: float, thr32: float, sinks: bool, sides: np.ndarray,
    track: bool, box: tuple[int, int, int, int], vector: bool, parallel: bool,
) -> tuple[float, float, float, float]:  # fmt: skip
    """One time step in place over the active region ``box`` = ``(r0, r1, c0, c1)`` (the whole
    grid: ``(0, ny, 0, nx)``; see :func:`twin.sim.flood.simulate` for the region's rule).

    ``bufs``: :func:`buffers` of the grid. ``parallel``: share the bands among numba's threads
    (as many as :func:`numba.set_num_threads` allows); the result is the same bit for bit.
    ``rainw``: the rain factor per cell (float64; one row when uniform). ``track``: update the
    maxima this step. ``vector``: the friction takes the discharge vector's magnitude.

    Returns ``(h_max (m), drained (m³), infiltrated (m³), outflow (m³))`` over the step.
    """
    r0, r1, c0, c1 = box
    return _step(
        h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, *bufs, p, t_new,
        thr, thr32, sinks, sides, track, r0, r1, c0, c1, vector, parallel,
    )  # fmt: skip


@_jit
def _step(
    h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, fb, xb, yb, south,
    lim, hy, hx, acc, out, p, t_new, thr, thr32, sinks, sides, track, r0, r1, c0, c1, vector,
    parallel,
):  # fmt: skip
    """:func:`step` in compiled code: phase 0, A, the border faces, B, then the sums."""
    if r1 <= r0:
        return 0.0, 0.0, 0.0, 0.0
    g0, g1 = r0 // BAND_ROWS, (r1 - 1) // BAND_ROWS + 1
    _save_borders(g0, g1, r0, r1, c0, c1, qx, qy, hy, hx)
    args = (
        g0, g1, r0, r1, c0, c1, h, z, qx, qy, n2, drain, infil, rainw, maxd, tmax, maxv, maxhr,
        t_thr, fb, xb, yb, south, lim, hy, hx, acc, out, p, t_new, thr, thr32, sinks, sides, track,
        vector,
    )  # fmt: skip
    if parallel:
        _parallel(*args, 0)
    else:
        _serial(*args, 0)
    # Each border face by the limit of its upwind cell: the last row of the band above (flow
    # southward, positive) or the first row of the band below.
    for g in range(g0 + 1, g1):
        b0, _, _, _ = _rows(g, r0, r1)
        _scale(qy[b0], lim[g - 1, 1], lim[g, 0], 1, 1, c0, c1)
    if parallel:
        _parallel(*args, 1)
    else:
        _serial(*args, 1)
    hmax, drained, infiltrated, outflow = 0.0, 0.0, 0.0, 0.0
    for g in range(g0, g1):
        acg = acc[g]
        hmax = max(hmax, acg[0].max())
        drained += acg[1].sum()
        infiltrated += acg[2].sum()
        outflow += out[g]
    dx = float(p[P_DX])
    area = dx * dx
    return hmax, drained * area, infiltrated * area, outflow * float(p[P_DT]) * dx
