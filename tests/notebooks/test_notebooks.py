"""The planners' notebooks, executed with nbclient against the tiny demo twin; the offline maps
they write are opened in Debian's Chromium (Playwright) with every request that is not a local
file refused. Screenshots are kept in ``tests/artifacts/notebooks/``.

The figures each notebook saves next to its map are checked against direct SQL on the database,
not against the notebook's own code.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import nbformat
import psycopg
import pytest
from nbclient import NotebookClient
from PIL import Image
from playwright.sync_api import Browser, Route, sync_playwright

from twin.viz.deckhtml import BACKGROUND

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "notebooks"
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
VIEWPORT = {"width": 1000, "height": 700}
CELL_TIMEOUT_S = 300


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), (
        f"Chromium is missing at {CHROMIUM}: run `make setup` (it installs the OS package "
        "chromium), the notebook maps are checked in a real browser"
    )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def run_notebook(
    tiny_demo: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """Execute a notebook in a fresh kernel on the tiny demo; returns its output folder."""
    for key in [k for k in os.environ if k.startswith("TWIN_")]:
        monkeypatch.delenv(key)
    out = tmp_path / "out"
    monkeypatch.setenv("TWIN_DATABASE_URL", tiny_demo["url"])
    monkeypatch.setenv("TWIN_DATA_DIR", tiny_demo["data_dir"])
    monkeypatch.setenv("TWIN_NOTEBOOK_OUT", str(out))

    def run(name: str) -> Path:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        # The kernel inherits this process's environment; it runs in tmp_path so that no
        # developer's .env is read.
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
            resources={"metadata": {"path": str(tmp_path)}},
        )  # fmt: skip
        client.execute()  # raises CellExecutionError with the traceback on any error
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
                  if o.output_type == "error"]  # fmt: skip
        assert not errors, errors
        return out

    yield run


class _Refs(HTMLParser):
    """Every resource an HTML page refers to (script, style sheet, image, frame)."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for name in ("src", "href"):
            if tag in ("script", "link", "img", "iframe", "embed", "source") and a.get(name):
                self.refs.append(f"<{tag} {name}={a[name]}>")


def check_offline_page(browser: Browser, html: Path) -> None:
    """The page refers to nothing outside itself, loads with the network refused, logs no error
    and draws something on the deck canvas."""
    assert html.is_file(), f"{html.name} was not written"
    parser = _Refs()
    parser.feed(html.read_text(encoding="utf-8"))
    assert not parser.refs, f"{html.name} refers to other files or URLs: {parser.refs}"

    context = browser.new_context(viewport=VIEWPORT)  # a fresh, empty profile
    page = context.new_page()
    outside: list[str] = []
    failed: list[str] = []
    errors: list[str] = []

    def gate(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:")):
            route.continue_()
        else:
            outside.append(url)
            route.abort()

    page.route("**/*", gate)
    page.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(html.as_uri(), wait_until="load")
        page.wait_for_function(
            "window.deck && window.deck.isInitialized &&"
            " window.deck.layerManager.getLayers().every(l => l.isLoaded)",
            timeout=60_000,
        )
        # One more frame drawn after every layer has its data.
        frames = page.evaluate("Number(document.documentElement.dataset.deckFrames || 0)")
        page.evaluate("window.deck.redraw('test')")
        page.wait_for_function(
            f"Number(document.documentElement.dataset.deckFrames || 0) > {frames}", timeout=30_000
        )
        layers = page.evaluate("window.deck.layerManager.getLayers().length")
        # Only the deck's own drawing counts: hide the HTML title and legend.
        page.evaluate("document.querySelectorAll('.twin-overlay').forEach(e => e.remove())")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        png = page.screenshot(path=str(ARTIFACTS / f"{html.stem}.png"))
    finally:
        context.close()
    assert not outside, f"{html.name} tried to reach the network: {outside}"
    assert not failed, f"{html.name}: failed requests: {failed}"
    assert not errors, f"{html.name}: console errors: {errors}"
    assert layers > 0, f"{html.name}: the deck has no layers"
    img = Image.open(io.BytesIO(png)).convert("RGB")
    bg = tuple(int(BACKGROUND[i : i + 2], 16) for i in (1, 3, 5))
    drawn = sum(n for n, px in img.getcolors(img.width * img.height) if px != bg)
    assert drawn > 0.02 * img.width * img.height, f"{html.name}: the map is (nearly) blank"


def _one(url: str, query: str, params: tuple[Any, ...] = ()) -> Any:
    with psycopg.connect(url) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0] if len(row) == 1 else row


def test_notebooks_are_stored_clean() -> None:
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01_city_3d.ipynb", "02_storm_scenario.ipynb", "03_cell_area_report.ipynb"]
    for name in names:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        nbformat.validate(nb)
        assert nb.metadata.kernelspec.name == "python3", name
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, (
                    f"{name}: store notebooks without outputs"
                )


def test_city_3d(run_notebook: Any, browser: Browser, tiny_demo: dict[str, str]) -> None:
    out = run_notebook("01_city_3d.ipynb")
    summary = json.loads((out / "city_summary.json").read_text())
    url = tiny_demo["url"]
    assert summary["buildings"] == _one(url, "SELECT count(*) FROM twin.building")
    assert summary["parcels"] == _one(url, "SELECT count(*) FROM twin.parcel")
    assert summary["residents"] == _one(
        url, "SELECT count(*) FROM twin.person WHERE home_cell IS NOT NULL"
    )
    assert summary["tallest_building_m"] == pytest.approx(
        _one(url, "SELECT max(height_m) FROM twin.building"), abs=0.05
    )
    for name in ("city_3d.html", "population_cells.html"):
        check_offline_page(browser, out / name)


def test_storm_scenario(run_notebook: Any, browser: Browser, tiny_demo: dict[str, str]) -> None:
    url = tiny_demo["url"]
    count = "SELECT count(*) FROM twin.sim_run WHERE kind = %s AND status = 'succeeded'"
    floods, traffics = _one(url, count, ("flood",)), _one(url, count, ("traffic",))
    out = run_notebook("02_storm_scenario.ipynb")
    s = json.loads((out / "storm_summary.json").read_text())
    # One storm; one morning peak with closures, which stores its no-closure baseline too.
    assert _one(url, count, ("flood",)) == floods + 1
    assert _one(url, count, ("traffic",)) == traffics + 2
    assert _one(url, "SELECT max(id) FROM twin.sim_run WHERE kind = 'flood'") == s["flood_run"]
    run = _one(url, "SELECT params, baseline_run_id FROM twin.sim_run WHERE id = %s",
               (s["traffic_run"],))  # fmt: skip
    assert run[0]["flood_runs"] == [s["flood_run"]] and run[1] == s["baseline_run"]
    closed = _one(url, "SELECT count(*) FROM twin.flood_link_result WHERE run_id = %s"
                  " AND state = 'closed'", (s["flood_run"],))  # fmt: skip
    assert closed > 0
    assert (
        s["closed_links"]
        == closed
        == _one(
            url,
            "SELECT count(*) FROM twin.traffic_link_result WHERE run_id = %s AND closed",
            (s["traffic_run"],),
        )
    )
    assert s["flooded_cells"] == _one(
        url, "SELECT count(*) FROM twin.flood_cell_result WHERE run_id = %s AND res = 10"
        " AND max_depth_m >= 0.15", (s["flood_run"],),
    )  # fmt: skip
    assert s["max_depth_m"] > 0.15
    assert (out / "storm_charts.png").stat().st_size > 10_000
    check_offline_page(browser, out / "storm_map.html")


def test_cell_area_report(run_notebook: Any, browser: Browser, tiny_demo: dict[str, str]) -> None:
    url = tiny_demo["url"]
    with psycopg.connect(url) as conn:
        # Open tasks per street, from the hierarchical area codes (C.Dnn.Snn.Mnn.Gnn).
        rows = conn.execute(
            "SELECT a.code FROM twin.task t JOIN twin.admin_area a ON a.id = t.area_id"
            " WHERE t.state NOT IN ('done', 'closed')"
        ).fetchall()
    per_street: dict[str, int] = {}
    for (code,) in rows:
        street = ".".join(code.split(".")[:3])
        per_street[street] = per_street.get(street, 0) + 1
    out = run_notebook("03_cell_area_report.ipynb")
    s = json.loads((out / "area_summary.json").read_text())
    assert s["open_tasks"] == max(per_street.values(), default=0)
    if per_street:
        assert per_street.get(s["area"]) == s["open_tasks"]
    with psycopg.connect(url) as conn:
        levels = dict(
            conn.execute(
                "SELECT r.level, count(*) FROM twin.cell_stats cs"
                " JOIN twin.admin_area a ON a.id = cs.area_id"
                " JOIN twin.risk_score r ON r.layer_id = 'onemap' AND r.res = 9 AND r.cell = cs.cell"
                " WHERE cs.res = 9 AND (a.code = %(c)s OR a.code LIKE %(c)s || '.%%')"
                " GROUP BY r.level",
                {"c": s["area"]},
            ).fetchall()
        )
    assert {k: v for k, v in s["risk_levels"].items() if v} == levels
    report = (out / s["report"]).read_text(encoding="utf-8")
    assert s["area"] in report
    check_offline_page(browser, out / "area_risk.html")
