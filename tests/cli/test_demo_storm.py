"""``twin demo``'s storm: the large city's runs in float32 (BENCHMARKS.md, City scale), every
other size in float64."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from twin.runs import flood as flood_runs
from twin.settings import Settings

# The module (twin.cli re-exports the command function under the same name).
demo = importlib.import_module("twin.cli.demo")


class _Progress:
    def add_task(self, *_: Any, **__: Any) -> int:
        return 0

    def update(self, *_: Any, **__: Any) -> None:
        pass


@pytest.mark.parametrize(("size", "dtype"), [("large", "float32"), ("medium", "float64"),
                                             ("tiny", "float64")])  # fmt: skip
def test_demo_storm_precision_by_size(
    monkeypatch: pytest.MonkeyPatch, size: str, dtype: str
) -> None:
    seen: list[flood_runs.FloodParams] = []

    def run_flood(settings: Settings, params: flood_runs.FloodParams, **_: Any) -> dict[str, Any]:
        seen.append(params)
        return {"run_id": 1}

    monkeypatch.setattr(flood_runs, "run_flood", run_flood)
    out = demo._demo_storm(Settings(_env_file=None), _Progress(), 50.0, "1h", size)
    assert out == {"run_id": 1}
    assert [p.dtype for p in seen] == [dtype]
    assert seen[0].return_period_years == 50.0 and seen[0].duration_s == 3600.0
    assert demo._demo_storm(Settings(_env_file=None), _Progress(), 0.0, "1h", size) is None
