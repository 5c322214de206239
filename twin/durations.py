"""Durations as people write them on command lines and in rule files: 90s, 15min, 6h, 2d, 1w.

One parser for the CLI options (`--due-in`, `--duration`, `--after`) and the rule files
(`cooldown`, `max_age`), so every place accepts the same spellings.
"""

from __future__ import annotations

import re
from datetime import timedelta

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, bare_seconds: bool = False) -> timedelta:
    """'30s', '90m' or '90min', '6h', '2d', '1w' (case-insensitive) -> timedelta.

    A bare number is seconds when ``bare_seconds``, else refused. ValueError otherwise.
    """
    m = _DURATION.match(text)
    if m is None or (m.group(2) is None and not bare_seconds):
        raise ValueError(f"expected a duration like 90s, 30min, 6h, 2d or 1w, got {text!r}")
    return timedelta(seconds=float(m.group(1)) * _UNIT_S[(m.group(2) or "s").lower()])
