"""Small hand-written SVG charts for reports: no dependencies, no external assets.

Each function returns one self-contained ``<svg>`` element (text escaped, sizes in CSS pixels)
that can be inlined in HTML or saved as an ``.svg`` file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

#: Series colours: this period, the period before, then extra series.
COLOURS = ("#2563eb", "#9ca3af", "#f59e0b", "#10b981", "#ef4444")
FONT = "font-family='system-ui, sans-serif' font-size='12'"


def nice_step(top: float, ticks: int = 5) -> float:
    """A round axis step (1, 2 or 5 times a power of ten) giving about ``ticks`` intervals."""
    if top <= 0:
        return 1.0
    raw = top / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * power:
            return float(m * power)
    return float(10 * power)  # pragma: no cover (the loop always returns)


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    t = escape(title)
    return (
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
        f"viewBox='0 0 {width} {height}' role='img' aria-label='{t}'>"
        f"<title>{t}</title>"
        f"<text x='8' y='18' {FONT} font-weight='bold'>{t}</text>" + "".join(body) + "</svg>"
    )


def _legend(names: Sequence[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        cx = x + i * 160
        out.append(
            f"<rect x='{cx:.1f}' y='{y - 9:.1f}' width='10' height='10' "
            f"fill='{COLOURS[i % len(COLOURS)]}'/>"
        )
        out.append(f"<text x='{cx + 14:.1f}' y='{y:.1f}' {FONT}>{escape(name)}</text>")
    return out


def bar_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    bar: int = 10,
) -> str:
    """Horizontal grouped bars: one row per label, one bar per series.

    Parameters
    ----------
    labels
        Row labels (e.g. event types).
    series
        Series name -> one value per label (e.g. this period, the period before).
    title
        Chart title (also the accessible name).
    unit
        Unit shown after the axis maximum.
    width
        Width of the chart (px); the height follows from the rows.
    bar
        Thickness of one bar (px).
    """
    names = list(series)
    n = max(len(names), 1)
    left, right, top = 180, 60, 46
    row = bar * n + 8
    height = top + row * max(len(labels), 1) + 30
    span = width - left - right
    vmax = max([float(v) for vals in series.values() for v in vals] + [0.0])
    step = nice_step(vmax)
    axis_max = step * max(1, math.ceil(vmax / step)) if vmax > 0 else 1.0
    body = _legend(names, left, 36)
    ticks = round(axis_max / step)
    for i in range(ticks + 1):
        x = left + span * i / ticks
        body.append(
            f"<line x1='{x:.1f}' y1='{top - 4}' x2='{x:.1f}' y2='{height - 26}' stroke='#e5e7eb'/>"
        )
        body.append(
            f"<text x='{x:.1f}' y='{height - 12}' {FONT} text-anchor='middle'>"
            f"{_fmt(step * i)}</text>"
        )
    if unit:
        body.append(
            f"<text x='{width - 4}' y='{height - 12}' {FONT} "
            f"text-anchor='end'>{escape(unit)}</text>"
        )
    for r, label in enumerate(labels):
        y0 = top + r * row
        body.append(
            f"<text x='{left - 6}' y='{y0 + row / 2 + 2:.1f}' {FONT} "
            f"text-anchor='end'>{escape(str(label))}</text>"
        )
        for s, name in enumerate(names):
            v = float(series[name][r])
            w = span * v / axis_max
            y = y0 + 4 + s * bar
            body.append(
                f"<rect x='{left}' y='{y:.1f}' width='{w:.1f}' height='{bar - 1}' "
                f"fill='{COLOURS[s % len(COLOURS)]}'><title>{escape(name)}: {_fmt(v)}"
                f"</title></rect>"
            )
            body.append(
                f"<text x='{left + w + 3:.1f}' y='{y + bar - 2:.1f}' "
                f"font-family='system-ui, sans-serif' font-size='9'>{_fmt(v)}</text>"
            )
    return _svg(width, height, title, body)


def daily_chart(
    days: Sequence[str],
    current: Sequence[float],
    previous: Sequence[float] | None = None,
    *,
    title: str,
    names: tuple[str, str] = ("this period", "period before"),
    width: int = 640,
    height: int = 220,
) -> str:
    """A daily series: bars for this period, a line for the period before (same day index).

    Parameters
    ----------
    days
        Label of each day (e.g. ``2026-11-01``); a few are shown on the axis.
    current
        One value per day of this period.
    previous
        One value per day of the period before, aligned by day index (optional).
    title
        Chart title (also the accessible name).
    names
        Legend names of the bars and the line.
    width, height
        Size of the chart (px).
    """
    left, right, top, bottom = 40, 12, 46, 34
    n = max(len(current), 1)
    span, tall = width - left - right, height - top - bottom
    vmax = max([float(v) for v in current] + [float(v) for v in previous or []] + [0.0])
    step = nice_step(vmax, 4)
    axis_max = step * max(1, math.ceil(vmax / step)) if vmax > 0 else 1.0
    body = _legend(list(names) if previous is not None else [names[0]], left, 36)
    base = top + tall
    for i in range(round(axis_max / step) + 1):
        y = base - tall * (step * i) / axis_max
        body.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{width - right}' y2='{y:.1f}' stroke='#e5e7eb'/>"
        )
        body.append(
            f"<text x='{left - 4}' y='{y + 4:.1f}' {FONT} text-anchor='end'>{_fmt(step * i)}</text>"
        )
    slot = span / n
    for i, v in enumerate(current):
        h = tall * float(v) / axis_max
        x = left + i * slot + slot * 0.15
        label = escape(days[i]) if i < len(days) else str(i)
        body.append(
            f"<rect x='{x:.1f}' y='{base - h:.1f}' width='{slot * 0.7:.1f}' height='{h:.1f}' "
            f"fill='{COLOURS[0]}'><title>{label}: {_fmt(float(v))}</title></rect>"
        )
    every = max(1, math.ceil(n / 6))
    for i in range(0, len(days), every):
        x = left + (i + 0.5) * slot
        body.append(
            f"<text x='{x:.1f}' y='{height - 14}' {FONT} "
            f"text-anchor='middle'>{escape(days[i])}</text>"
        )
    if previous is not None and len(previous):
        pts = " ".join(
            f"{left + (i + 0.5) * slot:.1f},{base - tall * float(v) / axis_max:.1f}"
            for i, v in enumerate(previous)
        )
        body.append(
            f"<polyline points='{pts}' fill='none' stroke='{COLOURS[1]}' stroke-width='2'/>"
        )
    return _svg(width, height, title, body)


def line_chart(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    *,
    title: str,
    unit: str = "",
    width: int = 640,
    height: int = 240,
) -> str:
    """Lines over a common time axis, one per series (a gap where a value is None).

    Parameters
    ----------
    labels
        Label of each step (e.g. ``08:05``); a few are shown on the axis.
    series
        Series name -> one value (or None) per label.
    title
        Chart title (also the accessible name).
    unit
        Unit of the values, shown above the axis.
    width, height
        Size of the chart (px).
    """
    left, right, top, bottom = 48, 12, 46, 34
    n = max(len(labels), 1)
    span, tall = width - left - right, height - top - bottom
    vals = [float(v) for vs in series.values() for v in vs if v is not None]
    vmax = max([*vals, 0.0])
    step = nice_step(vmax, 4)
    axis_max = step * max(1, math.ceil(vmax / step)) if vmax > 0 else 1.0
    body = _legend(list(series), left, 36)
    base = top + tall
    for i in range(round(axis_max / step) + 1):
        y = base - tall * (step * i) / axis_max
        body.append(
            f"<line x1='{left}' y1='{y:.1f}' x2='{width - right}' y2='{y:.1f}' stroke='#e5e7eb'/>"
        )
        body.append(
            f"<text x='{left - 4}' y='{y + 4:.1f}' {FONT} text-anchor='end'>{_fmt(step * i)}</text>"
        )
    if unit:
        body.append(
            f"<text x='{left - 4}' y='{top - 10}' {FONT} text-anchor='end'>{escape(unit)}</text>"
        )
    slot = span / n
    every = max(1, math.ceil(n / 6))
    for i in range(0, len(labels), every):
        x = left + (i + 0.5) * slot
        body.append(
            f"<text x='{x:.1f}' y='{height - 14}' {FONT} "
            f"text-anchor='middle'>{escape(labels[i])}</text>"
        )
    for s, (name, values) in enumerate(series.items()):
        colour = COLOURS[s % len(COLOURS)]
        run: list[str] = []
        runs: list[list[str]] = [run]
        for i, v in enumerate(values):
            if v is None:
                run = []
                runs.append(run)
                continue
            x, y = left + (i + 0.5) * slot, base - tall * float(v) / axis_max
            run.append(f"{x:.1f},{y:.1f}")
            body.append(
                f"<circle cx='{x:.1f}' cy='{y:.1f}' r='2' fill='{colour}'>"
                f"<title>{escape(name)} {escape(labels[i])}: {_fmt(float(v))}</title></circle>"
            )
        for pts in runs:
            if len(pts) > 1:
                body.append(
                    f"<polyline points='{' '.join(pts)}' fill='none' stroke='{colour}' "
                    "stroke-width='2'/>"
                )
    return _svg(width, height, title, body)
