"""Rendering of an after-action review (:func:`twin.reporting.review.build_review` data) as
Markdown and one self-contained HTML page, with the decision report's blocks and charts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from twin.reporting import charts
from twin.reporting.render import NONE, Doc, day, num

#: Most sensors drawn in one chart (the ones with the largest maximum).
MAX_LINES = 5


def minutes(seconds: float | None) -> str:
    """A duration (s) in minutes with one decimal; an en dash for none."""
    return NONE if seconds is None else f"{seconds / 60:,.1f}"


def _when(iso: str | None) -> str:
    return day(iso) if iso else NONE


def _buckets(data: Mapping[str, Any]) -> list[datetime]:
    start = datetime.fromisoformat(data["period"]["from"])
    end = datetime.fromisoformat(data["period"]["to"])
    out, t = [], start
    while t < end:
        out.append(t)
        t += timedelta(minutes=5)
    return out


def _series_chart(
    doc: Doc,
    data: Mapping[str, Any],
    sensors: Sequence[Mapping[str, Any]],
    name: str,
    title: str,
    unit: str,
) -> None:
    steps = _buckets(data)
    index = {t.isoformat(): i for i, t in enumerate(steps)}
    shown = sorted(
        (s for s in sensors if s["buckets"]), key=lambda s: (-(s["max"] or 0), s["code"])
    )[:MAX_LINES]
    if not shown:
        return
    series: dict[str, list[float | None]] = {}
    for s in shown:
        vals: list[float | None] = [None] * len(steps)
        for b in s["buckets"]:
            i = index.get(datetime.fromisoformat(b["t"]).isoformat())
            if i is not None:
                vals[i] = b["value"]
        series[s["code"]] = vals
    labels = [t.strftime("%m-%d %H:%M") for t in steps]
    doc.chart(name, title, charts.line_chart(labels, series, title=title, unit=unit))


def _sensors(doc: Doc, data: Mapping[str, Any]) -> None:
    s = data["sensors"]
    doc.add("h2", "Rain and water levels observed")
    rain = [g for g in s["rain"] if g["readings"]]
    if rain:
        doc.table(
            ["Rain gauge", "Unit", "Readings", "Max", "Time of max", "Rain depth (mm)"],
            [
                [
                    g["code"],
                    g["unit"],
                    num(g["readings"]),
                    num(g["max"], 1),
                    _when(g["max_at"]),
                    num(g["rain_mm"], 1),
                ]
                for g in rain
            ],
        )
        _series_chart(doc, data, rain, "rain", "Rain, largest reading per 5 minutes", "mm/h")
    else:
        doc.add("p", "No rain gauge read in the period.")
    levels = [w for w in s["water_level"] if w["readings"]]
    if levels:
        doc.table(
            ["Water-level sensor", "Unit", "Readings", "Max", "Time of max"],
            [
                [w["code"], w["unit"], num(w["readings"]), num(w["max"], 2), _when(w["max_at"])]
                for w in levels
            ],
        )
        _series_chart(
            doc, data, levels, "water_levels", "Water level, largest reading per 5 minutes", "m"
        )
    else:
        doc.add("p", "No water-level sensor read in the period.")


def _nowcast(doc: Doc, data: Mapping[str, Any]) -> None:
    n = data["nowcast"]
    doc.add("h2", "The nowcast against the sensors")
    if not n["steps"]:
        doc.add("p", "No nowcast in the period.")
        return
    doc.add(
        "p",
        f"{num(n['steps'])} nowcast steps from {_when(n['first_step'])} to "
        f"{_when(n['last_step'])}; {num(n['skill_rows'])} sensor readings compared with the "
        f"model, {num(n['paired'])} of them with the +60 min prediction made an hour before. "
        f"Bias (predicted - observed depth): {num(n['bias_m'], 3)} m; RMSE: "
        f"{num(n['rmse_m'], 3)} m.",
    )
    paired = [x for x in n["pairs"] if x["error_m"] is not None]
    if paired:
        doc.table(
            ["Sensor", "Time", "Observed depth (m)", "Predicted at", "Predicted (m)", "Error (m)"],
            [
                [
                    x["sensor"],
                    _when(x["t"]),
                    num(x["observed_depth_m"], 3),
                    _when(x["predicted_at"]),
                    num(x["predicted_depth_m"], 3),
                    num(x["error_m"], 3),
                ]
                for x in paired
            ],
        )


def _alerts(doc: Doc, data: Mapping[str, Any]) -> None:
    a = data["alerts"]
    doc.add("h2", "Alerts")
    if not a["alerts"]:
        doc.add("p", "No alert was raised in the period.")
        return
    doc.table(
        [
            "Alert",
            "Rule",
            "Subject",
            "Area",
            "Crossed",
            "Raised",
            "To raise (min)",
            "To acknowledge (min)",
            "To resolve (min)",
        ],
        [
            [
                str(x["id"]),
                x["rule_id"],
                x["subject"] or NONE,
                x["area_code"] or NONE,
                _when(x["crossed_at"]),
                _when(x["first_seen"]),
                minutes(x["to_raise_s"]),
                minutes(x["to_ack_s"]),
                minutes(x["to_resolve_s"]),
            ]
            for x in a["alerts"]
        ],
    )
    n, d = len(a["alerts"]), a["derived"]
    doc.add(
        "p",
        f"The time to raise is derived for {num(d)} of {num(n)} alerts (sensor rules: first "
        "reading over the threshold to raised); for the others it is taken as 0 (the rule "
        "looks at a model result, raised when the result was written).",
    )
    _speed(
        doc,
        a,
        (
            ("to_raise_s", "Crossing → raised"),
            ("to_ack_s", "Raised → acknowledged"),
            ("to_resolve_s", "Raised → resolved"),
        ),
    )


def _speed(doc: Doc, d: Mapping[str, Any], keys: Sequence[tuple[str, str]]) -> None:
    doc.table(
        ["Time (min)", "Count", "Median", "90th percentile"],
        [
            [label, num(d[k]["n"]), minutes(d[k]["median_s"]), minutes(d[k]["p90_s"])]
            for k, label in keys
        ],
    )


def _tasks(doc: Doc, data: Mapping[str, Any]) -> None:
    t = data["tasks"]
    doc.add("h2", "Tasks")
    if not t["tasks"]:
        doc.add("p", "No task was dispatched in the period.")
        return
    doc.table(
        [
            "Task",
            "Area",
            "State",
            "Dispatched",
            "Accepted",
            "Done",
            "Due",
            "Overdue",
            "To accept (min)",
            "Accepted → done (min)",
        ],
        [
            [
                str(x["id"]),
                x["area_code"],
                x["state"],
                _when(x["created_at"]),
                _when(x["accepted_at"]),
                _when(x["done_at"]),
                _when(x["due_at"]),
                "yes" if x["overdue"] else "no",
                minutes(x["to_accept_s"]),
                minutes(x["accept_to_done_s"]),
            ]
            for x in t["tasks"]
        ],
    )
    doc.add("p", f"{num(len(t['overdue']))} of {num(len(t['tasks']))} tasks overdue.")
    _speed(
        doc,
        t,
        (
            ("to_accept_s", "Dispatched → accepted"),
            ("accept_to_done_s", "Accepted → done"),
            ("to_done_s", "Dispatched → done"),
        ),
    )
    bars = [
        (k, label)
        for k, label in (("to_accept_s", "to accept"), ("to_done_s", "to done"))
        if t[k]["n"]
    ]
    if bars:
        doc.chart(
            "task_times",
            "Task times",
            charts.bar_chart(
                [label for _, label in bars],
                {
                    "median": [(t[k]["median_s"] or 0) / 60 for k, _ in bars],
                    "90th percentile": [(t[k]["p90_s"] or 0) / 60 for k, _ in bars],
                },
                title="Task times (min)",
                unit="min",
            ),
        )


def _roads(doc: Doc, data: Mapping[str, Any]) -> None:
    r = data["roads"]
    doc.add("h2", "Roads closed and the delay they caused")
    if r["flood_runs"]:
        doc.table(
            ["Storm run", "Finished", "Road links closed here"],
            [
                [str(f["run_id"]), _when(f["finished_at"]), num(len(f["closed"]))]
                for f in r["flood_runs"]
            ],
        )
    else:
        doc.add("p", "No storm (flood) run finished in the period.")
    if r["nowcast"]:
        doc.table(
            [
                "Road link (nowcast)",
                "Name",
                "First closed",
                "Last closed",
                "Steps",
                "Max depth (m)",
            ],
            [
                [
                    str(x["link_id"]),
                    x["name"] or NONE,
                    _when(x["first_closed"]),
                    _when(x["last_closed"]),
                    num(x["steps"]),
                    num(x["max_depth_m"], 2),
                ]
                for x in r["nowcast"]
            ],
        )
    else:
        doc.add("p", "The nowcast saw no road closed in the period.")
    if r["traffic"]:
        doc.table(
            [
                "Traffic run",
                "Finished",
                "Links closed",
                "Baseline run",
                "Extra travel (veh-h)",
                "Extra travel (%)",
            ],
            [
                [
                    str(x["id"]),
                    _when(x["finished_at"]),
                    num(x["closed_links"]),
                    str(x["baseline_run_id"] or NONE),
                    num(x["extra_veh_h"], 1),
                    num(x["extra_pct"], 1),
                ]
                for x in r["traffic"]
            ],
        )
        doc.add(
            "p",
            "Extra travel: the total system travel time of the run with the closures less that "
            "of its baseline without them (city-wide).",
        )
    else:
        doc.add("p", "No traffic run with road closures and a baseline finished in the period.")


def layout(data: Mapping[str, Any]) -> Doc:
    """The review's blocks, in reading order."""
    doc = Doc()
    a, p = data["area"], data["period"]
    where = "the whole city" if a["whole_city"] else f"{a['name']} · {a['code']} ({a['level']})"
    doc.add("h1", f"Review: {where}")
    doc.add(
        "p",
        f"After-action review of {day(p['from'])} to {day(p['to'])} ({num(p['hours'], 1)} h). "
        "Alerts and tasks are those the reader may see.",
    )
    _sensors(doc, data)
    _nowcast(doc, data)
    _alerts(doc, data)
    _tasks(doc, data)
    _roads(doc, data)
    doc.add("h2", "Definitions")
    doc.add(
        "ul",
        [
            "Rain depth: the sum of depth readings (mm); an intensity (mm/h) holds until the "
            "next reading, at most 15 minutes and never past the period's end.",
            "Nowcast error: the +60 min prediction of the step an hour before (within 2.5 min), "
            "the deepest water in the sensor's cell at the horizon (0 where the step stored "
            "none), minus the depth the sensor read; bias is the mean error, RMSE its root mean "
            "square.",
            "Alerts: those raised in the period; crossing: the first reading over the rule's "
            "threshold of the readings over it that lead up to the alert.",
            "Tasks: those dispatched in the period; overdue: due before done or closed, or "
            "still open at the period's end. Medians and percentiles interpolate linearly.",
        ],
    )
    return doc


def render_review(data: Mapping[str, Any], out: Path) -> list[Path]:
    """Write ``review.md``, ``review.html`` and the chart files into ``out``; their paths."""
    doc = layout(data)
    files = []
    for name, svg in doc.charts.items():
        path = out / f"{name}.svg"
        path.write_text(svg + "\n")
        files.append(path)
    md, html = out / "review.md", out / "review.html"
    md.write_text(doc.markdown())
    a = data["area"]
    html.write_text(doc.html(f"Review: {a['code']} {data['period']['from'][:16]}"))
    return [md, html, *files]
