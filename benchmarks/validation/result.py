"""What a validation case returns: its errors, the tolerance each is held to, and the curves
the report plots."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Metric:
    """One error (``value``, in ``unit``) and the bound it must stay under, with the reason."""

    value: float
    tolerance: float
    unit: str
    why: str

    @property
    def passed(self) -> bool:
        return bool(np.isfinite(self.value) and abs(self.value) <= self.tolerance)


@dataclass
class CaseResult:
    """A run of one case: its settings, metrics and curves (name -> (x, y) arrays)."""

    case: str
    settings: dict[str, float | str]
    metrics: dict[str, Metric]
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    wall_s: float = 0.0
    steps: int = 0

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.metrics.values())
