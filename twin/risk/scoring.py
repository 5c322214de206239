"""Per-cell risk scoring: normalise each input to 0..1, weight, sum to a 0-100 score, colour it.

Pure functions on arrays and frames; the compute step reads the inputs from the model and writes
what these return. Every formula is simple enough to check by hand:

- ``linear``: ``clip((x - min) / (max - min), 0, 1)``
- ``log``: ``clip(ln(1 + max(x - min, 0)) / ln(1 + max - min), 0, 1)``: counts whose first
  few matter most (one fire in a year against none says more than 11 against 10).
- ``quantile``: the share of the layer's cells with a value strictly below ``x`` (0 for
  ``x <= 0``): relative risk, for inputs without a natural scale such as traffic volume.
- ``step``: the share of the ``steps`` thresholds that ``x`` reaches.

A missing input (NULL: no data in that cell) counts as 0. The score is
``100 * sum(w_i * n_i) / sum(w_i)``; the level is red, orange or yellow from the layer's
thresholds (score >= threshold), else blue.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from twin.grid import to_hex
from twin.risk.catalog import LEVELS, Input, Layer

FloatArray = npt.NDArray[np.float64]


def normalise(values: npt.ArrayLike, spec: Input) -> FloatArray:
    """Map raw input values to 0..1 as the input's ``normalise`` method says.

    Parameters
    ----------
    values
        Raw values, one per cell (NaN where the cell has no data; it maps to 0).
    spec
        The input's declaration (method, min, max, steps).

    Returns
    -------
    Normalised values in [0, 1].
    """
    x = np.asarray(values, dtype=np.float64)
    x = np.where(np.isnan(x), 0.0, x)
    if spec.normalise == "linear":
        out = (x - spec.min) / (spec.max - spec.min)
    elif spec.normalise == "log":
        out = np.log1p(np.maximum(x - spec.min, 0.0)) / np.log1p(spec.max - spec.min)
    elif spec.normalise == "quantile":
        # Share strictly below: ties share the lower rank, so equal values score equally.
        ordered = np.sort(x)
        below = np.searchsorted(ordered, x, side="left")
        out = np.where(x > 0, below / max(len(x) - 1, 1), 0.0)
    elif spec.normalise == "step":
        steps = np.asarray(spec.steps, dtype=np.float64)
        out = np.searchsorted(steps, x, side="right") / len(steps)
    else:  # the catalog refuses other names; this keeps the function total
        raise ValueError(f"unknown normalisation {spec.normalise!r}")
    return np.clip(out, 0.0, 1.0)


def level_of(scores: npt.ArrayLike, levels: dict[str, float]) -> npt.NDArray[np.object_]:
    """Four-colour level per score (0-100) from the yellow, orange and red thresholds."""
    s = np.asarray(scores, dtype=np.float64)
    idx = (
        (s >= levels["yellow"]).astype(int)
        + (s >= levels["orange"]).astype(int)
        + (s >= levels["red"]).astype(int)
    )
    return np.asarray(LEVELS, dtype=object)[idx]


def score_layer(inputs: pd.DataFrame, layer: Layer, *, k: int) -> pd.DataFrame:
    """Score every cell of a layer.

    Parameters
    ----------
    inputs
        One row per cell: column ``cell`` (int64 H3 id) and one column per declared input.
    layer
        The layer declaration.
    k
        Suppression threshold: a cell where a people-count input is 1..k-1 is flagged
        ``small_count`` (its score would reveal a small count, so the public does not see it).

    Returns
    -------
    Columns ``cell``, ``score`` (0-100), ``level``, ``components`` (per input: raw value,
    normalised value and the points it adds to the score) and ``small_count``; only cells
    with a positive score (a cell with no risk is not a blue cell, it is no cell).
    """
    total_w = sum(i.weight for i in layer.inputs)
    n = len(inputs)
    score = np.zeros(n)
    small = np.zeros(n, dtype=bool)
    parts: dict[str, tuple[FloatArray, FloatArray, FloatArray]] = {}
    for spec in layer.inputs:
        raw = pd.to_numeric(inputs[spec.name], errors="coerce").to_numpy(dtype=np.float64)
        norm = normalise(raw, spec)
        points = 100.0 * spec.weight * norm / total_w
        score += points
        parts[spec.name] = (raw, norm, points)
        if spec.people:
            small |= (raw >= 1) & (raw < k)
    keep = score > 0
    names = list(parts)
    columns = []  # per input, per kept cell: its component
    for raw, norm, points in parts.values():
        columns.append([
            {"value": None if v != v else v, "norm": round(n, 6), "points": round(p, 4)}
            for v, n, p in zip(
                raw[keep].tolist(), norm[keep].tolist(), points[keep].tolist(), strict=True
            )
        ])  # fmt: skip
    components = [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    kept_scores = np.round(score[keep], 4)
    return pd.DataFrame(
        {
            "cell": inputs["cell"].to_numpy(dtype=np.int64)[keep],
            "score": kept_scores,
            "level": level_of(kept_scores, layer.levels),
            "components": components,
            "small_count": small[keep],
        }
    )


def _ranks(levels: pd.Series) -> npt.NDArray[np.int64]:
    return levels.map({lvl: i for i, lvl in enumerate(LEVELS)}).to_numpy(dtype=np.int64)


def combine(scored: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The one-map index per cell: the highest score and the worst level over the layers.

    Parameters
    ----------
    scored
        Layer id -> the frame :func:`score_layer` returned (same resolution).

    Returns
    -------
    Columns ``cell`` (ascending), ``score``, ``level``, ``components`` (layer id ->
    {score, level, suppressed}), ``small_count`` (true when any layer's cell is).
    """
    frames = [df.assign(layer=lid) for lid, df in scored.items() if len(df)]
    if not frames:
        return pd.DataFrame(columns=["cell", "score", "level", "components", "small_count"])
    allf = pd.concat(frames, ignore_index=True)
    cells = allf["cell"].to_numpy(dtype=np.int64)
    order = np.argsort(cells, kind="stable")  # per cell, the layers in the order given
    cells = cells[order]
    score = allf["score"].to_numpy(dtype=np.float64)[order]
    rank = _ranks(allf["level"])[order]
    small = allf["small_count"].to_numpy(dtype=bool)[order]
    start = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    comps: list[dict[str, Any]] = []
    for lid, sc, lv, sm, first in zip(
        allf["layer"].to_numpy()[order].tolist(), score.tolist(),
        allf["level"].to_numpy()[order].tolist(), small.tolist(),
        np.isin(np.arange(len(cells)), start).tolist(), strict=True,
    ):  # fmt: skip
        if first:
            comps.append({})
        comps[-1][lid] = {"score": sc, "level": lv, "suppressed": sm}
    return pd.DataFrame(
        {
            "cell": cells[start],
            "score": np.maximum.reduceat(score, start),
            "level": np.asarray(LEVELS, dtype=object)[np.maximum.reduceat(rank, start)],
            "components": comps,
            "small_count": np.logical_or.reduceat(small, start),
        }
    )


def roll_up(scored: pd.DataFrame, parents: npt.ArrayLike) -> pd.DataFrame:
    """Scores at a coarser resolution: each parent takes its worst child (max score, worst
    level) and keeps which child and how many cells at each level lie below it.

    Ties are broken by the smaller cell id, so the result does not depend on the row order
    (an incremental refresh patches rows into a frame in another order than a full compute).

    Parameters
    ----------
    scored
        Frame from :func:`score_layer` or :func:`combine`.
    parents
        The parent cell of each row of ``scored`` (int64 H3 ids at the coarser resolution).

    Returns
    -------
    One row per parent (ascending): ``score`` and ``small_count`` of the child with the
    highest score, ``level`` the worst child level, ``components`` {``cells``: level ->
    children, ``worst_child``: hex id of the child with the worst level, then highest score}.
    """
    if not len(scored):
        return scored.iloc[0:0].copy()
    par = np.asarray(parents, dtype=np.int64)
    cells = scored["cell"].to_numpy(dtype=np.int64)
    score = scored["score"].to_numpy(dtype=np.float64)
    rank = _ranks(scored["level"])
    small = scored["small_count"].to_numpy(dtype=bool)
    by_worst = np.lexsort((cells, -score, -rank, par))  # last key first
    by_top = np.lexsort((cells, -score, par))
    sorted_par = par[by_worst]
    start = np.flatnonzero(np.r_[True, sorted_par[1:] != sorted_par[:-1]])
    worst, top = by_worst[start], by_top[start]
    group = np.cumsum(np.r_[True, sorted_par[1:] != sorted_par[:-1]]) - 1
    counts = np.zeros((len(start), len(LEVELS)), dtype=np.int64)
    np.add.at(counts, (group, rank[by_worst]), 1)
    worst_hex = to_hex(cells[worst])
    comps = [
        {"cells": dict(zip(LEVELS, row, strict=True)), "worst_child": w}
        for row, w in zip(counts.tolist(), worst_hex, strict=True)
    ]
    return pd.DataFrame(
        {
            "cell": sorted_par[start],
            "score": score[top],
            "level": np.asarray(LEVELS, dtype=object)[rank[worst]],
            "components": comps,
            "small_count": small[top],
        }
    )
