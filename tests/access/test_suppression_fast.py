"""The batched audit (twin.access.linaudit) decides exactly what the per-component audit decided:
on random synthetic cities, several seeds and thresholds, :func:`cell_hidden_fields` and
:func:`suppress` give the same answers as the previous implementation, kept verbatim in
tests/access/suppression_reference.py."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from tests.access import suppression_reference as reference
from tests.access.privacy_reference import complementary_suppression as old_heuristic
from twin.access.privacy import ELDERLY_BANDS, complementary_suppression
from twin.access.suppression import cell_hidden_fields, suppress

BANDS = ["0-14", "15-59", "60-74", "75+"]
LEVELS = [7, 8, 9, 10]


def synthetic_rows(seed: int, *, n_fine: int, spread: int, empty: float, rings: int = 0):
    """cell_stats-like rows (res, cell, counts, population_by_age) of a random sparse city: the
    finest rows hold the atoms, the coarser rows their sums, rows ordered by res then cell.
    The city spans the res-7 cells within ``rings`` of one (343 fine cells each)."""
    rng = np.random.default_rng(seed)
    bases = h3.grid_disk(h3.latlng_to_cell(60.17, 24.94, 7), rings)
    fine = sorted(c for b in bases for c in h3.cell_to_children(b, LEVELS[-1]))
    picked = rng.choice(len(fine), size=n_fine, replace=False)
    atoms: dict[int, dict[str, int]] = {}
    jobs: dict[int, int] = {}
    for i in picked.tolist():
        c = h3.str_to_int(fine[i])
        ages = {b: int(rng.integers(0, spread)) for b in BANDS if rng.random() > empty}
        atoms[c] = ages
        jobs[c] = int(rng.integers(0, spread)) if rng.random() > empty else 0
    rows = []
    for r in LEVELS:
        agg: dict[int, dict[str, int]] = {}
        agg_jobs: dict[int, int] = {}
        for c, ages in atoms.items():
            p = h3.str_to_int(h3.cell_to_parent(h3.int_to_str(c), r))
            slot = agg.setdefault(p, {})
            for b, v in ages.items():
                slot[b] = slot.get(b, 0) + v
            agg_jobs[p] = agg_jobs.get(p, 0) + jobs[c]
        for p in sorted(agg):
            ages = agg[p]
            pop = sum(ages.values())
            eld = sum(v for b, v in ages.items() if b in ELDERLY_BANDS)
            if pop or agg_jobs[p]:
                rows.append((r, p, pop, eld, agg_jobs[p], ages or None))
    return rows


def hidden_of(fn, rows, k):
    res, cells, pop, eld, jobs, by_age = zip(*rows, strict=True)
    counts = {"population": pop, "elderly": eld, "jobs": jobs}
    return fn(res, cells, counts, by_age, k=k)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [3, 5, 10])
def test_cell_hidden_fields_equals_the_reference(seed: int, k: int) -> None:
    rows = synthetic_rows(seed, n_fine=60 + 20 * seed, spread=3 * k, empty=0.3)
    want = hidden_of(reference.cell_hidden_fields, rows, k)
    got = hidden_of(cell_hidden_fields, rows, k)
    assert sum(map(len, want)) > 0, "the case must hide something"
    assert got == want


@pytest.mark.parametrize("seed", range(6))
def test_suppress_equals_the_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    base = h3.latlng_to_cell(31.2, 121.4, 8)
    fine = sorted(h3.cell_to_children(base, 10))
    cells, keys, values = [], [], []
    for i in rng.choice(len(fine), size=30, replace=False).tolist():
        for b in BANDS:
            v = int(rng.integers(0, 16))
            if v:
                cells.append(h3.str_to_int(fine[i]))
                keys.append(b)
                values.append(v)
    fields = {"population": None, "elderly": ["60-74", "75+"], **{f"b.{b}": [b] for b in BANDS}}
    kw = {"resolutions": [8, 9, 10], "fields": fields, "k": 10}
    want = reference.suppress(cells, keys, values, **kw)
    got = suppress(cells, keys, values, **kw)
    assert (got.cells, got.totals, got.rounds, got.extra) == (
        want.cells,
        want.totals,
        want.rounds,
        want.extra,
    )


@pytest.mark.parametrize("seed", range(10))
def test_complementary_suppression_equals_the_reference(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    n = 300
    values = rng.integers(0, 25, size=n)
    groups = []
    for _ in range(120):
        members = rng.choice(n, size=int(rng.integers(2, 7)), replace=False).tolist()
        groups.append((members[0], members[1:]))
    want = old_heuristic(values, groups, k=10)
    got = complementary_suppression(values, groups, k=10)
    assert want.sum() > 0
    np.testing.assert_array_equal(got, want)
