"""The suppression model (twin.access.suppression) against an independent rank test: after it, no
hidden count is the value of a linear combination of the published ones."""

from __future__ import annotations

import h3
import numpy as np
import pytest

from twin.access.suppression import coarsen, suppress

BANDS = ["0-14", "15-59", "60-74", "75+"]
FIELDS = {"population": None, "elderly": ["60-74", "75+"], **{f"band.{b}": [b] for b in BANDS}}
RES = [8, 9, 10]


def published_rows(cells, keys, values, result, fields, resolutions):
    """(vector over atoms, hidden?) for every node, built with h3 directly."""
    atoms = list(zip(cells, keys, strict=True))
    out = []
    for name, want in fields.items():
        member = [want is None or kk in want for _, kk in atoms]
        if not any(member):
            continue
        for r in resolutions:
            groups: dict[str, list[int]] = {}
            for i, (c, _) in enumerate(atoms):
                if member[i]:
                    groups.setdefault(h3.cell_to_parent(h3.int_to_str(c), r), []).append(i)
            for p, idx in groups.items():
                vec = np.zeros(len(atoms))
                vec[idx] = 1
                val = sum(values[i] for i in idx)
                out.append((vec, result.hidden(name, r, h3.str_to_int(p)), val))
        vec = np.array(member, dtype=float)
        out.append((vec, result.totals[name], vec @ np.asarray(values)))
    return out


def pinned(rows):
    """Hidden non-zero nodes whose vector lies in the row space of the published ones."""
    pub = np.array([v for v, h, _ in rows if not h])
    rank = np.linalg.matrix_rank(pub) if len(pub) else 0
    bad = []
    for v, h, val in rows:
        if h and val > 0:
            both = np.vstack([pub, v]) if len(pub) else v[None]
            if np.linalg.matrix_rank(both) == rank:
                bad.append(val)
    return bad


def city(seed: int, n: int, spread: int):
    rng = np.random.default_rng(seed)
    base = h3.latlng_to_cell(31.2, 121.4, 8)
    fine = sorted(h3.cell_to_children(base, 10))
    cells, keys, values = [], [], []
    for c in rng.choice(fine, size=n, replace=False):
        for b in BANDS:
            v = int(rng.integers(0, spread))
            if v:
                cells.append(h3.str_to_int(c))
                keys.append(b)
                values.append(v)
    return cells, keys, values


def test_parent_minus_children_is_protected() -> None:
    # The case: a parent of 403, children 125, 269, 0 and one of 9.
    p = h3.latlng_to_cell(31.2, 121.4, 9)
    kids = sorted(h3.cell_to_children(p, 10))
    vals = [125, 269, 0, 9, 0, 0, 0]
    cells = [h3.str_to_int(c) for c in kids]
    res = suppress(cells, ["a"] * 7, vals, resolutions=[9, 10], fields={"n": None}, k=10)
    assert h3.str_to_int(kids[3]) in res.cells["n"][10]
    assert res.cells["n"][10] - {h3.str_to_int(kids[3])}, "a second child must be hidden"
    rows = published_rows(cells, ["a"] * 7, vals, res, {"n": None}, [9, 10])
    assert pinned(rows) == []


def test_fields_of_one_cell() -> None:
    # elderly = 60-74 + 75+ shown with 75+: the hidden 60-74 band would be 35 - 30 = 5.
    c = h3.str_to_int(h3.latlng_to_cell(31.2, 121.4, 10))
    keys, vals = BANDS, [4, 20, 5, 30]
    res = suppress([c] * 4, keys, vals, resolutions=[10], fields=FIELDS, k=10)
    rows = published_rows([c] * 4, keys, vals, res, FIELDS, [10])
    assert pinned(rows) == []
    assert res.hidden("band.60-74", 10, c) and res.hidden("band.0-14", 10, c)


@pytest.mark.parametrize("seed", range(6))
def test_random_sparse_cities_have_no_pinned_count(seed: int) -> None:
    cells, keys, values = city(seed, n=25, spread=14)
    res = suppress(cells, keys, values, resolutions=RES, fields=FIELDS, k=10)
    rows = published_rows(cells, keys, values, res, FIELDS, RES)
    assert any(h for _, h, _ in rows), "the case must hide something"
    assert pinned(rows) == []


def test_without_the_audit_the_attack_succeeds() -> None:
    # The check can fail: publishing everything >= k pins hidden counts in these cities.
    cells, keys, values = city(1, n=25, spread=14)
    primary = suppress(cells, keys, values, resolutions=RES, fields=FIELDS, k=1)
    for name in FIELDS:  # primary suppression only: hide 1..9 in every node
        for r in RES:
            primary.cells[name][r] = set()
    rows = published_rows(cells, keys, values, primary, FIELDS, RES)
    rows = [(v, 0 < val < 10, val) for v, _, val in rows]
    assert pinned(rows), "primary suppression alone leaks in this case"


def test_coarsen() -> None:
    assert [coarsen(v, 10) for v in (None, 0, 3, 10, 14, 15, 403)] == [
        None,
        0,
        None,
        10,
        10,
        20,
        400,
    ]


def test_the_bounded_fallback_leaves_nothing_pinned() -> None:
    # One repair round only: what is still pinned is hidden with everything touching it.
    cells, keys, values = city(0, n=25, spread=14)
    res = suppress(cells, keys, values, resolutions=RES, fields=FIELDS, k=10, max_rounds=1)
    assert res.rounds == 1
    assert pinned(published_rows(cells, keys, values, res, FIELDS, RES)) == []
