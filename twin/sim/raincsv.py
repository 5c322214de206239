"""Rain tables as people write them: a time column and an intensity or a depth per step.

Headers are matched after normalising them (lower case; spaces, brackets and ``/`` become
``_``), so ``Time (min)``, ``time [min]`` and ``time_min`` are the same column. Accepted:

* time: ``time_s``/``seconds``/``t_s`` (s), ``time_min``/``minutes``/``t_min`` (min),
  ``time_h``/``hours``/``t_h`` (h), or ``timestamp``/``datetime``/``date``/``time`` holding
  ISO 8601 date-times (taken relative to the first row);
* value: an intensity in ``mm/h`` (``intensity_mm_h``, ``rain (mm/h)``, ``mm/h``) or
  ``mm/min``, or a depth per step in ``mm`` (``depth_mm``, ``rain_mm``, ``precipitation (mm)``).

An intensity row holds until the next row's time (step blocks; the last row ends the series,
as in the twin's own ``time_s,intensity_mm_h`` form). A depth row is the rain of the interval
that starts at its time and ends at the next row's; the last row's interval is as long as the
one before it. Depths become intensities over their interval, so the series' integral is the
table's total depth exactly.
"""

from __future__ import annotations

import csv
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from twin.sim.rain import Series

#: Normalised time headers -> seconds per unit (None: ISO date-times).
TIME_COLUMNS: dict[str, float | None] = {
    **dict.fromkeys(("time_s", "t_s", "seconds", "time_sec", "elapsed_s", "s"), 1.0),
    **dict.fromkeys(("time_min", "t_min", "minutes", "elapsed_min", "min"), 60.0),
    **dict.fromkeys(("time_h", "t_h", "hours", "elapsed_h", "h"), 3600.0),
    **dict.fromkeys(("timestamp", "datetime", "date_time", "date", "time"), None),
}
#: Header endings for values -> (kind, mm/h per unit for intensities).
VALUE_UNITS = (
    ("mm_h", "intensity", 1.0),
    ("mm_hr", "intensity", 1.0),
    ("mm_per_h", "intensity", 1.0),
    ("mm_min", "intensity", 60.0),
    ("mm_per_min", "intensity", 60.0),
    ("mm", "depth", 1.0),
)
MM_H = 1 / 3_600_000  # m/s per mm/h


def normalise(header: str) -> str:
    """``'Rain (mm/h)'`` -> ``'rain_mm_h'``."""
    h = re.sub(r"[\s()\[\]/\\-]+", "_", header.strip().lower())
    return re.sub(r"_+", "_", h).strip("_")


def _value_kind(name: str) -> tuple[str, float] | None:
    for unit, kind, factor in VALUE_UNITS:
        if name == unit or name.endswith("_" + unit):
            return kind, factor
    return None


def accepted() -> str:
    """The accepted headers, for error messages."""
    return (
        "time: time_s | time_min | time_h | timestamp (ISO date-times); value: an intensity "
        "in mm/h (intensity_mm_h, 'rain (mm/h)') or mm/min, or a depth per step in mm "
        "(depth_mm, 'precipitation (mm)')"
    )


def read_rain_csv(path: Path) -> Series:
    """A rain table as a step series of intensities (m/s) from time 0 (s).

    Raises ValueError naming the file, and the line or the headers, when the table cannot be
    read: no file, no matching time or value column (the accepted headers are listed), a field
    that is not a number or a date-time, a negative value, times that do not increase.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        rows = [(n, r) for n, r in enumerate(reader, start=2) if any(f.strip() for f in r)]
    if not header:
        raise ValueError(f"{path}: empty file; the header needs {accepted()}")
    names = [normalise(h) for h in header]
    t_idx = next((i for i, n in enumerate(names) if n in TIME_COLUMNS), None)
    v_idx = next((i for i, n in enumerate(names) if i != t_idx and _value_kind(n)), None)
    if t_idx is None or v_idx is None:
        missing = "time" if t_idx is None else "value"
        raise ValueError(
            f"{path}: no {missing} column among {', '.join(map(repr, header))}; accepted "
            f"headers: {accepted()}"
        )
    unit = TIME_COLUMNS[names[t_idx]]
    kind, factor = _value_kind(names[v_idx]) or ("intensity", 1.0)
    times: list[float] = []
    values: list[float] = []
    first: datetime | None = None
    for line, row in rows:
        try:
            raw_t, raw_v = row[t_idx].strip(), row[v_idx].strip()
        except IndexError:
            raise ValueError(f"{path} line {line}: too few fields") from None
        if unit is None:
            try:
                stamp = datetime.fromisoformat(raw_t)
            except ValueError:
                raise ValueError(
                    f"{path} line {line}: {header[t_idx]!r} is {raw_t!r}, not an ISO date-time; "
                    "a column of numbers needs its unit in the header (time_s, time_min, time_h)"
                ) from None
            if first is None:
                first = stamp
            if (stamp.tzinfo is None) != (first.tzinfo is None):
                raise ValueError(f"{path} line {line}: mixes date-times with and without zones")
            t = (stamp - first).total_seconds()
        else:
            try:
                t = float(raw_t) * unit
            except ValueError:
                raise ValueError(f"{path} line {line}: {header[t_idx]!r} is not a number") from None
        try:
            v = float(raw_v)
        except ValueError:
            raise ValueError(f"{path} line {line}: {header[v_idx]!r} is not a number") from None
        if not v >= 0:
            raise ValueError(f"{path} line {line}: negative {header[v_idx]!r} (must be >= 0)")
        times.append(t)
        values.append(v)
    if not times:
        raise ValueError(f"{path}: no rows")
    t_arr = np.array(times)  # numbers keep their origin (rain may start late); stamps: first
    v_arr = np.array(values)
    if np.any(np.diff(t_arr) <= 0):
        bad = int(np.flatnonzero(np.diff(t_arr) <= 0)[0])
        raise ValueError(f"{path} line {rows[bad + 1][0]}: times must increase")
    if kind == "intensity":
        return Series(t_arr, v_arr * factor * MM_H, "step")
    if len(t_arr) == 1:
        raise ValueError(f"{path}: a depth per step needs at least two rows (the step length)")
    # Depth of [t_k, t_k+1): intensity = depth / length; the last interval repeats the one
    # before it, and the series ends (0) after it.
    dt = np.diff(t_arr)
    dt = np.append(dt, dt[-1])
    intensity_m_s = v_arr / 1000.0 / dt
    return Series(np.append(t_arr, t_arr[-1] + dt[-1]), np.append(intensity_m_s, 0.0), "step")
