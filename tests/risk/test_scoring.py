"""Risk scoring on controlled values, against numbers worked out by hand."""

from __future__ import annotations

import math

import h3
import numpy as np
import pandas as pd
import pytest

from twin.risk.catalog import Input, Layer
from twin.risk.scoring import combine, level_of, normalise, roll_up, score_layer

LEVELS = {"yellow": 25.0, "orange": 50.0, "red": 75.0}


def _layer(*inputs: Input) -> Layer:
    return Layer(id="t", title="t", title_zh="t", family="public_safety", sql="SELECT 1",
                 inputs=inputs, levels=LEVELS)  # fmt: skip


def test_linear_clips_to_the_range() -> None:
    spec = Input("x", 1.0, "linear", min=24, max=100)
    assert normalise([10, 24, 62, 100, 150], spec).tolist() == [0, 0, 0.5, 1, 1]


def test_log_against_hand_values() -> None:
    spec = Input("x", 1.0, "log", min=0, max=10)
    got = normalise([0, 1, 10, 20], spec)
    assert got == pytest.approx([0, math.log(2) / math.log(11), 1, 1])


def test_quantile_is_the_share_strictly_below() -> None:
    spec = Input("x", 1.0, "quantile")
    # Sorted: 0, 5, 5, 10, 20 (n = 5, n - 1 = 4). 5 has one value below -> 1/4; 10 -> 3/4.
    got = normalise([5, 0, 10, 5, 20], spec)
    assert got.tolist() == [0.25, 0.0, 0.75, 0.25, 1.0]


def test_step_counts_thresholds_reached_and_nan_is_zero() -> None:
    spec = Input("x", 1.0, "step", steps=(1, 3, 5, 10))
    assert normalise([0, 1, 4, 10, np.nan], spec).tolist() == [0, 0.25, 0.5, 1, 0]


def test_levels_at_the_thresholds() -> None:
    got = level_of([0.1, 24.99, 25, 49.9, 50, 74.9, 75, 100], LEVELS).tolist()
    assert got == ["blue", "blue", "yellow", "yellow", "orange", "orange", "red", "red"]


def test_weighted_score_components_and_small_counts() -> None:
    layer = _layer(
        Input("depth", 3.0, "linear", min=0, max=0.5),
        Input("people", 1.0, "linear", min=0, max=100, people=True),
    )
    df = pd.DataFrame({"cell": [1, 2, 3, 4], "depth": [0.25, 0.5, None, 0.0],
                       "people": [50, 4, 100, 0]})  # fmt: skip
    out = score_layer(df, layer, k=10).set_index("cell")
    # Cell 1: 100 * (3 * 0.5 + 1 * 0.5) / 4 = 50 -> orange. Cell 2: (3 * 1 + 0.04) / 4 = 76
    # -> red, and 4 people < k. Cell 3: no depth, 100 people -> 25 -> yellow. Cell 4: 0 -> dropped.
    assert out.loc[1, "score"] == pytest.approx(50.0)
    assert out.loc[2, "score"] == pytest.approx(76.0)
    assert out.loc[3, "score"] == pytest.approx(25.0)
    assert 4 not in out.index
    assert out["level"].to_dict() == {1: "orange", 2: "red", 3: "yellow"}
    assert out["small_count"].to_dict() == {1: False, 2: True, 3: False}
    c = out.loc[1, "components"]
    assert c["depth"] == {"value": 0.25, "norm": 0.5, "points": 37.5}
    assert c["people"]["points"] == pytest.approx(12.5)
    assert out.loc[3, "components"]["depth"]["value"] is None


def test_combine_takes_the_worst_level_and_the_highest_score() -> None:
    a = pd.DataFrame({"cell": [1, 2], "score": [80.0, 10.0], "level": ["red", "blue"],
                      "components": [{}, {}], "small_count": [False, False]})  # fmt: skip
    # Layer b has its own thresholds: 30 is already orange there.
    b = pd.DataFrame({"cell": [2, 3], "score": [30.0, 5.0], "level": ["orange", "blue"],
                      "components": [{}, {}], "small_count": [True, False]})  # fmt: skip
    out = combine({"a": a, "b": b}).set_index("cell")
    assert out["score"].to_dict() == {1: 80.0, 2: 30.0, 3: 5.0}
    assert out["level"].to_dict() == {1: "red", 2: "orange", 3: "blue"}
    assert out.loc[2, "components"] == {
        "a": {"score": 10.0, "level": "blue", "suppressed": False},
        "b": {"score": 30.0, "level": "orange", "suppressed": True},  # hidden from the public
    }
    assert out["small_count"].to_dict() == {1: False, 2: True, 3: False}


def test_roll_up_keeps_the_worst_child_and_counts() -> None:
    parent = h3.latlng_to_cell(31.2, 121.5, 8)
    kids = sorted(h3.cell_to_children(parent, 9))[:3]
    ints = [h3.str_to_int(c) for c in kids]
    df = pd.DataFrame({"cell": ints, "score": [20.0, 60.0, 55.0],
                       "level": ["blue", "orange", "orange"], "components": [{}, {}, {}],
                       "small_count": [True, False, True]})  # fmt: skip
    out = roll_up(df, [h3.str_to_int(parent)] * 3)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["score"] == 60.0 and row["level"] == "orange"
    assert row["components"]["cells"] == {"blue": 1, "yellow": 0, "orange": 2, "red": 0}
    assert row["components"]["worst_child"] == kids[1]
    # The parent shows the 60 of a child without a small count: nothing to hide.
    assert not row["small_count"]


def test_roll_up_breaks_ties_by_the_smaller_cell_whatever_the_row_order() -> None:
    parent = h3.latlng_to_cell(31.2, 121.5, 8)
    kids = sorted(h3.cell_to_children(parent, 9))[:3]  # hex order is integer order here
    ints = [h3.str_to_int(c) for c in kids]
    df = pd.DataFrame({"cell": ints, "score": [40.0, 40.0, 40.0],
                       "level": ["yellow", "yellow", "yellow"], "components": [{}, {}, {}],
                       "small_count": [True, False, False]})  # fmt: skip
    for order in ([0, 1, 2], [2, 1, 0], [1, 2, 0]):
        out = roll_up(df.iloc[order], [h3.str_to_int(parent)] * 3).iloc[0]
        # Equal level and score: the first cell by id is both the worst and the top child.
        assert out["components"]["worst_child"] == kids[0]
        assert out["small_count"]
