"""Test-only reference: twin.access.privacy.complementary_suppression before it was made faster
(the same heuristic over Python dicts and numpy scalars). Not imported by the package."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
    hidden = (v > 0) & (v < k)
    member_of: dict[int, list[int]] = {}
    for g, (total, parts) in enumerate(groups):
        for node in (total, *parts):
            member_of.setdefault(int(node), []).append(g)
    queue = [g for g, (total, parts) in enumerate(groups)
             if hidden[total] or any(hidden[p] for p in parts)]  # fmt: skip
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
                leak = bool(hid) and (len(hid) == 1 or int(v[hid].sum()) < k)
            if not leak:
                break
            shown = [p for p in parts if not hidden[p] and v[p] > 0]
            if shown:
                pick = min(shown, key=lambda p: (v[p], p))
            elif not hidden[total]:
                pick = total
            else:  # every part is zero, so the total is zero too: nothing to protect
                break
            hidden[pick] = True
            for other in member_of.get(int(pick), ()):
                if other != g and other not in queued:
                    queue.append(other)
                    queued.add(other)
    return hidden
