"""Rendering of a decision report (:func:`twin.reporting.report.build_report` data) as Markdown and
as one self-contained HTML page (inline CSS and SVG, no external assets).

The report is first laid out as a list of blocks (headings, paragraphs, lists, tables, charts);
each block renders to both formats, so the two files always say the same thing. Charts are
inline ``<svg>`` in the HTML and ``.svg`` files next to the Markdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from twin.reporting import charts
from twin.reporting.figures import OUTLIER_Z, SIBLING_METRICS

HIDDEN = "hidden"
NONE = "\u2013"  # an en dash: no value
CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;
color:#111827;line-height:1.45}
h1{font-size:1.6rem}h2{border-bottom:1px solid #e5e7eb;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.6rem 0}th,td{border:1px solid #e5e7eb;padding:.25rem .5rem}
th{background:#f9fafb;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.subject td{font-weight:bold;background:#eff6ff}.meta{color:#4b5563}figure{margin:1rem 0}
"""


def num(v: Any, digits: int = 0, *, hidden: bool = False) -> str:
    """A number for people: thousands separators, ``digits`` decimals; an en dash for no value
    (``hidden`` when the value is a suppressed people count)."""
    if v is None:
        return HIDDEN if hidden else NONE
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int) and digits == 0:
        return f"{v:,}"
    return f"{float(v):,.{digits}f}"


def plural(n: int, word: str) -> str:
    return f"{num(n)} {word}" + ("" if n == 1 else "s")


def signed(v: Any, digits: int = 0) -> str:
    if v is None:
        return NONE
    return f"{float(v):+,.{digits}f}" if digits else f"{round(v):+,}"


def day(iso: str) -> str:
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M UTC")


@dataclass
class Doc:
    """Blocks of a report: (kind, payload) with kinds h1, h2, h3, p, ul, table, chart."""

    blocks: list[tuple[str, Any]] = field(default_factory=list)
    charts: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, payload: Any) -> None:
        self.blocks.append((kind, payload))

    def table(
        self, headers: Sequence[str], rows: Sequence[Sequence[str]], subject: int | None = None
    ) -> None:
        self.add("table", (list(headers), [list(r) for r in rows], subject))

    def chart(self, name: str, title: str, svg: str) -> None:
        self.charts[name] = svg
        self.add("chart", (name, title))

    def markdown(self) -> str:
        out: list[str] = []
        for kind, p in self.blocks:
            if kind in ("h1", "h2", "h3"):
                out.append("#" * int(kind[1]) + " " + p)
            elif kind == "p":
                out.append(p)
            elif kind == "ul":
                out.append("\n".join(f"- {item}" for item in p))
            elif kind == "table":
                headers, rows, subject = p
                lines = [
                    "| " + " | ".join(headers) + " |",
                    "|" + "|".join(["---"] + ["---:"] * (len(headers) - 1)) + "|",
                ]
                for i, r in enumerate(rows):
                    cells = [f"**{c}**" if i == subject and c else c for c in r]
                    lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
                out.append("\n".join(lines))
            elif kind == "chart":
                name, title = p
                out.append(f"![{title}]({name}.svg)")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        out = [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        ]
        for kind, p in self.blocks:
            if kind in ("h1", "h2", "h3"):
                out.append(f"<{kind}>{escape(p)}</{kind}>")
            elif kind == "p":
                out.append(f"<p>{escape(p)}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in p) + "</ul>")
            elif kind == "table":
                headers, rows, subject = p
                head = "".join(f"<th>{escape(h)}</th>" for h in headers)
                body = []
                for i, r in enumerate(rows):
                    cls = " class='subject'" if i == subject else ""
                    tds = "".join(
                        f"<td{' class=n' if j else ''}>{escape(c)}</td>" for j, c in enumerate(r)
                    )
                    body.append(f"<tr{cls}>{tds}</tr>")
                out.append(
                    f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
                )
            elif kind == "chart":
                name, title = p
                out.append(f"<figure>{self.charts[name]}</figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


def _area_label(a: Mapping[str, Any]) -> str:
    en = f" ({a['name_en']})" if a.get("name_en") else ""
    return f"{a['name']}{en} · {a['code']}"


def _headline(doc: Doc, data: Mapping[str, Any]) -> None:
    doc.add("h2", "Headline figures")
    rows = []
    for ind in data["indicators"]:
        digits = (
            0 if ind["unit"] not in ("h", "ratio", "m²") else (3 if ind["unit"] == "ratio" else 1)
        )
        hidden = ind["id"] == "population"
        rows.append(
            [
                f"{ind['title']} ({ind['title_zh']})",
                ind["unit"],
                num(ind["value"], digits, hidden=hidden),
                num(ind["previous"], digits),
                signed(ind["change"], digits),
                ind["trend"] or NONE,
            ]
        )
    doc.table(["Indicator", "Unit", "Now / this period", "Before", "Change", "Trend"], rows)


def _events(doc: Doc, data: Mapping[str, Any]) -> None:
    ev = data["events"]
    doc.add("h2", "What happened")
    doc.add("h3", "Events by type")
    doc.add(
        "p",
        f"{num(ev['total'])} events reported in the period "
        f"({num(ev['previous_total'])} in the period before, "
        f"{signed(ev['total'] - ev['previous_total'])}); {num(ev['closed'])} closed "
        f"({num(ev['closed_previous'])} before); {num(ev['open_at_end'])} open at the "
        "end of the period.",
    )
    if ev["by_type"]:
        doc.table(
            ["Event type", "This period", "Period before", "Change"],
            [
                [
                    r["type"],
                    num(r["current"]),
                    num(r["previous"]),
                    signed(r["current"] - r["previous"]),
                ]
                for r in ev["by_type"]
            ],
        )
        doc.chart(
            "events_by_type",
            "Events by type",
            charts.bar_chart(
                [r["type"] for r in ev["by_type"]],
                {
                    "this period": [r["current"] for r in ev["by_type"]],
                    "period before": [r["previous"] for r in ev["by_type"]],
                },
                title="Events by type",
                unit="events",
            ),
        )
    doc.add("h3", "Events per day")
    daily = ev["daily"]
    busiest = max(daily, key=lambda d: (d["current"], d["day"])) if daily else None
    if busiest and busiest["current"]:
        doc.add(
            "p",
            f"Busiest day: {busiest['day']} with {plural(busiest['current'], 'event')}. "
            "Days are 24-hour steps from the period start (UTC); the line is the "
            "period before, day by day.",
        )
    else:
        doc.add("p", "No events were reported in the period.")
    doc.chart(
        "events_per_day",
        "Events per day",
        charts.daily_chart(
            [d["day"][5:] for d in daily],
            [d["current"] for d in daily],
            [d["previous"] for d in daily],
            title="Events per day",
        ),
    )


def _runs(doc: Doc, data: Mapping[str, Any]) -> None:
    runs = data["runs"]
    doc.add("h3", "Simulation runs in the period")
    if runs["flood"]:
        doc.table(
            [
                "Storm run",
                "Finished",
                "Rain (mm)",
                "Max depth, city (m)",
                "Flooded area here (m²)",
                "Road links closed here",
                "Buildings affected here",
                "Residents affected here",
            ],
            [
                [
                    str(r["id"]),
                    day(r["finished_at"]),
                    num(r["rain_mm"], 1),
                    num(r["max_depth_m"], 2),
                    num(r["flooded_area_m2"]),
                    num(r["roads_closed"]),
                    num(r["affected_buildings"]),
                    num(r["affected_people"], hidden=True),
                ]
                for r in runs["flood"]
            ],
        )
    else:
        doc.add("p", "No storm (flood) run finished in the period.")
    if runs["traffic"]:
        doc.table(
            [
                "Traffic run",
                "Finished",
                "Peak",
                "Delay index here",
                "Delay index, city",
                "Baseline delay index",
                "Links closed",
            ],
            [
                [
                    str(r["id"]),
                    day(r["finished_at"]),
                    str(r["period"] or NONE),
                    num(r["delay_index"], 3),
                    num(r["city_delay_index"], 3),
                    num(r["baseline_delay_index"], 3),
                    num(r["closed_links"]),
                ]
                for r in runs["traffic"]
            ],
        )
    else:
        doc.add("p", "No traffic run finished in the period.")


def _tasks(doc: Doc, data: Mapping[str, Any]) -> None:
    t = data["tasks"]
    doc.add("h2", "What was done")
    rows = [
        ["dispatched (created)", num(t["dispatched"]["current"]), num(t["dispatched"]["previous"])]
    ]
    for state, v in t["states"].items():
        rows.append([state.replace("_", " "), num(v["current"]), num(v["previous"])])
    doc.table(["Tasks", "This period", "Period before"], rows)
    doc.add(
        "p",
        f"At the end of the period {num(t['open_at_end'])} tasks were open, "
        f"{num(t['overdue_at_end'])} of them overdue.",
    )
    if any(int(r[1].replace(",", "")) or int(r[2].replace(",", "")) for r in rows):
        doc.chart(
            "tasks",
            "Tasks by step",
            charts.bar_chart(
                [r[0] for r in rows],
                {
                    "this period": [int(r[1].replace(",", "")) for r in rows],
                    "period before": [int(r[2].replace(",", "")) for r in rows],
                },
                title="Tasks by step",
                unit="tasks",
            ),
        )
    doc.add("h2", "How fast")
    speed = []
    for key, label in (
        ("response_h", "Response (created → first accepted)"),
        ("done_h", "Completion (created → first done)"),
    ):
        cur, prev = t[key]["current"], t[key]["previous"]
        speed.append(
            [
                label,
                num(cur["n"]),
                num(cur["mean"], 1),
                num(cur["median"], 1),
                num(cur["p90"], 1),
                num(prev["mean"], 1),
            ]
        )
    doc.table(
        ["Time (h)", "Tasks", "Mean", "Median", "90th percentile", "Mean, period before"], speed
    )


def _comparison(doc: Doc, data: Mapping[str, Any]) -> None:
    c = data["comparison"]
    title = (
        "Against the other areas of the same parent"
        if c["basis"] == "siblings"
        else "Across the areas below it (the city has no siblings)"
    )
    doc.add("h2", title)
    rows = c["rows"]
    subject = next((i for i, r in enumerate(rows) if r["subject"]), None)
    doc.table(
        [
            "Area",
            "Residents",
            "Events",
            "Events per 1,000 residents",
            "Mean response (h)",
            "Red risk cells",
        ],
        [
            [
                f"{r['name']} · {r['code']}",
                num(r["population"], hidden=True),
                num(r["events"]),
                num(r["events_per_1000"], 2),
                num(r["response_h"], 1),
                num(r["risk_red_cells"]),
            ]
            for r in rows
        ],
        subject,
    )
    notes = []
    for key, (label, unit) in SIBLING_METRICS.items():
        m = c["metrics"][key]
        if not m["n"]:
            notes.append(f"{label}: no values to compare.")
            continue
        d = 0 if unit == "cells" else 2
        text = (
            f"{label}: mean {num(m['mean'], 2)} {unit} (sd {num(m['sd'], 2)}) over "
            f"{m['n']} areas; highest {m['top']['name']} ({num(m['top']['value'], d)}), "
            f"lowest {m['bottom']['name']} ({num(m['bottom']['value'], d)})"
        )
        if m["outliers"]:
            text += "; more than {} sd from the mean: {}".format(
                OUTLIER_Z,
                ", ".join(
                    f"{o['name']} ({num(o['value'], d)}, z {o['z']:+.1f})" for o in m["outliers"]
                ),
            )
        notes.append(text + ".")
    doc.add("ul", notes)
    rated = [r for r in rows if r["events_per_1000"] is not None]
    if rated:
        doc.chart(
            "comparison",
            "Events per 1,000 residents",
            charts.bar_chart(
                [r["name"] for r in rated],
                {"events per 1,000": [r["events_per_1000"] for r in rated]},
                title="Events per 1,000 residents in the period",
                unit="per 1,000",
            ),
        )


def _children(doc: Doc, data: Mapping[str, Any]) -> None:
    kids = data["children"]
    if not kids:
        return
    doc.add("h2", "Areas below")
    doc.table(
        [
            "Area",
            "Residents",
            "Open events",
            "Events in period",
            "Open tasks",
            "Overdue tasks",
            "Red risk cells",
            "Active alerts",
        ],
        [
            [
                f"{k['name']} · {k['code']}",
                num(k["figures"]["population"], hidden=True),
                num(k["figures"]["events_open"]),
                num(k["figures"]["events_reported"]),
                num(k["figures"]["tasks_open"]),
                num(k["figures"]["tasks_overdue"]),
                num(k["figures"]["risk_red_cells"]),
                num(k["figures"]["alerts_active"]),
            ]
            for k in kids
        ],
    )


def layout(data: Mapping[str, Any]) -> Doc:
    """The report's blocks, in reading order."""
    doc = Doc()
    a, p = data["area"], data["period"]
    doc.add("h1", f"Decision report: {_area_label(a)}")
    parent = f" in {_area_label(a['parent'])}" if a.get("parent") else ""
    privacy = (
        "People counts are shown unsuppressed (operator's right)."
        if data["unsuppressed"]
        else f"People counts below {data['suppression_k']} are hidden."
    )
    doc.add(
        "p",
        f"A {a['level']}{parent}. Period: {day(p['start'])} to {day(p['end'])} "
        f"({p['days']} days), compared with the {p['days']} days before "
        f"(from {day(p['previous_start'])}). {privacy}",
    )
    _headline(doc, data)
    _events(doc, data)
    _runs(doc, data)
    _tasks(doc, data)
    _comparison(doc, data)
    _children(doc, data)
    doc.add("h2", "Definitions")
    doc.add(
        "ul",
        [
            "Within the area: its admin subtree for events, buildings, tasks and alerts; for cell "
            "results, cells whose grid patch (cell_stats.area_id) is in the subtree.",
            "Open events: reported and not closed at the end of the period.",
            "Response time: first 'accepted' transition minus the task's creation; completion "
            "time: first 'done' transition minus creation; for tasks created in the period.",
            "Flooded area: flooded share of each resolution-10 cell times the cell's area.",
            "Delay index: congested over free-flow travel time; below the city, the VKT-weighted "
            "mean of the run's resolution-9 cells.",
        ],
    )
    return doc


def render(data: Mapping[str, Any], out: Path) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the chart files into ``out``; their paths."""
    doc = layout(data)
    files = []
    for name, svg in doc.charts.items():
        path = out / f"{name}.svg"
        path.write_text(svg + "\n")
        files.append(path)
    md, html = out / "report.md", out / "report.html"
    md.write_text(doc.markdown())
    html.write_text(doc.html(f"Decision report: {_area_label(data['area'])}"))
    return [md, html, *files]
