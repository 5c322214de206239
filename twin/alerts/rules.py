"""Alert rules: one TOML file per rule in ``rules/``.

A rule names an indicator (a measured or simulated value per subject: a cell, a sensor, the
city), a comparison with a threshold, the admin level the alert goes to, its colour, its
sensitivity (how many evaluations in a row the condition must hold before the alert is raised),
a cooldown (after an alert is resolved, the same subject stays quiet this long) and an
escalation step (every N further hits move the alert one level up the admin hierarchy and one
colour up). Errors name the file and the field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from twin.alerts.indicators import INDICATORS
from twin.durations import parse_duration
from twin.risk.catalog import LEVELS
from twin.risk.specfile import SpecFileError, read_toml, require

AREA_LEVELS = ("city", "district", "street", "community", "grid")
OPS = (">", ">=", "<", "<=")
DISPATCH = ("none", "auto")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class RuleError(SpecFileError):
    """A rule file is malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    title_zh: str
    indicator: str
    threshold: float
    op: str = ">="
    area_level: str = "grid"
    level: str = "yellow"
    sensitivity: int = 1
    cooldown: timedelta = timedelta(hours=6)
    escalate_after: int | None = None
    auto_resolve: bool = True
    params: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    # "auto": each alert this rule raises gets a task dispatched to the alert's area at once
    # (twin.alerts.watch, as readings arrive); "none": people dispatch.
    dispatch: str = "none"

    def holds(self, value: float) -> bool:
        """Whether ``value`` crosses the threshold."""
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
        }[self.op]

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "title": self.title, "title_zh": self.title_zh,
            "indicator": self.indicator, "unit": INDICATORS[self.indicator].unit,
            "op": self.op, "threshold": self.threshold, "area_level": self.area_level,
            "level": self.level, "sensitivity": self.sensitivity,
            "cooldown_s": self.cooldown.total_seconds(), "escalate_after": self.escalate_after,
            "auto_resolve": self.auto_resolve, "params": self.params, "dispatch": self.dispatch,
        }  # fmt: skip


def _req(doc: dict[str, Any], key: str, kind: type | tuple[type, ...], path: Path) -> Any:
    return require(doc, key, kind, path, RuleError)


def read_rule(path: Path) -> Rule:
    """Read and check one rule file."""
    doc = read_toml(path, RuleError)
    rule_id = _req(doc, "id", str, path)
    if not _ID.match(rule_id) or rule_id != path.stem:
        raise RuleError(path, "id", f"lower_snake_case and equal to the file name, got {rule_id!r}")
    indicator = _req(doc, "indicator", str, path)
    if indicator not in INDICATORS:
        raise RuleError(path, "indicator", f"one of {sorted(INDICATORS)}, got {indicator!r}")
    spec = INDICATORS[indicator]
    raw_threshold = _req(doc, "threshold", (int, float, str), path)
    if isinstance(raw_threshold, str):
        # Levels read naturally as thresholds of the risk_level indicator: "red" = 4.
        if indicator != "risk_level" or raw_threshold not in LEVELS:
            raise RuleError(path, "threshold", f"expected a number, got {raw_threshold!r}")
        threshold = float(LEVELS.index(raw_threshold) + 1)
    else:
        threshold = float(raw_threshold)
    op = doc.get("op", ">=")
    if op not in OPS:
        raise RuleError(path, "op", f"one of {OPS}, got {op!r}")
    area_level = doc.get("area_level", "grid")
    if area_level not in AREA_LEVELS:
        raise RuleError(path, "area_level", f"one of {AREA_LEVELS}, got {area_level!r}")
    level = doc.get("level", "yellow")
    if level not in LEVELS:
        raise RuleError(path, "level", f"one of {LEVELS}, got {level!r}")
    sensitivity = doc.get("sensitivity", 1)
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int) or sensitivity < 1:
        raise RuleError(path, "sensitivity", f"an integer >= 1, got {sensitivity!r}")
    escalate = doc.get("escalate_after")
    if escalate is not None and (
        isinstance(escalate, bool) or not isinstance(escalate, int) or escalate < 1
    ):
        raise RuleError(path, "escalate_after", f"an integer >= 1, got {escalate!r}")
    try:
        cooldown = parse_duration(str(doc.get("cooldown", "6h")))
    except ValueError as exc:
        raise RuleError(path, "cooldown", str(exc)) from None
    auto = doc.get("auto_resolve", True)
    if not isinstance(auto, bool):
        raise RuleError(path, "auto_resolve", f"true or false, got {auto!r}")
    dispatch = doc.get("dispatch", "none")
    if dispatch not in DISPATCH:
        raise RuleError(path, "dispatch", f"one of {DISPATCH}, got {dispatch!r}")
    params = doc.get("params", {})
    if not isinstance(params, dict):
        raise RuleError(path, "params", "expected a table")
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise RuleError(
            path,
            f"params.{unknown[0]}",
            f"indicator {indicator!r} takes {sorted(spec.params) or 'none'}",
        )
    try:
        merged = spec.check_params({**spec.params, **params})
    except ValueError as exc:
        raise RuleError(path, "params", str(exc)) from None
    return Rule(
        id=rule_id, title=_req(doc, "title", str, path), title_zh=str(doc.get("title_zh", "")),
        indicator=indicator, threshold=threshold, op=op, area_level=area_level, level=level,
        sensitivity=sensitivity, cooldown=cooldown, escalate_after=escalate, auto_resolve=auto,
        params=merged, path=str(path), dispatch=dispatch,
    )  # fmt: skip


def load_rules(directory: Path) -> tuple[list[Rule], list[RuleError]]:
    """Every ``*.toml`` rule of ``directory`` (sorted by name) and the errors of broken files."""
    rules: list[Rule] = []
    errors: list[RuleError] = []
    for f in sorted(directory.glob("*.toml")) if directory.is_dir() else []:
        try:
            rules.append(read_rule(f))
        except RuleError as exc:
            errors.append(exc)
    return rules, errors
