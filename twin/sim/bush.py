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

A bush is kept between visits in the order its passes read it: a topological order of its
nodes ``order`` and, node after node, its links with the origin's flow on them, in *slots*:
the links into ``order[m]`` are ``blink[bstart[m]:bstart[m + 1]]`` with flows ``bflow[...]``.
Label passes are bound by memory traffic, which this layout keeps to the bush's own size
(about a quarter of the network's) and in sequence; only growing a bush changes it.

Units follow the caller: ``fft`` and costs in the network's time unit (minutes for TNTP files),
flows in vehicles per hour.
"""

from __future__ import annotations

import numba
import numpy as np

_INF = np.inf


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


@numba.njit(cache=True, inline="always")
def _push(heap_d, heap_v, size, d, v):
    """Add ``v`` at key ``d`` to the 4-ary heap of ``size`` entries; returns the new size.

    A 4-ary heap is half as deep as a binary one: its pops, the bulk of the work, are a quarter
    faster on road graphs. Entries are lazy: a node is pushed again when its key drops, and
    stale entries are skipped when popped.
    """
    i = size
    while i > 0:
        p = (i - 1) // 4
        if heap_d[p] <= d:
            break
        heap_d[i] = heap_d[p]
        heap_v[i] = heap_v[p]
        i = p
    heap_d[i] = d
    heap_v[i] = v
    return size + 1


@numba.njit(cache=True, inline="always")
def _pop(heap_d, heap_v, size):
    """Remove the smallest entry; returns its key, its node and the new size."""
    d = heap_d[0]
    u = heap_v[0]
    size -= 1
    if size > 0:
        # Move the last entry to the root and sift it down.
        ld = heap_d[size]
        lv = heap_v[size]
        i = 0
        while True:
            c = 4 * i + 1
            if c >= size:
                break
            m = c
            md = heap_d[c]
            for cc in range(c + 1, min(c + 4, size)):
                if heap_d[cc] < md:
                    md = heap_d[cc]
                    m = cc
            if md >= ld:
                break
            heap_d[i] = md
            heap_v[i] = heap_v[m]
            i = m
        heap_d[i] = ld
        heap_v[i] = lv
    return d, u, size


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
    size = _push(heap_d, heap_v, 0, 0.0, origin)
    settled = 0
    while size > 0:
        d, u, size = _pop(heap_d, heap_v, size)
        # A node is pushed only when its distance strictly drops, so the one entry popped at
        # its final distance is unique: every other entry for it is stale (larger).
        if d > dist[u]:
            continue
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
                size = _push(heap_d, heap_v, size, nd, v)
    return settled


@numba.njit(cache=True)
def init_bush(
    origin, demand_row, zone_node, pred, order, settled, in_bush, tail, x, border, bstart, blink,
    bflow,
):  # fmt: skip
    """Load the origin's demand all-or-nothing on its shortest-path tree, which becomes its bush.

    The settling ``order[:settled]`` of the search is a topological order of the tree, and every
    node but the origin has one tree link in: the bush's layout (``border``, slots ``bstart``,
    ``blink``, ``bflow``; see the module notes) follows directly.
    """
    n = pred.shape[0]
    acc = np.zeros(n)
    for z in range(demand_row.shape[0]):
        acc[zone_node[z]] += demand_row[z]
    bstart[0] = 0
    # Reverse settling order visits every node after all of its tree children.
    for k in range(settled - 1, 0, -1):
        j = order[k]
        a = pred[j]
        in_bush[a] = True
        border[k] = j
        bstart[k] = k - 1
        blink[k - 1] = a
        f = acc[j]
        bflow[k - 1] = f
        if f > 0.0:
            x[a] += f
            acc[tail[a]] += f
    border[0] = origin
    bstart[settled] = settled - 1


@numba.njit(cache=True)
def _labels(n, order, bstart, blink, tail, cost, bflow, lo, lo_pred, hi, hi_pred, top, with_top):
    """Path costs to each bush node, in one pass in topological order.

    ``lo``: shortest path in the bush. ``hi``: longest path over links carrying the origin's
    flow (the paths flow can be moved off; ``lo`` where none arrives). ``top`` (only
    ``with_top``): longest path over every bush link, a key that orders the bush topologically
    (for adding links). ``lo_pred`` and ``hi_pred`` hold the last slot of each path.
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
        for q in range(bstart[k], bstart[k + 1]):
            a = blink[q]
            i = tail[a]
            c = lo[i] + cost[a]
            if c < best:
                best = c
                bp = q
            if with_top:
                c = top[i] + cost[a]
                if c > highest:
                    highest = c
            if bflow[q] <= 0.0:
                continue
            c = hi[i] + cost[a]
            if c > worst:
                worst = c
                wp = q
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
def _shift(
    j, pos, lo_pred, hi_pred, blink, tail, bflow, x, cost, fft, alpha, beta, cap, const, seg
):  # fmt: skip
    """Move flow to ``j`` from its longest used path to its shortest, back to where they part.

    Returns the cost difference found before the move (a measure of how far from equilibrium).
    """
    # Walk both paths back in decreasing topological position: the first node they share is
    # where they diverge, and the two segments between it and j are disjoint.
    n_lo = 0
    n_hi = 0
    hi_start = seg.shape[0] // 2
    q = lo_pred[j]
    seg[n_lo] = q
    n_lo += 1
    i_lo = tail[blink[q]]
    q = hi_pred[j]
    seg[hi_start + n_hi] = q
    n_hi += 1
    i_hi = tail[blink[q]]
    while i_lo != i_hi:
        if pos[i_lo] > pos[i_hi]:
            q = lo_pred[i_lo]
            seg[n_lo] = q
            n_lo += 1
            i_lo = tail[blink[q]]
        else:
            q = hi_pred[i_hi]
            seg[hi_start + n_hi] = q
            n_hi += 1
            i_hi = tail[blink[q]]
    c_lo = 0.0
    d = 0.0
    for k in range(n_lo):
        a = blink[seg[k]]
        c_lo += cost[a]
        d += link_slope(x[a], fft[a], alpha[a], beta[a], cap[a])
    c_hi = 0.0
    room = _INF
    for k in range(n_hi):
        q = seg[hi_start + k]
        a = blink[q]
        c_hi += cost[a]
        d += link_slope(x[a], fft[a], alpha[a], beta[a], cap[a])
        if bflow[q] < room:
            room = bflow[q]
    diff = c_hi - c_lo
    if diff <= 1e-14 * c_hi or room <= 0.0:
        return 0.0
    step = room if d <= 0.0 else min(diff / d, room)
    for k in range(n_hi):
        q = seg[hi_start + k]
        a = blink[q]
        old = bflow[q]
        new = old - step
        # Links that carried the same flow in exact arithmetic must all empty together: a
        # round-off crumb (1e-14 veh/h) left on one would make it look used, and a longest
        # "used" path through it has no room to move flow off, which stalls the node.
        if new <= 1e-11 * old:
            new = 0.0
        bflow[q] = new
        x[a] -= old - new
        if x[a] < 0.0:
            x[a] = 0.0
        cost[a] = link_cost(x[a], fft[a], alpha[a], beta[a], cap[a], const[a])
    for k in range(n_lo):
        q = seg[k]
        a = blink[q]
        bflow[q] += step
        x[a] += step
        cost[a] = link_cost(x[a], fft[a], alpha[a], beta[a], cap[a], const[a])
    return diff


@numba.njit(cache=True)
def update_origin(
    origin, first_thru, in_bush, x, cost, fft, alpha, beta, cap, const, tail, head, open_link,
    passes, grow, threshold, order, n, bstart, blink, bflow, work_i, work_f, lay_i, lay_f,
):  # fmt: skip
    """One Algorithm B step for one origin: improve its bush, then equilibrate flow inside it.

    The bush is kept between calls as ``in_bush`` (per link), a topological order ``order[:n]``
    and its slots ``bstart``/``blink``/``bflow`` (see the module notes): shifting flow never
    changes its links, so only growing it lays them out anew. Its node set never changes. Scratch:
    ``work_i`` (8 x node-sized, twice over), ``work_f`` (3 x node-sized), ``lay_i`` (2 x
    link-sized) and ``lay_f`` (link-sized). Returns the largest path cost difference met (time
    units).
    """
    pos = work_i[0]
    lo_pred = work_i[1]
    hi_pred = work_i[2]
    seg = work_i[3]
    lo = work_f[0]
    hi = work_f[1]
    top = work_f[2]
    pos[:] = -1
    for k in range(n):
        pos[order[k]] = k
    fresh = False
    if grow:
        changed = _grow(
            origin, first_thru, n, in_bush, cost, tail, head, open_link, order, pos, bstart,
            blink, bflow, lo, lo_pred, hi, hi_pred, top, work_i, lay_i, lay_f,
        )  # fmt: skip
        # Unless the bush changed, the labels just computed are still its own.
        fresh = not changed
    worst = 0.0
    for _ in range(passes):
        if not fresh:
            _labels(n, order, bstart, blink, tail, cost, bflow, lo, lo_pred, hi, hi_pred, top,
                    False)  # fmt: skip
        fresh = False
        worst = 0.0
        for k in range(n - 1, 0, -1):
            j = order[k]
            # Differences below the threshold cannot matter at the target gap; skipping them
            # keeps a pass over a nearly equilibrated bush cheap (no path walks).
            if hi_pred[j] == lo_pred[j] or hi[j] - lo[j] <= threshold + 1e-14 * hi[j]:
                continue
            diff = _shift(
                j, pos, lo_pred, hi_pred, blink, tail, bflow, x, cost, fft, alpha, beta, cap,
                const, seg,
            )  # fmt: skip
            if diff > worst:
                worst = diff
        if worst == 0.0:
            break
    return worst


@numba.njit(cache=True)
def _grow(
    origin, first_thru, n, in_bush, cost, tail, head, open_link, order, pos, bstart, blink,
    bflow, lo, lo_pred, hi, hi_pred, top, work_i, lay_i, lay_f,
):  # fmt: skip
    """Drop links the origin no longer uses and add shortcuts; returns whether the bush's links
    changed (it is then laid out anew)."""
    _labels(n, order, bstart, blink, tail, cost, bflow, lo, lo_pred, hi, hi_pred, top, True)
    # Drop links that carry none of this origin's flow, except each node's shortest-path link,
    # which keeps every node reachable inside the bush. (A dropped link is no shortcut, since
    # ``lo`` counted it: it cannot come back below.)
    changed = False
    for q in range(bstart[n]):
        a = blink[q]
        if bflow[q] <= 0.0 and lo_pred[head[a]] != q:
            in_bush[a] = False
            changed = True
    # Add shortcuts. Ordering nodes by (longest bush path, topological position) is itself a
    # topological order of the bush, so a link that goes forward in it cannot close a cycle;
    # at a bush equilibrium every shortcut goes forward, so none that matters is refused.
    added = lay_i[1]
    n_add = 0
    for a in range(tail.shape[0]):
        i = tail[a]
        j = head[a]
        # The cost test first: few links pass it. (Labels of nodes outside the bush are stale
        # but are never used: such links fail the position test.)
        if not lo[i] + cost[a] < lo[j] - 1e-12 * lo[j]:
            continue
        if in_bush[a] or not open_link[a]:
            continue
        if pos[i] < 0 or pos[j] < 0 or (i < first_thru and i != origin):
            continue
        if top[i] < top[j] or (top[i] == top[j] and pos[i] < pos[j]):
            in_bush[a] = True
            added[n_add] = a
            n_add += 1
    if changed or n_add > 0:
        _relayout(n, order, pos, bstart, blink, bflow, in_bush, tail, head, added[:n_add],
                  work_i, lay_i[0], lay_f)  # fmt: skip
        return True
    return False


@numba.njit(cache=True)
def _relayout(n, order, pos, bstart, blink, bflow, in_bush, tail, head, added, work_i, new_blink,
              new_bflow):  # fmt: skip
    """Lay the bush out again once links were dropped (``in_bush`` false) and ``added``: a new
    topological order, depth first over predecessors, and its slots.

    The old order stays valid for most nodes, so the search rarely goes deep, and the work is
    in proportion to the bush, not to the network as a new Kahn order would be.
    """
    new_order = work_i[4]
    add_start = work_i[5]
    new_bstart = work_i[6]
    done = work_i[7]
    stack = work_i[3]  # the path-walk buffer, free here: nodes and cursors, half each
    half = stack.shape[0] // 2
    # The added links grouped by their head's old position.
    keys = np.empty(added.shape[0], dtype=np.int64)
    for r in range(added.shape[0]):
        keys[r] = pos[head[added[r]]]
    sorted_add = added[np.argsort(keys)]
    add_start[: n + 1] = 0
    for r in range(added.shape[0]):
        add_start[keys[r] + 1] += 1
    for m in range(n):
        add_start[m + 1] += add_start[m]
    for m in range(n):
        done[order[m]] = 0
    placed = 0
    q_new = 0
    for m0 in range(n):
        if done[order[m0]]:
            continue
        stack[0] = order[m0]
        stack[half] = 0
        done[order[m0]] = 1
        depth = 1
        while depth > 0:
            j = stack[depth - 1]
            c = stack[half + depth - 1]
            p = pos[j]
            n_old = bstart[p + 1] - bstart[p]
            n_all = n_old + add_start[p + 1] - add_start[p]
            deeper = False
            while c < n_all:
                a = blink[bstart[p] + c] if c < n_old else sorted_add[add_start[p] + c - n_old]
                c += 1
                i = tail[a]
                if in_bush[a] and done[i] == 0:
                    # Place this predecessor (and its own) first. A node on the stack cannot
                    # be met again: the bush is acyclic.
                    stack[half + depth - 1] = c
                    done[i] = 1
                    stack[depth] = i
                    stack[half + depth] = 0
                    depth += 1
                    deeper = True
                    break
            if deeper:
                continue
            depth -= 1
            new_order[placed] = j
            new_bstart[placed] = q_new
            placed += 1
            for q in range(bstart[p], bstart[p + 1]):
                if in_bush[blink[q]]:
                    new_blink[q_new] = blink[q]
                    new_bflow[q_new] = bflow[q]
                    q_new += 1
            for r in range(add_start[p], add_start[p + 1]):
                new_blink[q_new] = sorted_add[r]
                new_bflow[q_new] = 0.0
                q_new += 1
    new_bstart[n] = q_new
    for m in range(n):
        order[m] = new_order[m]
        bstart[m] = new_bstart[m]
        pos[new_order[m]] = m
    bstart[n] = q_new
    for q in range(q_new):
        blink[q] = new_blink[q]
        bflow[q] = new_bflow[q]


@numba.njit(cache=True)
def path_totals(
    members, origins, demand, zone_node, cost, in_start, in_link, out_start, out_link, tail,
    head, first_thru, orders, counts, exact, reach, via, heap_d, heap_v,
):  # fmt: skip
    """Sum over OD pairs of demand x path cost: the SPTT (``exact``) or an upper bound on it.

    Labels are first set in each bush's topological order, every node taking the cheapest link
    from an already labelled node, bush link or not (the others still hold ``inf``). Each label
    is the cost of a real path, so this total is at least the SPTT and ``(TSTT - total) /
    TSTT`` a lower bound on the relative gap, at a fraction of the cost of a shortest-path
    search. The order is the bush's, so the bound tightens as the bushes settle.

    ``exact`` then corrects the labels into shortest-path costs: every link is checked, a
    label that a link improves goes into a heap, and the heap is worked off as in Dijkstra's
    algorithm. At the end no link can improve any label, and labels that are costs of real
    paths with that property are the shortest-path costs. The bound is usually close, so few
    labels move: a quarter of the cost of a search from scratch.

    Nodes below ``first_thru`` other than the origin are reached but not passed through.
    ``reach`` (a node's label) and ``via`` (the label paths may go on from: ``inf`` at those
    zones) are node-sized scratch arrays; ``heap_d``/``heap_v`` hold ``2 x n_links + 1``.
    """
    total = 0.0
    for r in range(members.shape[0]):
        k = members[r]  # the origins summed: their indices into ``origins``, in this order
        o = origins[k]
        order = orders[k]
        origin = zone_node[o]
        via[:] = _INF
        reach[:] = _INF
        via[origin] = 0.0
        reach[origin] = 0.0
        for m in range(1, counts[k]):
            j = order[m]
            best = _INF
            for q in range(in_start[j], in_start[j + 1]):
                a = in_link[q]
                c = via[tail[a]] + cost[a]
                if c < best:
                    best = c
            reach[j] = best
            if j >= first_thru:
                via[j] = best
        if exact:
            # Every link out of a node that paths may go on from, checked once here ...
            size = 0
            for m in range(counts[k]):
                i = order[m]
                if via[i] == _INF:
                    continue
                for r in range(out_start[i], out_start[i + 1]):
                    a = out_link[r]
                    j = head[a]
                    nd = via[i] + cost[a]
                    if nd < reach[j]:
                        reach[j] = nd
                        if j >= first_thru:
                            via[j] = nd
                            size = _push(heap_d, heap_v, size, nd, j)
            # ... and again out of every node whose label dropped, cheapest first.
            while size > 0:
                d, i, size = _pop(heap_d, heap_v, size)
                if d > via[i]:
                    continue
                for r in range(out_start[i], out_start[i + 1]):
                    a = out_link[r]
                    j = head[a]
                    nd = d + cost[a]
                    if nd < reach[j]:
                        reach[j] = nd
                        if j >= first_thru:
                            via[j] = nd
                            size = _push(heap_d, heap_v, size, nd, j)
        for z in range(demand.shape[1]):
            if demand[o, z] > 0.0 and z != o:
                total += demand[o, z] * reach[zone_node[z]]
    return total


# ---------------------------------------------------------------------------------------------
# Origins in parallel: the steps that move no flow.
#
# Origins are cut into fixed groups (``members[gstart[g]:gstart[g + 1]]``: origin indices), one
# thread each. Three steps read the link costs without moving flow: the all-or-nothing start
# (every origin on the free-flow costs, as in the serial loop), growing the bushes, and the
# path totals of the gap. They run group by group in parallel, and every sum is taken in group
# order, so a run is repeatable bit for bit whatever the threads' timing.
#
# The flow shifts stay serial, each origin seeing the flows the one before it left. Shifting
# origins side by side on copies of the flows (Jacobi between the groups) was tried on the
# large demo city's morning peak: both groups moved flow off the same overloaded links onto the
# same alternatives, and with BPR's fourth power the overshoot left the gap at 0.49 after one
# iteration instead of 0.02.


@numba.njit(parallel=True, cache=True)
def init_groups(
    members, gstart, origins, demand, zone_node, cost, out_start, out_link, head, tail,
    first_thru, in_bush, orders, bstart, blink, bflow, counts, zone_dist, xs, dist, pred,
    settle, heap_f, heap_i,
):  # fmt: skip
    """Shortest-path trees of every origin loaded all-or-nothing, group by group in parallel.

    ``xs[g]`` receives group ``g``'s link flows (the caller sums them in group order);
    ``zone_dist[k]`` the origin's free-flow cost to every zone node (``inf``: unreachable; its
    demand is never loaded, since only settled nodes pass flow on).
    """
    n_groups = gstart.shape[0] - 1
    for g in numba.prange(n_groups):
        xs[g][:] = 0.0
        for r in range(gstart[g], gstart[g + 1]):
            k = members[r]
            origin = zone_node[origins[k]]
            settled = dijkstra(
                origin, cost, out_start, out_link, head, first_thru, dist[g], pred[g],
                settle[g], heap_f[g], heap_i[g],
            )  # fmt: skip
            for z in range(zone_node.shape[0]):
                zone_dist[k, z] = dist[g][zone_node[z]]
            init_bush(
                origin, demand[origins[k]], zone_node, pred[g], settle[g], settled, in_bush[k],
                tail, xs[g], orders[k], bstart[k], blink[k], bflow[k],
            )  # fmt: skip
            counts[k] = settled


@numba.njit(parallel=True, cache=True)
def grow_groups(
    members, gstart, origins, zone_node, first_thru, in_bush, cost, tail, head, open_link,
    orders, counts, bstart, blink, bflow, work_i, work_f, lay_i, lay_f,
):  # fmt: skip
    """Grow every origin's bush (drop unused links, add shortcuts), the groups in parallel.

    Growing reads the costs and never moves flow, so the bushes are independent here; the flow
    shifts that follow stay serial (see the module notes) and label each bush afresh.
    """
    n_groups = gstart.shape[0] - 1
    for g in numba.prange(n_groups):
        wi = work_i[g]
        wf = work_f[g]
        for r in range(gstart[g], gstart[g + 1]):
            k = members[r]
            n = counts[k]
            pos = wi[0]
            pos[:] = -1
            order = orders[k]
            for m in range(n):
                pos[order[m]] = m
            _grow(
                zone_node[origins[k]], first_thru, n, in_bush[k], cost, tail, head, open_link,
                order, pos, bstart[k], blink[k], bflow[k], wf[0], wi[1], wf[1], wi[2], wf[2],
                wi, lay_i[g], lay_f[g],
            )  # fmt: skip


@numba.njit(parallel=True, cache=True)
def path_totals_groups(
    members, gstart, origins, demand, zone_node, cost, in_start, in_link, out_start, out_link,
    tail, head, first_thru, orders, counts, exact, reach, via, heap_d, heap_v, totals,
):  # fmt: skip
    """:func:`path_totals` with the origins' groups in parallel; ``totals[g]`` per group (the
    caller sums them in group order, so the sum is the same whatever the threads' timing)."""
    n_groups = gstart.shape[0] - 1
    for g in numba.prange(n_groups):
        totals[g] = path_totals(
            members[gstart[g] : gstart[g + 1]], origins, demand, zone_node, cost, in_start,
            in_link, out_start, out_link, tail, head, first_thru, orders, counts, exact,
            reach[g], via[g], heap_d[g], heap_v[g],
        )  # fmt: skip
