"""What decides the accuracy near point inflows on steep urban ground, each on a small case.

Each test is a finding of issue 25: the answer the case has (normal depth, critical depth, the
gradually varied profile behind a free overfall, rest), the model with the option, and the
model without it, so the effect of the option is on the record.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from twin.sim.flood import Boundaries, Inflow, cells_within, simulate
from twin.sim.rain import Series

G = 9.81


def channel(slope: float, *, rows: int = 3, cols: int = 120, dx: float = 1.0) -> np.ndarray:
    """A straight channel falling eastward at ``slope``, ``rows`` cells wide."""
    return np.tile(10.0 - slope * dx * np.arange(cols), (rows, 1))


def fed_at_the_west(rows: int, q: float) -> Inflow:
    """``q`` m²/s over the channel's width, into its westmost cells."""
    return Inflow(np.arange(rows), np.zeros(rows, dtype=np.intp), Series.constant(q * rows))


def test_the_step_counts_the_depth_the_inflow_adds() -> None:
    """On dry ground the step was 10 s (``max_dt_s``), so a point inflow put 10 s of water into
    its cells at once: a column metres high whose collapse overshot the depth downstream by 2x.
    Now the stability bound holds for the depth after the inflow: the peak along a mild channel
    stays at its steady normal depth (Manning), apart from the small bore of the front."""
    n, q, slope = 0.03, 0.3, 0.005
    normal = (q * n / np.sqrt(slope)) ** 0.6  # 0.290 m, Froude 0.61
    kw = {"dx": 1.0, "duration_s": 300.0, "manning": n, "boundaries": Boundaries(east="open")}
    bed = channel(slope)
    new = simulate(bed, inflows=[fed_at_the_west(3, q)], **kw)  # type: ignore[arg-type]
    old = simulate(bed, inflows=[fed_at_the_west(3, q)], inflow_cfl=False, **kw)  # type: ignore[arg-type]
    reach = slice(5, 60)
    assert np.abs(new.depth[1, reach] - normal).max() < 0.01 * normal  # steady: Manning
    assert new.max_depth[1, reach].max() < 1.05 * normal
    assert old.max_depth[1, reach].max() > 1.8 * normal  # the collapse of the first column
    assert abs(new.mass_error_rel) < 1e-12


def test_froude_limit_stops_roll_waves_on_steep_ground_at_the_price_of_critical_depth() -> None:
    """Steeper than the critical slope the local-inertial scheme has no advection to carry
    supercritical flow: it breaks into roll waves that run dry and pile up several times the
    normal depth (the max depth is what a flood map shows). ``froude_limit=1`` (as landlab's
    ``steep_slopes`` and LISFLOOD-FP's Froude limit) holds the flow at critical: calm, and
    deep by the ratio of critical to normal depth (here 0.209 m for 0.126 m)."""
    n, q, slope = 0.03, 0.3, 0.08
    normal = (q * n / np.sqrt(slope)) ** 0.6
    critical = (q * q / G) ** (1 / 3)
    assert q / (normal * np.sqrt(G * normal)) > 2  # Froude 2.1 at normal depth
    kw = {"dx": 1.0, "duration_s": 300.0, "manning": n, "boundaries": Boundaries(east="open")}
    bed = channel(slope)
    free = simulate(bed, inflows=[fed_at_the_west(3, q)], **kw)  # type: ignore[arg-type]
    capped = simulate(bed, inflows=[fed_at_the_west(3, q)], froude_limit=1.0, **kw)  # type: ignore[arg-type]
    reach = slice(20, 100)
    assert free.max_depth[1, reach].max() > 3 * normal
    assert np.abs(capped.depth[1, reach] - critical).max() < 0.02 * critical
    assert capped.max_depth[1, reach].max() < 1.05 * critical
    assert abs(capped.mass_error_rel) < 1e-12


def backwater_behind_a_brink(q: float, n: float, x_brink: float, xs: np.ndarray) -> np.ndarray:
    """Depth (m) of the gradually varied flow on a horizontal bed upstream of a free overfall:
    ``dh/dx = -S_f / (1 - Fr²)`` from critical depth at the brink (Chow 1959, ch. 9)."""
    hc = (q * q / G) ** (1 / 3)

    def slope(_x: float, h: np.ndarray) -> np.ndarray:
        return -(n * n * q * q / h ** (10 / 3)) / (1 - q * q / (G * h**3))

    sol = solve_ivp(slope, [x_brink, 0.0], [hc * 1.0001], dense_output=True, rtol=1e-8)
    return np.asarray(sol.sol(xs)[0])


def test_drop_weir_gives_the_backwater_behind_a_wall_top() -> None:
    """A flat roof (raised building, 3 m) fed from its far end drains over its wall. The face
    depth at the wall is the roof's film, but the surface slope across it is the whole drop over
    dx, so without a cap the brink cell empties every step and the film upstream is drawn down
    (1 cm where the profile has 4 cm). With ``drop_weir`` the face passes a broad-crested weir's
    discharge and the roof holds its gradually varied profile."""
    q, n, dx = 0.02, 0.015, 1.0
    rows, cols, brink = 3, 40, 20
    bed = np.zeros((rows, cols))
    bed[:, :brink] = 3.0
    kw = {"dx": dx, "duration_s": 900.0, "manning": n, "boundaries": Boundaries(east="open")}
    weir = simulate(bed, inflows=[fed_at_the_west(rows, q)], drop_weir=True, **kw)  # type: ignore[arg-type]
    plain = simulate(bed, inflows=[fed_at_the_west(rows, q)], **kw)  # type: ignore[arg-type]
    xs = (np.arange(10, brink) + 0.5) * dx
    exact = backwater_behind_a_brink(q, n, brink * dx, xs)
    err_weir = weir.depth[1, 10:brink] - exact
    err_plain = plain.depth[1, 10:brink] - exact
    # The model's control is the brink cell's centre, half a cell upstream of the brink: that
    # shifts the profile by about a cell, 2-3 % of the depth here, once 5 cells away from it.
    far = slice(0, 5)
    assert np.abs(err_weir[far] / exact[far]).max() < 0.03
    assert np.abs(err_plain[far] / exact[far]).max() > 0.12
    assert np.sqrt(np.mean(err_weir**2)) < 0.5 * np.sqrt(np.mean(err_plain**2))
    assert abs(weir.mass_error_rel) < 1e-12


def test_point_inflows_spread_onto_open_cells_only() -> None:
    """A culvert 2 m from a 10 m raised building with a 3 m radius: by centres alone a fifth of
    its cells were on the roof, which then fell 10 m in one step beside the street. With the
    open-cell mask none lands on the roof and all of it on the street."""
    transform = (1.0, 0.0, 0.0, 0.0, -1.0, 30.0)
    shape = (30, 30)
    ground = np.zeros(shape)
    building = np.zeros(shape, dtype=bool)
    building[10:20, 15:25] = True
    bed = ground + 10.0 * building
    x, y = 13.5, 15.5
    rows, cols = cells_within(shape, transform, x, y, 3.0)
    assert building[rows, cols].sum() > 0.15 * len(rows)
    orow, ocol = cells_within(shape, transform, x, y, 3.0, open_cells=~building)
    assert not building[orow, ocol].any() and len(orow) > 0
    # Inside the building altogether: the nearest open cell.
    r1, c1 = cells_within(shape, transform, 21.5, 15.5, 2.0, open_cells=~building)
    assert [(int(r), int(c)) for r, c in zip(r1, c1, strict=True)] == [(14, 25)]
    kw = {"dx": 1.0, "duration_s": 120.0, "manning": 0.02}
    on_roof = simulate(bed, inflows=[Inflow(rows, cols, Series.constant(0.5))], **kw)  # type: ignore[arg-type]
    on_street = simulate(bed, inflows=[Inflow(orow, ocol, Series.constant(0.5))], **kw)  # type: ignore[arg-type]
    assert np.nanmax(on_roof.max_depth[building]) > 0.001
    assert np.nanmax(on_street.max_depth[building]) == 0


def test_alpha_above_the_2d_bound_grows_the_checkerboard_even_with_friction() -> None:
    """landlab runs alpha 0.7 with theta 0.8; the 2D bound is 0.98 sqrt(theta / 2) = 0.62. A lake
    at rest 1 m deep with a 1 µm checkerboard: at the bound it stays at rest to 1e-9; with
    ``alpha_cap=False`` it grows to decimetres in 300 s, with n = 0.03 as well as without
    friction. The cap stays on by default."""
    y, x = np.mgrid[0:40, 0:40]
    h0 = 1.0 + 1e-6 * (-1.0) ** (x + y)
    kw = {"dx": 1.0, "duration_s": 300.0, "initial_depth": h0, "alpha": 0.7, "manning": 0.03}
    capped = simulate(np.zeros((40, 40)), **kw)  # type: ignore[arg-type]
    free = simulate(np.zeros((40, 40)), alpha_cap=False, **kw)  # type: ignore[arg-type]
    assert capped.extra["alpha_effective"] == pytest.approx(0.98 * np.sqrt(0.4))
    assert free.extra["alpha_effective"] == 0.7
    assert np.abs(capped.depth - 1).max() < 1e-8
    assert np.abs(free.depth - 1).max() > 1e-2
