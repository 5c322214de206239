"""Suppression of people counts: primary, and complementary against differencing attacks.

The attacker here is written independently of ``twin.access.privacy``: it knows the published values
and every additive relation (a total is the sum of its parts) and keeps solving any relation
with a single unknown until nothing more comes out, chaining what it learns. Whatever the
suppression hides, it must not recover.
"""

from __future__ import annotations

import numpy as np
import pytest

from twin.access.privacy import complementary_suppression, suppress_count, suppress_stats

K = 10


def differencing_attack(
    shown: dict[object, int | None], relations: list[tuple[object, list[object]]]
) -> dict[object, int]:
    """Values of hidden nodes the attacker works out: {node: value}."""
    known = {n: v for n, v in shown.items() if v is not None}
    learned: dict[object, int] = {}
    progress = True
    while progress:
        progress = False
        for total, parts in relations:
            unknown = [m for m in (total, *parts) if m not in known]
            if len(unknown) != 1:
                continue
            (u,) = unknown
            if u == total:
                value = sum(known[p] for p in parts)
            else:
                value = known[total] - sum(known[p] for p in parts if p != u)
            known[u] = learned[u] = value
            progress = True
    return learned


def small_sums(
    shown: dict[object, int | None], truth: dict[object, int],
    relations: list[tuple[object, list[object]]],
) -> list[tuple[object, int]]:  # fmt: skip
    """Relations whose shown total gives away a small sum of hidden parts (1..k-1)."""
    out = []
    for total, parts in relations:
        if shown[total] is None:
            continue
        rest = sum(truth[p] for p in parts if shown[p] is None)
        if 0 < rest < K:
            out.append((total, rest))
    return out


def publish(values: list[int], hidden: np.ndarray) -> dict[object, int | None]:
    return {i: (None if h else v) for i, (v, h) in enumerate(zip(values, hidden, strict=True))}


def test_one_hidden_child_gets_a_complement() -> None:
    # parent 30 = 3 + 12 + 15: the 3 is hidden, so the smallest other child (12) is too.
    hidden = complementary_suppression([30, 3, 12, 15], [(0, [1, 2, 3])], k=K)
    assert hidden.tolist() == [False, True, True, False]


def test_hidden_children_must_not_add_up_to_a_small_count() -> None:
    # 2 and 3 are both hidden, but 40 - 35 = 5 would still reveal five people between them.
    hidden = complementary_suppression([40, 2, 3, 35], [(0, [1, 2, 3])], k=K)
    assert hidden.tolist() == [False, True, True, True]  # 40 - 0 = 40 hidden between three
    assert not small_sums(publish([40, 2, 3, 35], hidden), dict(enumerate([40, 2, 3, 35])),
                          [(0, [1, 2, 3])])  # fmt: skip


def test_zero_children_are_shown_and_the_parent_hides_instead() -> None:
    # 4 = 4 + 0 + 0: no non-zero sibling can cover the 4, so the parent is hidden with it,
    # and then the grandparent relation needs a second hidden member too.
    values = [24, 4, 20, 4, 0, 0]
    groups = [(0, [1, 2]), (1, [3, 4, 5])]
    hidden = complementary_suppression(values, groups, k=K)
    assert hidden.tolist() == [False, True, True, True, False, False]


def test_a_total_equal_to_its_only_non_zero_part_hides_with_it() -> None:
    # 9 = 9 + 0: total and part are both below k, so both are hidden already, and the zero
    # stays shown (it reveals no one); nothing more is needed.
    hidden = complementary_suppression([9, 9, 0], [(0, [1, 2])], k=K)
    assert hidden.tolist() == [True, True, False]


def test_zero_and_large_counts_pass() -> None:
    assert suppress_count(0, K) == 0
    assert suppress_count(K, K) == K
    assert suppress_count(K - 1, K) is None


def test_stored_marks_hide_fields_and_are_not_published() -> None:
    row = {"population": 500, "elderly": 120, "jobs": 40, "population_by_age": {"0-14": 80},
           "hidden": ["elderly", "population_by_age.0-14"]}  # fmt: skip
    out = suppress_stats(row, K, allowed=False)
    assert out["population"] == 500 and out["elderly"] is None and out["jobs"] == 40
    assert out["population_by_age"] == {"0-14": None}
    assert sorted(out["suppressed"]) == ["elderly", "population_by_age.0-14"]
    assert "hidden" not in out
    assert suppress_stats(row, K, allowed=True)["elderly"] == 120


def random_tree(rng: np.random.Generator) -> tuple[list[int], list[tuple[int, list[int]]]]:
    """A three-level hierarchy with 7 children per node and skewed counts at the leaves."""
    values: list[int] = [0]
    groups: list[tuple[int, list[int]]] = []
    frontier = [0]
    leaves = []
    for depth in range(3):
        nxt = []
        for node in frontier:
            kids = list(range(len(values), len(values) + 7))
            values.extend([0] * 7)
            groups.append((node, kids))
            nxt.extend(kids)
        frontier = nxt
        if depth == 2:
            leaves = nxt
    for leaf in leaves:
        values[leaf] = int(rng.choice([0, 0, 1, 2, 3, 5, 8, 12, 30, 80]))
    for total, parts in reversed(groups):  # deepest relations first
        values[total] = sum(values[p] for p in parts)
    return values, groups


@pytest.mark.parametrize("seed", range(30))
def test_random_hierarchies_resist_the_differencing_attack(seed: int) -> None:
    values, groups = random_tree(np.random.default_rng(seed))
    primary = np.array([0 < v < K for v in values])
    assert primary.any()
    hidden = complementary_suppression(values, groups, k=K)
    assert (hidden >= primary).all()  # never shows what primary suppression hides
    shown = publish(values, hidden)
    assert differencing_attack(shown, groups) == {}
    assert small_sums(shown, dict(enumerate(values)), groups) == []


def test_primary_suppression_alone_falls_to_the_attack() -> None:
    # The attack is real: without complements it recovers hidden counts in these hierarchies.
    recovered = 0
    for seed in range(30):
        values, groups = random_tree(np.random.default_rng(seed))
        primary = np.array([0 < v < K for v in values])
        learned = differencing_attack(publish(values, primary), groups)
        assert all(values[n] == v for n, v in learned.items())  # type: ignore[index]
        recovered += sum(1 for n in learned if primary[n])  # type: ignore[index]
    assert recovered > 0
