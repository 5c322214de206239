"""Compiled kernels of the bush-based equilibrium solver (Dial's Algorithm B).

Each origin keeps a *bush*: an acyclic set of links, rooted at the origin, that carries all of its
flow. An iteration, per origin, drops links that carry none of its flow, adds links that shorten
its paths without closing a cycle, and then moves flow inside the bush from each node's longest
used path to its shortest path with a Newton step until the two cost the same. Because the bush
is acyclic the two paths are found by one pass in topological order, and the flow moved is
always feasible.

Arrays are indexed by link ``a`` (``tail[a] -> head[a]``) and by node. The graph is given as a
forward star (``out_start``/``out_link``) and a backward star (``in_start``/``in_link``) holding
only open links, so a closed link never enters a bush or a shortest path.

Units follow the caller: ``fft`` and costs in the network's time unit (minutes for TNTP files),
flows in vehicles per hour.
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.inf
STATS = np.zeros(4, dtype=np.int64)


@numba.njit(cache=True, inline="always")
def link_cost(x: float, fft: float, alpha: float, beta: float, cap: float, const: float) -> float:
    """BPR time ``fft (1 + alpha (x/cap)^beta)`` plus the link's constant generalised cost."""
    return fft * (1.0 + alpha * (x / cap) ** beta) + const


@numba.njit(cache=True, inline="always")
def link_slope(x: float, fft: float, alpha: float, beta: float, cap: float) -> float:
    """Derivative of the BPR time with respect to flow (time per veh/h)."""
    if alpha == 0.0 or beta == 0.0:
        return 0.0
    if beta == 1.0:
        return fft * alpha / cap
    if x <= 0.0:
        return 0.0
    return fft * alpha * beta * (x / cap) ** (beta - 1.0) / cap


@numba.njit(cache=True)
def all_costs(x, fft, alpha, beta, cap, const, out):
    for a in range(x.shape[0]):
        out[a] = link_cost(x[a], fft[a], alpha[a], beta[a], cap[a], const[a])


@numba.njit(cache=True)
def dijkstra(
    origin, cost, out_start, out_link, head, first_thru, dist, pred, order, heap_d, heap_v
):
    """Shortest paths from ``origin``; returns how many nodes were settled (in ``order``).

    Nodes below ``first_thru`` other than the origin are zone centroids: they may be reached but
    are never passed through (TNTP's "first thru node" rule).
    """
    dist[:] = _INF
    pred[:] = -1
    dist[origin] = 0.0
    size = 0
    heap_d[0] = 0.0
    heap_v[0] = origin
    size = 1
    settled = 0
    done = np.zeros(dist.shape[0], dtype=np.bool_)
    while size > 0:
        d = heap_d[0]
        u = heap_v[0]
        size -= 1
        # Pop: move the last entry to the root and sift it down.
        if size > 0:
            ld = heap_d[size]
            lv = heap_v[size]
            i = 0
            while True:
                c = 2 * i + 1
                if c >= size:
                    break
                if c + 1 < size and heap_d[c + 1] < heap_d[c]:
                    c += 1
                if heap_d[c] >= ld:
                    break
                heap_d[i] = heap_d[c]
                heap_v[i] = heap_v[c]
                i = c
            heap_d[i] = ld
            heap_v[i] = lv
        if done[u] or d > dist[u]:
            continue
        done[u] = True
        order[settled] = u
        settled += 1
        if u < first_thru and u != origin:
            continue
        for k in range(out_start[u], out_start[u + 1]):
            a = out_link[k]
            v = head[a]
            nd = d + cost[a]
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = a
                # Push (lazy: stale entries are skipped when popped).
                i = size
                size += 1
                while i > 0:
                    p = (i - 1) // 2
                    if heap_d[p] <= nd:
                        break
                    heap_d[i] = heap_d[p]
                    heap_v[i] = heap_v[p]
                    i = p
                heap_d[i] = nd
                heap_v[i] = v
    return settled


@numba.njit(cache=True)
def init_bush(origin, demand_row, zone_node, pred, order, settled, tail, in_bush, bflow, x):
    """Load the origin's demand all-or-nothing on its shortest-path tree, which becomes its bush."""
    n = pred.shape[0]
    acc = np.zeros(n)
    for z in range(demand_row.shape[0]):
        acc[zone_node[z]] += demand_row[z]
    # Reverse settling order visits every node after all of its tree children.
    for k in range(settled - 1, 0, -1):
        j = order[k]
        a = pred[j]
        in_bush[a] = True
        f = acc[j]
        if f > 0.0:
            bflow[a] += f
            x[a] += f
            acc[tail[a]] += f


@numba.njit(cache=True)
def _topo(origin, in_bush, out_start, out_link, head, order, pos, indeg):
    """Topological order of the bush (Kahn); returns the number of nodes it reaches."""
    indeg[:] = 0
    for a in range(in_bush.shape[0]):
        if in_bush[a]:
            indeg[head[a]] += 1
    pos[:] = -1
    order[0] = origin
    pos[origin] = 0
    n = 1
    i = 0
    while i < n:
        u = order[i]
        i += 1
        for k in range(out_start[u], out_start[u + 1]):
            a = out_link[k]
            if in_bush[a]:
                v = head[a]
                indeg[v] -= 1
                if indeg[v] == 0:
                    pos[v] = n
                    order[n] = v
                    n += 1
    return n


@numba.njit(cache=True)
def _labels(n, order, in_start, in_link, tail, cost, in_bush, bflow, lo, lo_pred, hi, hi_pred, top):
    """Path costs to each bush node, in one pass in topological order.

    ``lo``: shortest path in the bush. ``hi``: longest path over links carrying the origin's
    flow (the paths flow can be moved off; ``lo`` where none arrives). ``top``: longest path
    over every bush link, a key that orders the bush topologically (for adding links).
    """
    origin = order[0]
    lo[origin] = 0.0
    hi[origin] = 0.0
    top[origin] = 0.0
    lo_pred[origin] = -1
    hi_pred[origin] = -1
    for k in range(1, n):
        j = order[k]
        best = _INF
        bp = -1
        worst = -_INF
        wp = -1
        highest = -_INF
        for m in range(in_start[j], in_start[j + 1]):
            a = in_link[m]
            if not in_bush[a]:
                continue
            i = tail[a]
            c = lo[i] + cost[a]
            if c < best:
                best = c
                bp = a
            c = top[i] + cost[a]
            if c > highest:
                highest = c
            if bflow[a] <= 0.0:
                continue
            c = hi[i] + cost[a]
            if c > worst:
                worst = c
                wp = a
        lo[j] = best
        lo_pred[j] = bp
        top[j] = highest
        if wp < 0:
            hi[j] = best
            hi_pred[j] = bp
        else:
            hi[j] = worst
            hi_pred[j] = wp


@numba.njit(cache=True)
def _shift(j, pos, lo_pred, hi_pred, tail, bflow, x, cost, fft, alpha, beta, cap, const, seg):
    """Move flow to ``j`` from its longest used path to its shortest, back to where they part.

    Returns the cost difference found before the move (a measure of how far from equilibrium).
    """
    # Walk both paths back in decreasing topological position: the first node they share is
    # where they diverge, and the two segments between it and j are disjoint.
    n_lo = 0
    n_hi = 0
    i_lo = j
    i_hi = j
    a = lo_pred[i_lo]
    seg[n_lo] = a
    n_lo += 1
    i_lo = tail[a]
    hi_start = seg.shape[0] // 2
    a = hi_pred[i_hi]
    seg[hi_start + n_hi] = a
    n_hi += 1
    i_hi = tail[a]
    while i_lo != i_hi:
        if pos[i_lo] > pos[i_hi]:
            a = lo_pred[i_lo]
            seg[n_lo] = a
            n_lo += 1
            i_lo = tail[a]
        else:
            a = hi_pred[i_hi]
            seg[hi_start + n_hi] = a
            n_hi += 1
            i_hi = tail[a]
    c_lo = 0.0
    d = 0.0
    for k in range(n_lo):
        a = seg[k]
        c_lo += cost[a]
        d += link_slope(x[a], fft[a], alpha[a], beta[a], cap[a])
    c_hi = 0.0
    room = _INF
    for k in range(n_hi):
        a = seg[hi_start + k]
        c_hi += cost[a]
        d += link_slope(x[a], fft[a], alpha[a], beta[a], cap[a])
        if bflow[a] < room:
            room = bflow[a]
    diff = c_hi - c_lo
    if diff <= 1e-14 * c_hi or room <= 0.0:
        return 0.0
    step = room if d <= 0.0 else min(diff / d, room)
    for k in range(n_hi):
        a = seg[hi_start + k]
        old = bflow[a]
        new = old - step
        # Links that carried the same flow in exact arithmetic must all empty together: a
        # round-off crumb (1e-14 veh/h) left on one would make it look used, and a longest
        # "used" path through it has no room to move flow off, which stalls the node.
        if new <= 1e-11 * old:
            new = 0.0
        bflow[a] = new
        x[a] -= old - new
        if x[a] < 0.0:
            x[a] = 0.0
        cost[a] = link_cost(x[a], fft[a], alpha[a], beta[a], cap[a], const[a])
    for k in range(n_lo):
        a = seg[k]
        bflow[a] += step
        x[a] += step
        cost[a] = link_cost(x[a], fft[a], alpha[a], beta[a], cap[a], const[a])
    return diff


@numba.njit(cache=True)
def update_origin(
    origin,
    first_thru,
    in_bush,
    bflow,
    x,
    cost,
    fft,
    alpha,
    beta,
    cap,
    const,
    tail,
    head,
    open_link,
    out_start,
    out_link,
    in_start,
    in_link,
    passes,
    grow,
    threshold,
    work_i,
    work_f,
):
    """One Algorithm B step for one origin: improve its bush, then equilibrate flow inside it."""
    order = work_i[0]
    pos = work_i[1]
    indeg = work_i[2]
    lo_pred = work_i[3]
    hi_pred = work_i[4]
    seg = work_i[5]
    lo = work_f[0]
    hi = work_f[1]
    top = work_f[2]
    n = _topo(origin, in_bush, out_start, out_link, head, order, pos, indeg)
    fresh = False
    if grow:
        n, added = _grow(
            origin, first_thru, n, in_bush, bflow, cost, tail, head, open_link, out_start,
            out_link, in_start, in_link, order, pos, indeg, lo, lo_pred, hi, hi_pred, top,
        )  # fmt: skip
        # Dropping links without flow changes neither shortest nor longest-used paths: unless
        # links were added, the labels are still those of the bush.
        fresh = not added
    worst = 0.0
    for _ in range(passes):
        if not fresh:
            _labels(n, order, in_start, in_link, tail, cost, in_bush, bflow, lo, lo_pred, hi,
                    hi_pred, top)  # fmt: skip
        fresh = False
        worst = 0.0
        for k in range(n - 1, 0, -1):
            j = order[k]
            # Differences below the threshold cannot matter at the target gap; skipping them
            # keeps a pass over a nearly equilibrated bush cheap (no path walks).
            if hi_pred[j] == lo_pred[j] or hi[j] - lo[j] <= threshold + 1e-14 * hi[j]:
                continue
            diff = _shift(
                j, pos, lo_pred, hi_pred, tail, bflow, x, cost, fft, alpha, beta, cap, const, seg
            )
            if diff > worst:
                worst = diff
        if worst == 0.0:
            break
    return worst


@numba.njit(cache=True)
def _grow(
    origin, first_thru, n, in_bush, bflow, cost, tail, head, open_link, out_start, out_link,
    in_start, in_link, order, pos, indeg, lo, lo_pred, hi, hi_pred, top,
):  # fmt: skip
    """Drop links the origin no longer uses and add shortcuts; returns the bush's node count
    and whether links were added."""
    _labels(n, order, in_start, in_link, tail, cost, in_bush, bflow, lo, lo_pred, hi, hi_pred, top)
    # Drop links that carry none of this origin's flow, except each node's shortest-path link,
    # which keeps every node reachable inside the bush.
    # ``top`` of the larger bush still orders the smaller one topologically.
    for a in range(in_bush.shape[0]):
        if in_bush[a] and bflow[a] <= 0.0 and lo_pred[head[a]] != a:
            in_bush[a] = False
    # Add shortcuts. Ordering nodes by (longest bush path, topological position) is itself a
    # topological order of the bush, so a link that goes forward in it cannot close a cycle;
    # at a bush equilibrium every shortcut goes forward, so none that matters is refused.
    added = False
    for a in range(tail.shape[0]):
        if in_bush[a] or not open_link[a]:
            continue
        i = tail[a]
        j = head[a]
        if pos[i] < 0 or pos[j] < 0 or (i < first_thru and i != origin):
            continue
        shorter = lo[i] + cost[a] < lo[j] - 1e-12 * lo[j]
        if shorter and (top[i] < top[j] or (top[i] == top[j] and pos[i] < pos[j])):
            in_bush[a] = True
            added = True
    if added:
        n = _topo(origin, in_bush, out_start, out_link, head, order, pos, indeg)
    return n, added


@numba.njit(cache=True)
def shortest_total(
    origins, demand, zone_node, cost, out_start, out_link, head, first_thru, work_i, work_f
):
    """Sum over OD pairs of demand x shortest-path cost (SPTT) under the current costs."""
    total = 0.0
    dist = work_f[0]
    heap_d = work_f[1]
    pred = work_i[0]
    order = work_i[1]
    heap_v = work_i[2]
    for k in range(origins.shape[0]):
        o = origins[k]
        dijkstra(
            zone_node[o],
            cost,
            out_start,
            out_link,
            head,
            first_thru,
            dist,
            pred,
            order,
            heap_d,
            heap_v,
        )
        for z in range(demand.shape[1]):
            if demand[o, z] > 0.0 and z != o:
                total += demand[o, z] * dist[zone_node[z]]
    return total
