"""Ensemble files: members in order, errors naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from twin.runs.ensemblespec import EnsembleSpecError, load, parse


def test_members_are_periods_x_durations_x_perturbations_in_order() -> None:
    spec = parse({
        "return_periods_years": [10, 50], "durations": ["1h", "90min"], "after": "10min",
        "perturbations": {"factors": [0.8, 1.2],
                          "random": {"members": 2, "seed": 5, "sigma": 0.3, "length_m": 200}},
    })  # fmt: skip
    ms = spec.members()
    assert len(ms) == 2 * 2 * 4 and [m.index for m in ms] == list(range(16))
    assert [(m.return_period_years, m.duration_s) for m in ms[:5]] == [(10, 3600)] * 4 + [
        (10, 5400)
    ]
    assert [(m.factor, m.sigma, m.draw) for m in ms[:4]] == [
        (0.8, 0, 0), (1.2, 0, 0), (1.0, 0.3, 0), (1.0, 0.3, 1),
    ]  # fmt: skip
    assert all(m.after_s == 600 and m.seed in (0, 5) for m in ms)


def test_without_perturbations_each_storm_runs_once_as_designed() -> None:
    ms = parse({"return_periods_years": [5], "durations": [3600]}).members()
    assert len(ms) == 1 and ms[0].factor == 1.0 and ms[0].sigma == 0 and ms[0].after_s == 1800


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"durations": ["1h"]}, "return_periods_years"),
        ({"return_periods_years": [0], "durations": ["1h"]}, "return_periods_years"),
        ({"return_periods_years": [5], "durations": ["soon"]}, "durations"),
        ({"return_periods_years": [5], "durations": ["1h"], "perturbations": {"factors": [-1]}},
         "perturbations.factors"),
        ({"return_periods_years": [5], "durations": ["1h"],
          "perturbations": {"random": {"members": 2, "seed": 1, "sigma": 0}}},
         "perturbations.random.sigma"),
        ({"return_periods_years": [5], "durations": ["1h"], "extra": 1}, "extra"),
        ({"return_periods_years": list(range(1, 40)), "durations": ["1h"] * 30}, "members"),
        ({"return_periods_years": [5], "durations": ["3d"]}, "durations"),
    ],
)  # fmt: skip
def test_bad_fields_are_named(doc: dict, field: str, tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(EnsembleSpecError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: ") and field in str(err.value)


def test_a_missing_or_broken_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(EnsembleSpecError, match="cannot read"):
        load(tmp_path / "none.yaml")
    (tmp_path / "x.yaml").write_text("a: [")
    with pytest.raises(EnsembleSpecError, match="not YAML"):
        load(tmp_path / "x.yaml")
    (tmp_path / "y.yaml").write_text("- 1\n")
    with pytest.raises(EnsembleSpecError, match="mapping"):
        load(tmp_path / "y.yaml")
