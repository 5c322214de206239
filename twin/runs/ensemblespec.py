"""The ensemble file of ``twin simulate flood --ensemble SPEC.yaml``: storms x perturbations.

::

    return_periods_years: [10, 50]     # Chicago design storms (Beijing zone I formula)
    durations: [1h, 2h]                # 2h, 90min, 3600s
    after: 30min                       # simulated time after the rain stops
    peak_ratio: 0.4
    dtype: float64
    perturbations:
      factors: [0.8, 1.0, 1.2]         # the rain times each factor, uniform
      random:                          # and/or seeded log-normal fields with mean 1
        members: 4
        seed: 7
        sigma: 0.3                     # standard deviation of log(factor)
        length_m: 300                  # size of the rain cells

Members are every return period x every duration x every perturbation (factors first, then the
random draws 0..members-1), numbered in that order. Errors name the file and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from twin import durations
from twin.sim.ensemble import Member

MAX_MEMBERS = 1000


class EnsembleSpecError(ValueError):
    """An ensemble file that cannot run; names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RandomSpec(_Model):
    members: int = Field(gt=0)
    seed: int = Field(ge=0)
    sigma: float = Field(gt=0, le=2)
    length_m: float = Field(0.0, ge=0)


class PerturbationSpec(_Model):
    factors: list[float] = []
    random: RandomSpec | None = None

    @field_validator("factors")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(not (f > 0) for f in v):
            raise ValueError("factors must all be > 0")
        return v


def _seconds(text: str | float) -> float:
    try:
        return durations.parse_duration(str(text), bare_seconds=True).total_seconds()
    except ValueError:
        raise ValueError(f"{text!r}: use e.g. 2h, 90min or 3600s") from None


class EnsembleSpec(_Model):
    return_periods_years: list[float] = Field(min_length=1)
    durations: list[str | float] = Field(min_length=1)
    after: str | float = "30min"
    peak_ratio: float = Field(0.4, gt=0, lt=1)
    dtype: str = Field("float64", pattern="^(float64|float32)$")
    perturbations: PerturbationSpec = PerturbationSpec(factors=[1.0])

    @field_validator("return_periods_years")
    @classmethod
    def _periods(cls, v: list[float]) -> list[float]:
        if any(not (p > 0) for p in v):
            raise ValueError("return periods must all be > 0")
        return v

    @field_validator("durations")
    @classmethod
    def _durations(cls, v: list[str | float]) -> list[str | float]:
        for d in v:
            if not _seconds(d) > 0:
                raise ValueError(f"{d!r}: durations must be positive")
        return v

    @field_validator("after")
    @classmethod
    def _after(cls, v: str | float) -> str | float:
        if _seconds(v) < 0:
            raise ValueError("after must not be negative")
        return v

    def members(self) -> list[Member]:
        """Every return period x duration x perturbation, numbered in that order."""
        perturbations: list[dict[str, Any]] = [{"factor": f} for f in self.perturbations.factors]
        rnd = self.perturbations.random
        if rnd is not None:
            perturbations += [
                {"seed": rnd.seed, "draw": k, "sigma": rnd.sigma, "length_m": rnd.length_m}
                for k in range(rnd.members)
            ]
        if not perturbations:
            perturbations = [{"factor": 1.0}]
        after = _seconds(self.after)
        out: list[Member] = []
        for period in self.return_periods_years:
            for duration in self.durations:
                for p in perturbations:
                    out.append(
                        Member(
                            index=len(out), return_period_years=period,
                            duration_s=_seconds(duration), after_s=after,
                            peak_ratio=self.peak_ratio, dtype=self.dtype, **p,
                        )
                    )  # fmt: skip
        return out


def parse(doc: Any, source: str = "ensemble") -> EnsembleSpec:
    """The spec of a parsed YAML document; ``source`` names it in errors."""
    if not isinstance(doc, dict):
        raise EnsembleSpecError(f"{source}: expected a mapping of fields")
    try:
        spec = EnsembleSpec.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top)"
        raise EnsembleSpecError(f"{source}: {where}: {err['msg']}") from None
    n = len(spec.members())
    if n > MAX_MEMBERS:
        raise EnsembleSpecError(f"{source}: the ensemble has {n} members, at most {MAX_MEMBERS}")
    if max(_seconds(d) for d in spec.durations) + _seconds(spec.after) > 3 * 86400:
        raise EnsembleSpecError(f"{source}: durations: runs are limited to three days")
    return spec


def load(path: Path) -> EnsembleSpec:
    """Read and check an ensemble file."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise EnsembleSpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise EnsembleSpecError(f"{path}: not YAML: {exc}") from None
    return parse(doc, str(path))
