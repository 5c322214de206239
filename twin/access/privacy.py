"""Suppression of small people counts.

Counts of people below k identify individuals in small areas, so anyone without the right to
see personal data gets ``None`` in their place (and a flag saying so). Pure functions: the API
decides who has the right; these decide what a count becomes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

# Fields of a cell's statistics that count people (residents or workers).
PEOPLE_FIELDS = ("population", "elderly", "jobs")
PEOPLE_MAPS = ("population_by_age",)


def suppress_count(value: int | None, k: int) -> int | None:
    """``None`` for a count of 1..k-1; zero and counts of k or more pass (zero reveals no one)."""
    if value is None or value == 0 or value >= k:
        return value
    return None


def suppress_stats(row: Mapping[str, Any], k: int, *, allowed: bool) -> dict[str, Any]:
    """A copy of a statistics row with people counts below ``k`` hidden unless ``allowed``.

    Fields named in the row's ``hidden`` (stored by the cell refresh, see
    :func:`cell_hidden_fields`) are hidden too; ``hidden`` itself is dropped. Adds
    ``suppressed``: the names of the fields (or ``field.key``) that were hidden.
    """
    out = dict(row)
    # Fields the last refresh chose to hide as well (complementary suppression).
    marked = set(out.pop("hidden", None) or ())
    hidden: list[str] = []
    if not allowed:
        for f in PEOPLE_FIELDS:
            if f in out:
                v = None if f in marked else suppress_count(out[f], k)
                if v is None and out[f] is not None:
                    hidden.append(f)
                out[f] = v
        for f in PEOPLE_MAPS:
            if isinstance(out.get(f), Mapping):
                m = {}
                for key, v in out[f].items():
                    sv = None if f"{f}.{key}" in marked else suppress_count(v, k)
                    if sv is None and v is not None:
                        hidden.append(f"{f}.{key}")
                    m[key] = sv
                out[f] = m
    out["suppressed"] = hidden
    return out


def is_people_metric(metric: str) -> bool:
    return metric in PEOPLE_FIELDS


def suppress_values(values: Iterable[int | None], k: int, *, allowed: bool) -> list[int | None]:
    return [v if allowed else suppress_count(v, k) for v in values]


# Age bands counted as elderly (the ``elderly`` column of twin/db/sql/cell_stats.sql).
ELDERLY_BANDS = ("60-74", "75+")


def complementary_suppression(
    values: Sequence[int] | np.ndarray,
    groups: Sequence[tuple[int, Sequence[int]]],
    *,
    k: int,
) -> np.ndarray:
    """Which counts to hide so that no hidden count can be recovered by subtraction.

    Parameters
    ----------
    values
        Counts of people (persons), one per node.
    groups
        Additive relations ``(total, parts)``: ``values[total] == sum(values[parts])``, e.g. a
        parent cell and its children, or a cell's population and its age bands.
    k
        Threshold: counts from 1 to k-1 are hidden (primary suppression).

    Returns
    -------
    numpy.ndarray of bool
        True where a count must be hidden from those without the right to see people.

    Notes
    -----
    Primary suppression alone leaks: a parent of 40 with visible children 12 and 25 gives away
    the hidden third child as 40 - 12 - 25 = 3. So, until nothing changes, every relation is made
    to hold either no hidden member or at least two, and where its total is shown, the hidden
    parts must add up to k or more (their sum is what a reader can work out). The member added is
    the smallest shown non-zero part (hiding the least information), else the total, which then
    spreads the check to the relations the total is a part of. Zeros are never hidden: they
    reveal no one. This is the usual hierarchical heuristic, not an optimal solution of the cell
    suppression problem (which is NP-hard), and it protects against one-relation differencing.
    """
    v = np.asarray(values, dtype=np.int64)
    hidden_arr = (v > 0) & (v < k)
    if not groups:
        return hidden_arr
    # The groups of each node (ascending), as sorted (node, group) pairs.
    totals = np.fromiter((t for t, _ in groups), dtype=np.int64, count=len(groups))
    sizes = np.fromiter((len(p) for _, p in groups), dtype=np.int64, count=len(groups))
    flat = np.fromiter(
        itertools.chain.from_iterable(p for _, p in groups), dtype=np.int64, count=int(sizes.sum())
    )
    gid = np.arange(len(groups), dtype=np.int64)
    m_node = np.concatenate([totals, flat])
    m_group = np.concatenate([gid, np.repeat(gid, sizes)])
    order = np.lexsort((m_group, m_node))
    m_node, m_group = m_node[order], m_group[order]
    # Groups with a hidden member, in order.
    part_hidden = np.zeros(len(groups), dtype=np.int64)
    np.add.at(part_hidden, np.repeat(gid, sizes), hidden_arr[flat].astype(np.int64))
    queue = np.flatnonzero(hidden_arr[totals] | (part_hidden > 0)).tolist()
    hidden = hidden_arr.tolist()
    val = v.tolist()
    queued = set(queue)
    while queue:
        g = queue.pop()
        queued.discard(g)
        total, parts = groups[g]
        while True:
            hid = [p for p in parts if hidden[p]]
            if hidden[total]:
                leak = not hid  # the total alone is hidden: it is the sum of the parts
            else:
                leak = bool(hid) and (len(hid) == 1 or sum(val[p] for p in hid) < k)
            if not leak:
                break
            shown = [p for p in parts if not hidden[p] and val[p] > 0]
            if shown:
                pick = min(shown, key=lambda p: (val[p], p))
            elif not hidden[total]:
                pick = total
            else:  # every part is zero, so the total is zero too: nothing to protect
                break
            hidden[pick] = True
            lo, hi = np.searchsorted(m_node, [pick, pick + 1]).tolist()
            for other in m_group[lo:hi].tolist():
                if other != g and other not in queued:
                    queue.append(other)
                    queued.add(other)
    return np.asarray(hidden, dtype=bool)
