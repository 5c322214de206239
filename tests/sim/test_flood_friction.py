"""The friction term and the flow's direction to the grid (issue 25: EA Test 4's gauge 6).

Manning's friction opposes the velocity vector, so its strength cannot depend on how the flow
is oriented to the cells. ``friction="face"`` (Bates et al. 2010, landlab) gives each face the
friction of its own discharge only; ``"vector"`` (the default) that of the whole discharge
vector. Each test takes its expectation from the physics (Manning's normal flow, the symmetry
of a point source on a flat plane) and shows both options against it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from twin.sim.flood import Friction, Inflow, simulate
from twin.sim.rain import Series

N, S, H0, DX = 0.03, 0.01, 0.1, 1.0


def sheet_discharge(bed: np.ndarray, friction: Friction) -> tuple[float, float]:
    """Mean (qx, qy) (m²/s) in the middle of a uniform sheet of ``H0`` on ``bed`` after 30 s:
    long enough for the flow to settle to normal flow (its relaxation time is ``u / (g S)``,
    about 7 s), short enough that nothing from the edges has reached the middle."""
    res = simulate(bed, dx=DX, duration_s=30.0, initial_depth=H0, manning=N, friction=friction)
    assert res.state is not None
    m = slice(65, 75)  # 65 m from the edges: their waves, at sqrt(g h) + u, make 51 m
    assert np.allclose(res.depth[m, m], H0, rtol=1e-9)  # uniform flow: nothing piles up
    return float(res.state.qx[m, m].mean()), float(res.state.qy[m, m].mean())


@pytest.mark.parametrize("friction", ["vector", "face"])
def test_normal_flow_down_a_plane_along_an_axis(friction: Friction) -> None:
    _, c = np.mgrid[0:140, 0:140] * DX
    qx, qy = sheet_discharge(10.0 - S * c, friction)
    manning = H0 ** (5 / 3) * math.sqrt(S) / N  # |q| of uniform flow, Manning's formula
    assert qx == pytest.approx(manning, rel=2e-3)
    assert abs(qy) < 1e-12


def test_normal_flow_down_a_plane_along_the_diagonal() -> None:
    """The same plane turned 45°: the same |q| (Manning), now split evenly between qx and qy.

    Per-face friction balances each component on its own, ``q_x |q_x| = h^(10/3) S_x / n²``
    with ``S_x = S / sqrt(2)``, so |q| comes out ``2^(1/4)`` (19 %) too large.
    """
    r, c = np.mgrid[0:140, 0:140] * DX
    bed = 10.0 - S / math.sqrt(2) * (r + c)  # falls toward the south-east
    manning = H0 ** (5 / 3) * math.sqrt(S) / N
    qx, qy = sheet_discharge(bed, "vector")
    assert qx == pytest.approx(qy, rel=1e-9)
    assert math.hypot(qx, qy) == pytest.approx(manning, rel=2e-3)
    fx, fy = sheet_discharge(bed, "face")
    assert math.hypot(fx, fy) == pytest.approx(2**0.25 * manning, rel=5e-3)


def arrival_gap(friction: Friction) -> tuple[float, float]:
    """A source on a flat, rough, closed plane: the arrival of 2 cm at r = 14 sqrt(2) cells on
    the diagonal minus that on the axis (interpolated between cells), and the time the front
    takes to cross one cell on the axis there (s); averaged over the four quadrants."""
    n, dx = 61, 5.0
    c = n // 2
    i = np.arange(n) - c
    rows, cols = np.nonzero(np.add.outer(i**2, i**2) <= 4)  # a disc of 13 cells
    src = Inflow(rows.astype(np.intp), cols.astype(np.intp), Series.constant(2.0), "source")
    res = simulate(
        np.zeros((n, n)), dx=dx, duration_s=1300.0, inflows=[src], manning=0.05,
        threshold_m=0.02, friction=friction,
    )  # fmt: skip
    assert abs(res.mass_error_rel) < 1e-12
    t = res.time_to_threshold_s
    k = 14
    rd = k * math.sqrt(2)  # 19.8 cells
    gaps, crossings = [], []
    for sr, sc in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
        diag = float(t[c + sr * k, c + sc * k])
        for axis in (t[c, c::sc], t[c::sr, c]):
            ax = np.asarray(axis[: c + 1], dtype=np.float64)
            gaps.append(diag - float(np.interp(rd, np.arange(c + 1), ax)))
            crossings.append(float(ax[math.ceil(rd)] - ax[math.floor(rd)]))
    assert np.all(np.isfinite(gaps))
    return float(np.mean(gaps)), float(np.mean(crossings))


def test_a_point_source_front_is_round_with_vector_friction() -> None:
    """By symmetry the front reaches every point at distance r together; a grid can place it to
    about one cell, so the diagonal and the axis must agree within one cell's crossing time.
    Per-face friction lets the diagonal run ahead by more than that."""
    gap, crossing = arrival_gap("vector")
    assert abs(gap) < crossing
    gap_face, crossing_face = arrival_gap("face")
    assert gap_face < -crossing_face
