"""Suppression of small people counts.

Counts of people below k identify individuals in small areas, so anyone without the right to
see personal data gets ``None`` in their place (and a flag saying so). Pure functions: the API
decides who has the right; these decide what a count becomes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

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

    Adds ``suppressed``: the names of the fields (or ``field.key``) that were hidden.
    """
    out = dict(row)
    hidden: list[str] = []
    if not allowed:
        for f in PEOPLE_FIELDS:
            if f in out:
                v = suppress_count(out[f], k)
                if v is None and out[f] is not None:
                    hidden.append(f)
                out[f] = v
        for f in PEOPLE_MAPS:
            if isinstance(out.get(f), Mapping):
                m = {}
                for key, v in out[f].items():
                    sv = suppress_count(v, k)
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
