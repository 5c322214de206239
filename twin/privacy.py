"""Suppression of small people counts.

Counts of people below k identify individuals in small areas, so anyone without the right to
see personal data gets ``None`` in their place (and a flag saying so). Pure functions: the API
decides who has the right; these decide what a count becomes.
"""

from __future__ import annotations

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


def cell_hidden_fields(
    res: Sequence[int] | np.ndarray,
    cells: Sequence[int] | np.ndarray,
    counts: Mapping[str, Sequence[int] | np.ndarray],
    by_age: Sequence[Mapping[str, int] | None],
    *,
    k: int,
) -> list[list[str]]:
    """The people fields of each cell row to hide from those without the right.

    Parameters
    ----------
    res, cells
        H3 resolution and cell id (int64) of each row; the rows hold every cell with people or
        jobs at each resolution (a cell with no row counts zero).
    counts
        ``population``, ``elderly`` and ``jobs`` per row (persons).
    by_age
        Residents per age band per row (``{"0-14": 12, ...}``); elderly are the bands of
        :data:`ELDERLY_BANDS`.
    k
        Suppression threshold.

    Returns
    -------
    list of list of str
        Per row, the fields to hide: ``population``, ``elderly``, ``jobs`` and
        ``population_by_age.<band>``.

    Notes
    -----
    Decided by the one model of :func:`twin.suppression.suppress`: residents are atoms per
    finest cell and age band (the finest rows' ``population_by_age``), jobs atoms per finest
    cell; every field at every resolution and the city totals are nodes.
    """
    from twin.suppression import suppress  # the model builds on complementary_suppression

    res_arr = np.asarray(res, dtype=np.int64)
    cell_arr = np.asarray(cells, dtype=np.int64)
    n = len(cell_arr)
    if n == 0:
        return []
    levels = sorted(set(res_arr.tolist()))
    fine = np.flatnonzero(res_arr == levels[-1]).tolist()
    a_cells: list[int] = []
    a_keys: list[str] = []
    a_vals: list[int] = []
    for i in fine:
        for band, c in (by_age[i] or {}).items():
            if c:
                a_cells.append(int(cell_arr[i]))
                a_keys.append(band)
                a_vals.append(int(c))
    bands = sorted(set(a_keys))
    old = [b for b in bands if b in ELDERLY_BANDS]
    young = [b for b in bands if b not in ELDERLY_BANDS]
    fields: dict[str, list[str] | None] = {
        "population": None,
        "elderly": old,
        "rest": young,  # never published: closes population = elderly + rest
        **{f"population_by_age.{b}": [b] for b in bands},
    }
    relations = [
        ("population", ["elderly", "rest"]),
        ("elderly", [f"population_by_age.{b}" for b in old]),
        ("rest", [f"population_by_age.{b}" for b in young]),
    ]
    people = suppress(
        a_cells, a_keys, a_vals, resolutions=levels, fields=fields, k=k,
        relations=relations, unpublished=["rest"],
    )  # fmt: skip
    jobs_v = np.asarray(counts["jobs"], dtype=np.int64)
    jobs = suppress(
        cell_arr[fine], ["jobs"] * len(fine), jobs_v[fine], resolutions=levels,
        fields={"jobs": None}, k=k,
    )  # fmt: skip
    out: list[list[str]] = []
    for i in range(n):
        r, c = int(res_arr[i]), int(cell_arr[i])
        row = [f for f in fields if f != "rest" and people.hidden(f, r, c)]
        if jobs.hidden("jobs", r, c):
            row.append("jobs")
        out.append(sorted(row, key=_field_order))
    return out


def _field_order(f: str) -> tuple[int, str]:
    return ({"population": 0, "elderly": 1, "jobs": 2}.get(f, 3), f)
