"""Numba kernels of the local-inertial flood model (:mod:`twin.sim.flood`): one time step is one
row-pipelined sweep over the grid.

Why one sweep: the three stages of a step (face discharges, the outflow limiter, continuity and
the maxima) each touched every state array once, and most of the time went to that traffic and
to branchy scalar loops. The sweep computes faces for row ``r``, limits for row ``r - 1`` and
updates row ``r - 2``, so each array is streamed from memory once per step and the rows in
flight stay in cache. Every inner loop runs over one row, branch-free (selects instead of
``if``), with no loop-carried dependency, so LLVM vectorises it; edges and other per-row work
stay scalar.

Arithmetic is in the state's dtype throughout (float32 state is computed in float32): scalar
constants come in through ``p``, an array of that dtype, because a Python float literal would
promote the whole expression to float64.

Blocked cells carry the bed ``BLOCKED`` (1e30) instead of a separate mask: a face next to one has
a flow depth ``max(e) - max(z) = 0`` and so carries nothing, without a test in the loop.

Mass stays at round-off: each face discharge is computed once, scaled once by its upwind cell's
limit, stored, and read by both its cells; no fast-math reassociation is enabled anywhere.

The row functions here take their rows' bounds and, where a band of rows needs it, the rows
they read as arguments: :mod:`twin.sim.flood_bands` runs the sweep over bands of rows, on one
thread or several, with the same result.
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

G = 9.81  # gravity (m/s²)
BLOCKED = 1e30  # bed (m) of a blocked cell
ACTIVE_BELOW = 1e29  # a cell whose bed is below this takes part
#: A broad-crested weir's discharge over critical flow for the head H:
#: q = (2/3)^(3/2) sqrt(g) H^(3/2) (critical depth 2/3 H at the crest; discharge coefficient 1,
#: no approach velocity).
WEIR = (2.0 / 3.0) ** 1.5

# Layout of ``p``, the per-step scalars in the state's dtype.
(P_DT, P_DX, P_GDT, P_GDX, P_THETA, P_HALF, P_HMIN, P_FROUDE, P_SOPEN, P_K, P_RAIN, P_VELH,
 P_HRMID, P_HRDEEP, P_DFMID, P_DFDEEP, P_ZERO, P_ONE, P_PT5, P_G, P_43, P_13, P_ACTIVE,
 P_WEIR, P_LEN) = range(25)  # fmt: skip


# Every kernel: cached, without the GIL, numpy's error model (no zero-division checks in the
# loops), and fused multiply-adds allowed ("contract" only: no reassociation, so each face and
# each cell's sum is evaluated as written and mass stays at round-off).
_OPTIONS: dict[str, Any] = {
    "cache": True, "nogil": True, "error_model": "numpy", "fastmath": {"contract"},
}  # fmt: skip
_jit = numba.njit(**_OPTIONS)
_inline = numba.njit(inline="always", **_OPTIONS)


# First guesses of h^(-1/3) from the bits of h: 4/3 * 2^m * (bias - 0.045), m the mantissa bits.
_MAGIC = {64: 0x553F09FC49D9B000, 32: 0x54A2FA8D}


def params(dtype: type) -> np.ndarray:
    """A ``p`` array for ``dtype`` with its constants filled in (the per-step slots are 0)."""
    p: np.ndarray = np.zeros(P_LEN, dtype=dtype)
    p[P_ONE], p[P_PT5], p[P_G], p[P_43], p[P_13] = 1.0, 0.5, G, 4.0 / 3.0, 1.0 / 3.0
    p[P_ACTIVE] = ACTIVE_BELOW
    return p


def _rcbrt_seed_typer(typingctx, h):
    """A first guess of ``h^(-1/3)`` (h > 0) from its bits: ``magic - bits / 3``.

    The division by 3 goes through a float multiply so that it vectorises (there is no vector
    64-bit integer division).
    """
    if h not in (types.float32, types.float64):
        return None
    width = 64 if h == types.float64 else 32

    def codegen(context, builder, signature, args):
        ity = ir.IntType(width)
        bits = builder.bitcast(args[0], ity)
        third = builder.fmul(
            builder.sitofp(bits, ir.DoubleType()), ir.Constant(ir.DoubleType(), 1 / 3)
        )
        guess = builder.sub(ir.Constant(ity, _MAGIC[width]), builder.fptosi(third, ity))
        return builder.bitcast(guess, args[0].type)

    return h(h), codegen


_rcbrt_seed: Any = intrinsic(_rcbrt_seed_typer)


@_inline
def _friction_factor(h, third, four_thirds):
    """``h^(-7/3)`` without a division or a libm call: the bit-level first guess of ``h^(-1/3)``,
    three Newton steps (relative error below 1e-7, far inside any Manning's n), then the seventh
    power. libm's cbrt and the divisions around it would cost most of the face update."""
    y = _rcbrt_seed(h)
    t = h * third
    c = four_thirds
    y = y * (c - t * y * y * y)
    y = y * (c - t * y * y * y)
    y = y * (c - t * y * y * y)
    y2 = y * y
    return y2 * y2 * y2 * y


@_inline
def _face(e0, e1, z0, z1, q_fric, qa, nf, c):
    """New unit discharge (m²/s) through a face from cell 0 to cell 1 (positive 0 -> 1): the
    theta-averaged ``qa`` pushed by the surface slope, over semi-implicit friction with the
    discharge magnitude ``q_fric`` (m²/s, >= 0: the face's own ``|q|``, or that of the whole
    vector, see :func:`_faces_row`); 0 where the flow depth is at or below
    ``min_flow_depth_m`` (computed anyway, then dropped: no branch).

    ``c`` is :func:`_consts`' tuple: scalars in registers, not loads from ``p`` that LLVM would
    have to repeat after every store for want of knowing that they do not alias.
    """
    gdt, gdx, hmin, zero, one, third, four_thirds = c
    hf = max(e0, e1) - max(z0, z1)
    den = one + gdt * nf * q_fric * _friction_factor(max(hf, hmin), third, four_thirds)
    new = (qa - gdx * hf * (e1 - e0)) / den
    return new if hf > hmin else zero


@_inline
def _consts(p):
    """The scalars :func:`_face` needs, read once per row."""
    return p[P_GDT], p[P_GDX], p[P_HMIN], p[P_ZERO], p[P_ONE], p[P_13], p[P_43]


@_inline
def _cap(q, e0, e1, z0, z1, zero, froude, weir, big, g):
    """``q`` capped at ``froude`` times critical flow for the face's flow depth (``froude`` 0:
    no cap), and at a broad-crested weir's ``weir`` times critical flow where the face is a free
    overfall (the lower water surface below the higher bed: a wall top, a kerb, a step).

    Why the weir: the local-inertial face drives the flow with the surface slope across the
    face, which over a drop is the drop's height over dx, however thin the film on top; the
    real discharge over a brink is set by the head alone, ``q = (2/3)^(3/2) sqrt(g) H^(3/2)``.
    """
    hf = max(max(e0, e1) - max(z0, z1), zero)
    crit = hf * math.sqrt(g * hf)
    cap = froude * crit if froude > zero else big
    drop = min(e0, e1) < max(z0, z1)
    cap = min(cap, weir * crit) if (weir > zero) & drop else cap
    return min(max(q, -cap), cap)


@_jit
def _edge(hb, zb, z_in, inner_ok, out_old, q_old, n2b, p):
    """Outward unit discharge (m²/s, >= 0) through an open edge face.

    Free outflow: the water surface keeps falling outward at the bed's slope toward the edge
    (at least ``open_slope``), and the discharge is capped at critical flow.
    """
    if hb <= p[P_HMIN]:
        return p[P_ZERO]
    s_open = p[P_SOPEN]
    slope = max(s_open, (z_in - zb) / p[P_DX]) if inner_ok else s_open
    gdt = p[P_GDT]
    q = (max(out_old, p[P_ZERO]) + gdt * hb * slope) / (
        p[P_ONE] + gdt * n2b * abs(q_old) * _friction_factor(hb, p[P_13], p[P_43])
    )
    return min(max(q, p[P_ZERO]), hb * math.sqrt(p[P_G] * hb))


@_jit
def _faces_row(r, r0, c0, c1, h, z, qx, qy, nxt, n2, xb, yb, p, sides, vector):
    """New (unlimited) discharges of row ``r``: its west faces ``qx[r]`` and north faces
    ``qy[r]`` (and the south edge ``qy[ny]`` on the last row), over columns ``c0:c1`` of the
    active region whose first row is ``r0``. Faces on the region's border (not the grid's edge)
    are left as they are: both their cells are dry and they hold 0 (see
    :func:`twin.sim.flood_bands.step`).

    The theta form averages a face's old discharge with its two neighbours' old ones along the
    flow, so the old values are copied aside first: ``xb[r % 2]`` the old ``qx[r]``
    (``xb[(r - 1) % 2]`` still holds the old ``qx[r - 1]``), ``yb[r % 2]`` the old ``qy[r]``
    (``yb[(r - 1) % 2]`` the old ``qy[r - 1]``); ``nxt`` is the old ``qy[r + 1]`` (that row
    itself, not yet overwritten, or a copy of it kept aside: see :mod:`twin.sim.flood_bands`).

    ``vector``: the friction of an inner face takes the magnitude of the old discharge vector,
    ``sqrt(q² + q_t²)``, ``q_t`` the mean of the old discharges of the four faces of the other
    direction around it (those of its two cells); else the face's own ``|q|`` (Bates et al.
    2010), which gives a flow along a grid diagonal 1/sqrt(2) of its friction. Edge faces
    keep their own ``|q|`` (their flow is normal to the edge).
    """
    ny, nx = h.shape
    theta, half, pt5, act = p[P_THETA], p[P_HALF], p[P_PT5], p[P_ACTIVE]
    fc = _consts(p)
    hr, zr = h[r], z[r]
    n2r = n2[r if n2.shape[0] > 1 else 0]
    qxr = qx[r]
    xo = xb[r % 2]
    xo[c0 : c1 + 1] = qxr[c0 : c1 + 1]
    if vector:
        # qy[r] and nxt still hold the old discharges (qy[r] is updated below).
        qn, qs, quarter = qy[r], nxt, pt5 * pt5
        for c in range(c0 + 1, c1):
            z0, z1 = zr[c - 1], zr[c]
            qo = xo[c]
            qt = quarter * ((qn[c - 1] + qn[c]) + (qs[c - 1] + qs[c]))
            qxr[c] = _face(
                hr[c - 1] + z0, hr[c] + z1, z0, z1, math.sqrt(qo * qo + qt * qt),
                theta * qo + half * (xo[c - 1] + xo[c + 1]), pt5 * (n2r[c - 1] + n2r[c]), fc,
            )  # fmt: skip
    else:
        for c in range(c0 + 1, c1):
            z0, z1 = zr[c - 1], zr[c]
            qo = xo[c]
            qxr[c] = _face(
                hr[c - 1] + z0, hr[c] + z1, z0, z1, abs(qo),
                theta * qo + half * (xo[c - 1] + xo[c + 1]), pt5 * (n2r[c - 1] + n2r[c]), fc,
            )  # fmt: skip
    if c0 == 0:
        qxr[0] = p[P_ZERO]
        if sides[0] and zr[0] < act:
            k = min(1, nx - 1)
            qxr[0] = -_edge(hr[0], zr[0], zr[k], nx > 1 and zr[k] < act, -xo[0], xo[0], n2r[0], p)
    if c1 == nx:
        qxr[nx] = p[P_ZERO]
        k = nx - 1
        if sides[1] and zr[k] < act:
            j = max(k - 1, 0)
            qxr[nx] = _edge(
                hr[k], zr[k], zr[j], nx > 1 and zr[j] < act, xo[nx], xo[nx], n2r[k], p
            )  # fmt: skip
    zero, froude, g, weir, big = p[P_ZERO], p[P_FROUDE], p[P_G], p[P_WEIR], p[P_ACTIVE]
    capped = (froude > 0) or (weir > 0)
    if capped:
        for c in range(c0 + 1, c1):
            e0, e1 = hr[c - 1] + zr[c - 1], hr[c] + zr[c]
            qxr[c] = _cap(qxr[c], e0, e1, zr[c - 1], zr[c], zero, froude, weir, big, g)

    qyr = qy[r]
    old = yb[r % 2]
    old[c0:c1] = qyr[c0:c1]
    if r == 0:
        for c in range(c0, c1):
            qyr[c] = p[P_ZERO]
        if sides[2]:
            k = min(1, ny - 1)
            for c in range(c0, c1):
                if zr[c] < act:
                    qyr[c] = -_edge(
                        hr[c], zr[c], z[k, c], ny > 1 and z[k, c] < act, -old[c], old[c],
                        n2r[c], p,
                    )  # fmt: skip
    elif r > r0:
        n2u = n2[r - 1 if n2.shape[0] > 1 else 0]
        # The old qx of rows r - 1 and r (r > r0: both copied aside this step).
        _north_row(
            c0, c1, h[r - 1], z[r - 1], hr, zr, n2u, n2r, old, yb[(r - 1) % 2], nxt,
            xb[(r - 1) % 2], xo, qyr, p, vector,
        )  # fmt: skip
    if r == ny - 1:
        qys = qy[ny]
        j = max(r - 1, 0)
        for c in range(c0, c1):
            q_old = qys[c]
            qys[c] = p[P_ZERO]
            if sides[3] and zr[c] < act:
                qys[c] = _edge(
                    hr[c], zr[c], z[j, c], ny > 1 and z[j, c] < act, q_old, q_old, n2r[c], p
                )


@_jit
def _north_row(c0, c1, hu, zu, hr, zr, n2u, n2r, old, prev, nxt, xu, xo, out, p, vector):
    """New (unlimited, capped) discharges of the faces between two rows, columns ``c0:c1``, into
    ``out``: the rows' depths, beds and n² (``hu`` ... of the upper row, ``hr`` ... of the
    lower), the faces' old discharges ``old`` and those of the faces above (``prev``) and below
    (``nxt``) for the theta form, and the old west faces of both rows (``xu``, ``xo``) for the
    vector friction. Reads only old state, so a band of rows can compute the faces on its lower
    border itself (:mod:`twin.sim.flood_bands`), bit for bit what the band below computes."""
    theta, half, pt5 = p[P_THETA], p[P_HALF], p[P_PT5]
    fc = _consts(p)
    if vector:
        quarter = pt5 * pt5
        for c in range(c0, c1):
            qo = old[c]
            qt = quarter * ((xu[c] + xu[c + 1]) + (xo[c] + xo[c + 1]))
            out[c] = _face(
                hu[c] + zu[c], hr[c] + zr[c], zu[c], zr[c], math.sqrt(qo * qo + qt * qt),
                theta * qo + half * (prev[c] + nxt[c]), pt5 * (n2u[c] + n2r[c]), fc,
            )  # fmt: skip
    else:
        for c in range(c0, c1):
            qo = old[c]
            out[c] = _face(
                hu[c] + zu[c], hr[c] + zr[c], zu[c], zr[c], abs(qo),
                theta * qo + half * (prev[c] + nxt[c]), pt5 * (n2u[c] + n2r[c]), fc,
            )  # fmt: skip
    zero, froude, g, weir, big = p[P_ZERO], p[P_FROUDE], p[P_G], p[P_WEIR], p[P_ACTIVE]
    if (froude > 0) or (weir > 0):
        for c in range(c0, c1):
            out[c] = _cap(
                out[c], hu[c] + zu[c], hr[c] + zr[c], zu[c], zr[c], zero, froude, weir, big, g
            )


@_jit
def _limits_row(c0, c1, hr, qxr, qn, qs, fr, p):
    """Per cell of a row (columns ``c0:c1``; its depths ``hr``, west faces ``qxr``, north and
    south faces ``qn``, ``qs``), the share of its outgoing discharges it can afford (1 unless
    it would run dry), into ``fr[c0 + 1 : c1 + 1]``."""
    zero, one, dt, dx = p[P_ZERO], p[P_ONE], p[P_DT], p[P_DX]
    for c in range(c0, c1):
        out = max(-qxr[c], zero) + max(qxr[c + 1], zero)
        out += max(-qn[c], zero) + max(qs[c], zero)
        need = out * dt
        avail = hr[c] * dx
        part = avail / need if avail > zero else zero
        fr[c + 1] = one if need <= avail else part


@_jit
def _scale(q, f_pos, f_neg, o_pos, o_neg, i0, i1):
    """Scale face discharges ``q[i0:i1]`` by the limit of their upwind cell:
    ``f_pos[o_pos + i]`` for a positive discharge, ``f_neg[o_neg + i]`` otherwise."""
    # Views from 0, so that the loop vectorises (see _cont_row).
    qv, fp, fn = q[i0:i1], f_pos[o_pos + i0 : o_pos + i1], f_neg[o_neg + i0 : o_neg + i1]
    for i in range(i1 - i0):
        v = qv[i]
        # Both limits are loaded unconditionally: a load under the condition makes a gather.
        a, b = fp[i], fn[i]
        qv[i] = v * (a if v > 0 else b)


@_jit
def _scale_row(r, c0, c1, qx, qy, fu, fc, fd, north, south):
    """Scale row ``r``'s faces by their upwind cells' limits (``fu``, ``fc``, ``fd``: rows
    ``r - 1``, ``r``, ``r + 1``, padded with 1 either side): its west faces, its south faces
    (``south``) and its north faces (``north``: only on the grid's north edge, or on a band's
    border, see :mod:`twin.sim.flood_bands`). A face is scaled once: the north faces of a row
    are the south faces of the row above."""
    if north:
        _scale(qy[r], fu, fc, 1, 1, c0, c1)
    _scale(qx[r], fc, fc, 0, 1, c0, c1 + 1)
    if south:
        _scale(qy[r + 1], fc, fd, 1, 1, c0, c1)


@_jit
def _cont_row(
    r, c0, c1, h, z, qx, qy, drain, infil, rainw, maxd, tmax, maxv, maxhr, t_thr, acc, p, t_new,
    thr, thr32, sinks, track,
):  # fmt: skip
    """Apply continuity to row ``r`` from its scaled faces, rain (the step's depth
    ``p[P_RAIN]`` times the cell's factor in ``rainw``, float64, one row when uniform) and
    sinks (``sinks``: whether any drainage or infiltration is set), and track the maxima (only
    when ``track``: else just the per-column maximum depth in ``acc[0]``, for the next step).
    Returns the outflow (m²/s summed over the edge faces of the row).
    """
    ny, nx = h.shape
    qxr, qn, qs = qx[r], qy[r], qy[r + 1]
    outflow = float(qxr[nx]) - float(qxr[0])
    if r == 0:
        for c in range(c0, c1):
            outflow -= qn[c]
    if r == ny - 1:
        for c in range(c0, c1):
            outflow += qs[c]

    zero, k, act = p[P_ZERO], p[P_K], p[P_ACTIVE]
    rain, vel_h, dt = p[P_RAIN], p[P_VELH], p[P_DT]
    hr_mid, hr_deep, df_mid, df_deep = p[P_HRMID], p[P_HRDEEP], p[P_DFMID], p[P_DFDEEP]
    # Every loop below runs over views that start at column c0, from 0: with a loop index
    # that starts at a variable, numba's negative-index wraparound keeps LLVM from
    # vectorising (these loops ran scalar once the kernels took column bounds).
    n = c1 - c0
    hr, zr = h[r, c0:c1], z[r, c0:c1]
    qw, qnv, qsv = qxr[c0 : c1 + 1], qn[c0:c1], qs[c0:c1]
    # Continuity in float64 whatever the state's dtype, rounded once into the state: in
    # float32 the three roundings of a uniform rain on similar depths are alike from cell to
    # cell and bias the mass balance instead of averaging out.
    # A factor of 1 (uniform rain) leaves the rain bit for bit what it was without factors.
    k64, rain64 = np.float64(k), np.float64(rain)
    rwr = rainw[r if rainw.shape[0] > 1 else 0, c0:c1]
    for i in range(n):
        dq = (np.float64(qw[i]) - np.float64(qw[i + 1])) + (np.float64(qnv[i]) - np.float64(qsv[i]))
        hr[i] = np.float64(hr[i]) + dq * k64 + (rain64 * rwr[i] if zr[i] < act else 0.0)
    if sinks:
        # Sinks take at most what the cell holds; a cell at round-off below zero gives none.
        drr = drain[r if drain.shape[0] > 1 else 0, c0:c1]
        inr = infil[r if infil.shape[0] > 1 else 0, c0:c1]
        drained, infiltrated = acc[1, c0:c1], acc[2, c0:c1]
        for i in range(n):
            hn = hr[i]
            hd = hn - min(drr[i] * dt, max(hn, zero))
            hi = hd - min(inr[i] * dt, max(hd, zero))
            hr[i] = hi
            # Account what the subtractions really removed (exact in float64), not what the
            # sink asked for: float32 rounds each one, and a uniform drainage rounds every cell
            # the same way, an error that would pile up instead of averaging out.
            drained[i] += np.float64(hn) - np.float64(hd)
            infiltrated[i] += np.float64(hd) - np.float64(hi)
    hmax = acc[0, c0:c1]
    for i in range(n):
        hmax[i] = max(hmax[i], hr[i])
    if not track:
        return outflow
    # The maxima in branch-free loops (selects, and a store to every cell), which LLVM
    # vectorises: as one loop with branches this ran scalar and cost a sixth of a wet step.
    mdr, tmr, mvr, mhr = maxd[r, c0:c1], tmax[r, c0:c1], maxv[r, c0:c1], maxhr[r, c0:c1]
    ttr = t_thr[r, c0:c1]
    t32, half32 = np.float32(t_new), np.float32(0.5)
    for i in range(n):
        hn = hr[i]
        # The max depth is kept in float32: it (and its time) moves when the depth rounded to
        # float32 exceeds it, not when a float64 depth just above a float32 max sits still.
        h32, m, tt = np.float32(hn), mdr[i], ttr[i]
        up = h32 > m
        mdr[i] = h32 if up else m
        tmr[i] = t32 if up else tmr[i]
        # The first arrival at the threshold without reading t_thr every step: the depth has
        # never reached it while the (float32) max is below float32(thr); at equality, ask.
        ttr[i] = t32 if ((hn >= thr) & (m <= thr32) & (tt > t_new)) else tt
    # Velocity and hazard in float32, the precision they are kept in: its square root and
    # division cost a fraction of float64's.
    for i in range(n):
        hn = hr[i]
        h32 = np.float32(hn)
        sx = np.float32(qw[i] + qw[i + 1])
        sy = np.float32(qnv[i] + qsv[i])
        qm = half32 * math.sqrt(sx * sx + sy * sy)  # |q| at the cell (m²/s)
        v = qm / h32
        wet = hn > vel_h
        mv = mvr[i]
        mvr[i] = v if (wet & (v > mv)) else mv
        df = df_deep if hn > hr_deep else (df_mid if hn > hr_mid else zero)
        hz = qm + half32 * h32 + np.float32(df)  # d (v + 0.5) + DF
        mh = mhr[i]
        mhr[i] = hz if (wet & (hz > mh)) else mh
    return outflow
