"""Static user-equilibrium traffic assignment with BPR link costs.

Wardrop's first principle: at equilibrium no driver can shorten their trip by changing route, so
every used path between an origin and a destination costs the same and no unused path costs less.
The equilibrium minimises Beckmann's objective ``sum_a integral_0^x_a c_a(s) ds`` with the BPR
cost ``c_a(x) = fft_a (1 + alpha_a (x / cap_a)^beta_a) + k_a``, where ``k_a`` is the constant
part of the generalised cost (distance and toll, weighted by the network's factors).

The solver is Dial's Algorithm B (Dial 2006; Nie 2010's implementation notes), bush-based: it
reaches relative gaps of 1e-6 and below in a few dozen iterations where Frank-Wolfe variants need
thousands. See :mod:`twin.sim.bush` for the compiled kernels.

Convergence is measured by the relative gap ``(TSTT - SPTT) / TSTT``: total generalised cost of
the current flows against what it would be if every trip took a current shortest path. While a
lower bound on it (from paths that follow the bushes, at half the cost of the shortest paths)
shows the gap is above the target, an iteration records the bound instead; the stop is only
ever decided, and the final gap reported, on the exact gap of the final flows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from twin.sim import bush
from twin.sim.threads import check_threads, numba_threads

FloatArray = npt.NDArray[np.float64]
#: Sweeps over the bushes stop once one no longer shrinks the worst cost difference by this.
STALL = 0.5
IntArray = npt.NDArray[np.int64]

# Delay index bands (congested / free-flow time) as used by Chinese city traffic reports.
DELAY_BANDS: tuple[tuple[float, str], ...] = (
    (1.5, "free-flowing"),
    (2.0, "slow"),
    (4.0, "congested"),
    (float("inf"), "severely congested"),
)


def delay_band(index: float) -> str:
    """The label of a delay (travel-time) index: 1.0-1.5 free-flowing ... above 4.0 severe."""
    for upper, label in DELAY_BANDS:
        if index < upper:
            return label
    return DELAY_BANDS[-1][1]


@dataclass(frozen=True)
class Network:
    """A directed road network with zones.

    Nodes are ``0 .. n_nodes - 1``; zone ``z`` is node ``z`` (zones come first, as in TNTP).
    Nodes below ``first_thru`` other than a trip's origin carry no through traffic.

    Attributes
    ----------
    tail, head : int arrays
        Link ends (node indices).
    capacity : float array
        Capacity (veh/h), > 0.
    fft : float array
        Free-flow time (network time unit, minutes for TNTP files).
    alpha, beta : float arrays
        BPR parameters (0.15 and 4 classically).
    length, toll : float arrays
        Length (any unit) and toll, weighted into the generalised cost by ``distance_factor``
        and ``toll_factor``.
    """

    n_nodes: int
    n_zones: int
    first_thru: int
    tail: IntArray
    head: IntArray
    capacity: FloatArray
    fft: FloatArray
    alpha: FloatArray
    beta: FloatArray
    length: FloatArray
    toll: FloatArray
    distance_factor: float = 0.0
    toll_factor: float = 0.0

    @property
    def n_links(self) -> int:
        return int(self.tail.shape[0])

    @property
    def constant_cost(self) -> FloatArray:
        """Flow-independent part of each link's generalised cost (time units)."""
        return self.distance_factor * self.length + self.toll_factor * self.toll

    def with_capacity(self, capacity: FloatArray) -> Network:
        """The same network with other capacities (a flood cutting lanes, works on a road)."""
        return replace(self, capacity=np.asarray(capacity, dtype=np.float64))

    def travel_time(self, flow: FloatArray) -> FloatArray:
        """BPR travel time per link at ``flow`` (veh/h), in the network's time unit."""
        ratio = flow / _safe_capacity(self.capacity)
        return self.fft * (1.0 + self.alpha * ratio**self.beta)


def _safe_capacity(capacity: FloatArray) -> FloatArray:
    # A closed link may carry capacity 0; it carries no flow either, so treat it as unbounded.
    return np.where(capacity > 0, capacity, np.inf)


@dataclass(frozen=True)
class IterationRecord:
    """One iteration: relative gap, Beckmann objective, TSTT (veh x time), seconds so far.

    ``exact`` tells whether ``gap`` is the relative gap itself (shortest paths searched over the
    whole network) or, while that cannot yet be at the target, a lower bound on it (paths that
    follow each origin's bush order; loose in the first iterations, near the target usually
    within a factor of two).
    """

    iteration: int
    gap: float
    objective: float
    tstt: float
    seconds: float
    exact: bool = True


@dataclass(frozen=True)
class Unreachable:
    """Demand (veh/h) between two zones with no open path: reported, never silently dropped."""

    origin: int
    destination: int
    demand: float


@dataclass
class Assignment:
    """An equilibrium (or the best point reached within the iteration cap).

    ``flow`` (veh/h), ``time`` (BPR time, network unit) and ``cost`` (generalised) per link;
    closed links carry zero flow. ``tstt`` is total travel time ``sum flow x time``; ``sptt``
    the shortest-path total generalised cost; ``gap`` the relative gap at the end.
    """

    flow: FloatArray
    time: FloatArray
    cost: FloatArray
    tstt: float
    sptt: float
    objective: float
    gap: float
    iterations: int
    converged: bool
    seconds: float
    history: list[IterationRecord] = field(default_factory=list)
    unreachable: list[Unreachable] = field(default_factory=list)
    assigned_demand: float = 0.0

    @property
    def unreachable_demand(self) -> float:
        return float(sum(u.demand for u in self.unreachable))


def beckmann(network: Network, flow: FloatArray) -> float:
    """Beckmann's objective: the sum over links of the integral of cost from 0 to ``flow``."""
    usable = network.capacity > 0  # a closed link may have capacity 0 and carries no flow
    cap = np.where(usable, network.capacity, 1.0)
    b1 = network.beta + 1.0
    congestion = np.where(usable, network.alpha * cap / b1 * (flow / cap) ** b1, 0.0)
    integral = network.fft * (flow + congestion)
    return float(np.sum(integral + network.constant_cost * flow))


def _dot(a: FloatArray, b: FloatArray) -> float:
    # Not np.dot: BLAS may run it on several threads, whose spinning then costs a second core
    # for the rest of the run; the assignment is meant to use one.
    return float(np.sum(a * b))


def _star(nodes: IntArray, links: IntArray, n_nodes: int) -> tuple[IntArray, IntArray]:
    """CSR adjacency: links grouped by ``nodes[link]`` (only the given links)."""
    order = links[np.argsort(nodes[links], kind="stable")]
    counts = np.bincount(nodes[order], minlength=n_nodes)
    start = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return start, order.astype(np.int64)


def _validate(network: Network, demand: FloatArray, closed: npt.NDArray[np.bool_]) -> None:
    n = network.n_zones
    if demand.shape != (n, n):
        raise ValueError(f"demand must be {n} x {n} (zones x zones), got {demand.shape}")
    if not np.all(np.isfinite(demand)) or np.any(demand < 0):
        raise ValueError("demand must be finite and non-negative")
    if closed.shape != (network.n_links,):
        raise ValueError(f"closed must have one entry per link ({network.n_links})")
    for name in ("capacity", "fft", "alpha", "beta", "length", "toll"):
        arr = getattr(network, name)
        if arr.shape != (network.n_links,) or not np.all(np.isfinite(arr)):
            raise ValueError(f"network.{name} must be finite, one value per link")
    open_ = ~closed
    if np.any(network.capacity[open_] <= 0):
        raise ValueError("every open link needs capacity > 0")
    if np.any(network.fft < 0) or np.any(network.alpha < 0) or np.any(network.beta < 0):
        raise ValueError("free-flow time, alpha and beta must be >= 0")
    if np.any(network.constant_cost < 0):
        raise ValueError("generalised cost constants (distance, toll) must be >= 0")
    for name in ("tail", "head"):
        arr = getattr(network, name)
        if arr.size and (arr.min() < 0 or arr.max() >= network.n_nodes):
            raise ValueError(f"network.{name} refers to a node outside 0..{network.n_nodes - 1}")


def assign(
    network: Network,
    demand: FloatArray,
    *,
    gap: float = 1e-6,
    max_iter: int = 500,
    closed: npt.NDArray[np.bool_] | None = None,
    inner_passes: int = 1,
    full_sweeps: bool = False,
    max_sweeps: int = 25,
    sweep_tol: float = 0.002,
    threads: int = 1,
    on_iteration: Callable[[IterationRecord], None] | None = None,
) -> Assignment:
    """Solve the static user equilibrium with Algorithm B.

    Parameters
    ----------
    network : Network
        Links, BPR parameters, zones.
    demand : (n_zones, n_zones) array
        Trips per hour from row zone to column zone; the diagonal (intrazonal) is ignored.
    gap : float
        Stop once the relative gap ``(TSTT - SPTT) / TSTT`` is at or below this.
    max_iter : int
        Iteration cap; ``converged`` tells whether the gap was reached first.
    closed : bool array, optional
        Links removed from the network (a flooded underpass, a closed road). OD pairs left
        without a path are listed in ``unreachable`` with their demand and not assigned.
    inner_passes : int
        Flow-shifting passes per bush per visit: more passes do more work per bush while
        its labels are fresh, fewer spread effort over the bushes.
    full_sweeps : bool
        After growing the bushes, every iteration visits all of them again (at most
        ``max_sweeps`` times) until no used path costs more than its node's shortest by
        ``sweep_tol x gap x`` the mean trip cost. By default (False) it also stops once a
        sweep no longer halves the worst difference: fastest to a gap. True settles flows on
        flat, uncongested links, which the gap barely sees: slower, but link flows then match
        a reference solution closely at a moderate gap (Anaheim within 1 % at 1e-6).
    max_sweeps, sweep_tol : int, float
        The cap on sweeps per iteration and the equilibration tolerance above.
    threads : int
        1 (default): everything on the calling thread. More (up to numba's
        ``NUMBA_NUM_THREADS``): the steps that move no flow (the all-or-nothing start, growing
        the bushes, the gap's path totals) run on that many groups of origins side by side;
        the flow shifts stay serial (see :mod:`twin.sim.bush`). A run is repeatable bit for
        bit for a given number of threads. Bushes then grow on the costs at the start of a
        sweep rather than after the origins before them, so the iterates differ from one
        thread's, and every number reaches the same equilibrium to the gap. Worth it with many
        origins on a large network (a city's morning peak).
    on_iteration : callable, optional
        Called with each iteration's record (for progress bars and run logs).
    """
    start = time.perf_counter()
    demand = np.array(demand, dtype=np.float64)
    closed = np.zeros(network.n_links, dtype=bool) if closed is None else np.asarray(closed, bool)
    _validate(network, demand, closed)
    with numba_threads(check_threads(threads)):
        return _assign(
            network, demand, closed, gap=gap, max_iter=max_iter, inner_passes=inner_passes,
            full_sweeps=full_sweeps, max_sweeps=max_sweeps, sweep_tol=sweep_tol,
            threads=threads, on_iteration=on_iteration, start=start,
        )  # fmt: skip


def _assign(
    network: Network,
    demand: FloatArray,
    closed: npt.NDArray[np.bool_],
    *,
    gap: float,
    max_iter: int,
    inner_passes: int,
    full_sweeps: bool,
    max_sweeps: int,
    sweep_tol: float,
    threads: int,
    on_iteration: Callable[[IterationRecord], None] | None,
    start: float,
) -> Assignment:
    """:func:`assign` on validated inputs (``demand`` a private copy)."""
    np.fill_diagonal(demand, 0.0)
    nn, nl = network.n_nodes, network.n_links
    tail = network.tail.astype(np.int64)
    head = network.head.astype(np.int64)
    open_link = ~closed
    open_ids = np.flatnonzero(open_link).astype(np.int64)
    out_start, out_link = _star(tail, open_ids, nn)
    in_start, in_link = _star(head, open_ids, nn)
    fft = network.fft.astype(np.float64)
    alpha = network.alpha.astype(np.float64)
    beta = network.beta.astype(np.float64)
    # A closed link keeps a harmless capacity so cost arrays stay finite; it is never used.
    cap = np.where(open_link, network.capacity, 1.0).astype(np.float64)
    const = network.constant_cost.astype(np.float64)
    zone_node = np.arange(network.n_zones, dtype=np.int64)
    first_thru = int(network.first_thru)

    x = np.zeros(nl)
    cost = np.empty(nl)
    bush.all_costs(x, fft, alpha, beta, cap, const, cost)
    heap_f = np.empty(nl + nn + 1)
    heap_i = np.empty(nl + nn + 1, dtype=np.int64)
    dist = np.empty(nn)
    pred = np.empty(nn, dtype=np.int64)
    settle = np.empty(nn, dtype=np.int64)

    origins = np.flatnonzero(demand.sum(axis=1) > 0).astype(np.int64)
    # Each origin's bush: its links, a topological order of its nodes (the first ``counts[k]``
    # entries) and its slots (links and the origin's flow on them, see ``bush``).
    in_bush = np.zeros((origins.shape[0], nl), dtype=np.bool_)
    orders = np.empty((origins.shape[0], nn), dtype=np.int32)
    counts = np.zeros(origins.shape[0], dtype=np.int64)
    bstart = np.empty((origins.shape[0], nn + 1), dtype=np.int32)
    blink = np.empty((origins.shape[0], nl), dtype=np.int32)
    bflow = np.empty((origins.shape[0], nl))
    unreachable: list[Unreachable] = []
    # The origins' groups when they run in parallel: dealt round-robin, since neighbouring
    # zones have bushes of much the same size.
    members = np.concatenate(
        [np.arange(g, origins.shape[0], threads, dtype=np.int64) for g in range(threads)]
    )
    gstart = np.zeros(threads + 1, dtype=np.int64)
    np.cumsum([len(range(g, origins.shape[0], threads)) for g in range(threads)], out=gstart[1:])
    if threads == 1:
        for k, o in enumerate(origins):
            settled = bush.dijkstra(
                zone_node[o], cost, out_start, out_link, head, first_thru, dist, pred, settle,
                heap_f, heap_i,
            )  # fmt: skip
            lost = (demand[o] > 0) & ~np.isfinite(dist[zone_node])
            for d in np.flatnonzero(lost):
                unreachable.append(Unreachable(int(o), int(d), float(demand[o, d])))
                demand[o, d] = 0.0
            bush.init_bush(
                zone_node[o], demand[o], zone_node, pred, settle, settled, in_bush[k], tail, x,
                orders[k], bstart[k], blink[k], bflow[k],
            )  # fmt: skip
            counts[k] = settled
    else:
        zone_dist = np.empty((origins.shape[0], network.n_zones))
        xs = np.empty((threads, nl))
        bush.init_groups(
            members, gstart, origins, demand, zone_node, cost, out_start, out_link, head, tail,
            first_thru, in_bush, orders, bstart, blink, bflow, counts, zone_dist, xs,
            np.empty((threads, nn)), np.empty((threads, nn), dtype=np.int64),
            np.empty((threads, nn), dtype=np.int64), np.empty((threads, nl + nn + 1)),
            np.empty((threads, nl + nn + 1), dtype=np.int64),
        )  # fmt: skip
        for g in range(threads):  # in group order: the same sum whatever the timing
            x += xs[g]
        # Unreachable demand was never loaded (only settled nodes pass flow on); it is listed
        # and dropped as in the serial loop, origin by origin.
        for k, o in enumerate(origins):
            for d in np.flatnonzero((demand[o] > 0) & ~np.isfinite(zone_dist[k])):
                unreachable.append(Unreachable(int(o), int(d), float(demand[o, d])))
                demand[o, d] = 0.0
    bush.all_costs(x, fft, alpha, beta, cap, const, cost)

    # Scratch, one set per group (thread).
    work_i = np.empty((threads, 8, 2 * nn + 2), dtype=np.int64)
    work_f = np.empty((threads, 3, nn))
    lay_i = np.empty((threads, 2, nl), dtype=np.int64)
    lay_f = np.empty((threads, nl))
    sp_i = np.empty((threads, 2 * nl + 1), dtype=np.int64)
    sp_f = np.empty((threads, 2 * nl + 1))
    totals = np.empty(threads)
    history: list[IterationRecord] = []

    def shortest(exact: bool) -> float:
        """SPTT (``exact``) or an upper bound on it (paths along the bushes' orders)."""
        if threads == 1:
            return bush.path_totals(
                members, origins, demand, zone_node, cost, in_start, in_link, out_start,
                out_link, tail, head, first_thru, orders, counts, exact, work_f[0, 0],
                work_f[0, 1], sp_f[0], sp_i[0],
            )  # fmt: skip
        bush.path_totals_groups(
            members, gstart, origins, demand, zone_node, cost, in_start, in_link, out_start,
            out_link, tail, head, first_thru, orders, counts, exact, work_f[:, 0], work_f[:, 1],
            sp_f, sp_i, totals,
        )  # fmt: skip
        return float(sum(totals.tolist()))  # in group order

    def sweep(grow: bool, tol: float) -> float:
        """One visit of every bush (growing them first when ``grow``); the largest path cost
        difference met."""
        if grow and threads > 1:
            # Growing moves no flow: every bush grows on the costs at the start of the sweep,
            # in parallel; the shifts below then see each other as in the serial sweep.
            bush.grow_groups(
                members, gstart, origins, zone_node, first_thru, in_bush, cost, tail, head,
                open_link, orders, counts, bstart, blink, bflow, work_i, work_f, lay_i, lay_f,
            )  # fmt: skip
            grow = False
        worst = 0.0
        for k in range(origins.shape[0]):
            w = bush.update_origin(
                zone_node[origins[k]], first_thru, in_bush[k], x, cost, fft, alpha, beta, cap,
                const, tail, head, open_link, inner_passes, grow, tol, orders[k], counts[k],
                bstart[k], blink[k], bflow[k], work_i[0], work_f[0], lay_i[0], lay_f[0],
            )  # fmt: skip
            worst = max(worst, w)
        return worst

    def record(iteration: int, sptt: float, exact: bool) -> float:
        total = _dot(x, cost)
        rel = (total - sptt) / total if total > 0 else 0.0
        entry = IterationRecord(
            iteration=iteration,
            gap=max(rel, 0.0),
            objective=beckmann(network, x),
            tstt=_dot(x, network.travel_time(x)),
            seconds=time.perf_counter() - start,
            exact=exact,
        )
        history.append(entry)
        if on_iteration is not None:
            on_iteration(entry)
        return entry.gap

    def check(iteration: int) -> tuple[float, float]:
        """Record the relative gap and return it with the SPTT, or a lower bound on the gap and
        an upper bound on the SPTT while they show the target is out of reach.

        The bound is one pass over each bush's order; the exact gap corrects its labels into
        shortest-path costs (see ``bush.path_totals``), for as much again. Since the bound never
        exceeds the gap, skipping the correction never skips a stop, and the last iteration
        allowed is always measured exactly: the gap returned by ``assign`` is always the exact
        one, from its final flows.
        """
        sptt = shortest(exact=False)
        total = _dot(x, cost)
        exact = iteration >= max_iter or total <= 0 or (total - sptt) / total <= gap
        if exact:
            sptt = shortest(exact=True)
        return record(iteration, sptt, exact), sptt

    current, sptt = check(0)
    iteration = 0
    while current > gap and iteration < max_iter:
        iteration += 1
        # Equilibrate the current bushes (cheap sweeps of flow shifts over every origin) until
        # no path cost differs from its node's shortest by more than ``sweep_tol`` of the target
        # gap's share of an average trip, or sweeps stall; only then grow bushes again. Stopping
        # earlier leaves flows on flat (uncongested) links far from equilibrium even at a small
        # relative gap.
        tol = sweep_tol * gap * sptt / max(float(demand.sum()), 1e-300)
        # Sweeps after the first (which grows the bushes) only shift flow: with the bushes laid
        # out compactly they cost a fifth of a growing sweep, and even far from the target they
        # save iterations (on the demo city, 12 instead of 31 to 1e-6).
        last = np.inf
        for n_sweep in range(max_sweeps):
            worst = sweep(n_sweep == 0, tol)
            # Stop once bushes are equilibrated, or once a sweep no longer halves the worst
            # difference (what is left comes from coupling between origins and from bush
            # shapes, which only the next growth step changes).
            if n_sweep > 0 and (worst <= tol or (not full_sweeps and worst > STALL * last)):
                break
            last = worst
        # Recompute costs from flows: shifts update them link by link, this removes any drift.
        bush.all_costs(x, fft, alpha, beta, cap, const, cost)
        current, sptt = check(iteration)

    x[closed] = 0.0
    t = network.travel_time(x)
    return Assignment(
        flow=x,
        time=t,
        cost=cost.copy(),
        tstt=_dot(x, t),
        sptt=sptt,
        objective=beckmann(network, x),
        gap=current,
        iterations=iteration,
        converged=current <= gap,
        seconds=time.perf_counter() - start,
        history=history,
        unreachable=unreachable,
        assigned_demand=float(demand.sum()),
    )


def zone_costs(network: Network, *, closed: npt.NDArray[np.bool_] | None = None) -> FloatArray:
    """Free-flow generalised cost of the shortest path between every pair of zones.

    Returns an ``(n_zones, n_zones)`` matrix in the network's time unit, ``inf`` where no
    open path exists (centroids are never passed through, as in :func:`assign`).
    """
    closed = np.zeros(network.n_links, dtype=bool) if closed is None else np.asarray(closed, bool)
    nn, nl = network.n_nodes, network.n_links
    open_ids = np.flatnonzero(~closed).astype(np.int64)
    out_start, out_link = _star(network.tail.astype(np.int64), open_ids, nn)
    cost = (network.fft + network.constant_cost).astype(np.float64)
    dist = np.empty(nn)
    pred = np.empty(nn, dtype=np.int64)
    order = np.empty(nn, dtype=np.int64)
    heap_f = np.empty(nl + nn + 1)
    heap_i = np.empty(nl + nn + 1, dtype=np.int64)
    out = np.empty((network.n_zones, network.n_zones))
    head = network.head.astype(np.int64)
    for z in range(network.n_zones):
        bush.dijkstra(
            z, cost, out_start, out_link, head, int(network.first_thru), dist, pred, order,
            heap_f, heap_i,
        )  # fmt: skip
        out[z] = dist[: network.n_zones]
    return out
