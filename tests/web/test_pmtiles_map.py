"""The static public map in a real browser, with no twin server: a PMTiles archive from
``twin tiles export`` and the page ``twin tiles viewer`` writes next to it, served by a plain
static file server (the stdlib one, taught HTTP Range as every object store and CDN answers
it), opened in Debian's Chromium through Playwright. Screenshot in ``tests/artifacts/web/``.

Expected values come from the database: the buildings MapLibre renders out of the archive are
rows of ``twin.building`` with the same use.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest
from PIL import Image
from playwright.sync_api import Browser

from tests.web.test_map import ARTIFACTS, Watched, _drawn_share, browser  # noqa: F401
from twin.settings import Settings
from twin.tiles.export import export_pmtiles
from twin.tiles.viewer import write_viewer

RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    """``http.server`` plus single-range ``Range: bytes=a-b`` answers (206), as a static host."""

    ranges: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        m = RANGE.match(self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if m is None or not path.is_file():
            super().do_GET()
            return
        data = path.read_bytes()
        start = int(m.group(1))
        end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.end_headers()
            return
        self.ranges.append(f"{path.name} {start}-{end}")
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site(tiny_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The archive and its page in a folder, served statically on a free port."""
    folder = tmp_path_factory.mktemp("static-map")
    archive = folder / "city.pmtiles"
    export_pmtiles(tiny_settings, archive, layers=["buildings", "roads", "cells"], zooms=(13, 16))
    write_viewer(tiny_settings, archive)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(folder)))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    thread.join(10)


def test_the_pmtiles_map_renders_with_no_server(
    site: str,
    browser: Browser,  # noqa: F811
    tmp_path: Path,
    tiny_settings: Settings,
) -> None:
    w = Watched(browser, tmp_path)
    requests: list[str] = []
    w.page.on("request", lambda r: requests.append(r.url))
    try:
        page = w.page
        page.goto(f"{site}/index.html")
        page.wait_for_selector("body[data-ready=yes]", timeout=30_000)
        w.settle()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=ARTIFACTS / "pmtiles-static-map.png")
        img = Image.open(BytesIO(page.locator("#map canvas").screenshot())).convert("RGB")
        share, colours = _drawn_share(img)
        # The first view fits the whole city, past the cells' zooms: buildings and roads on the
        # background (in the tiny twin about a fifth of the canvas).
        assert share > 0.1 and colours > 50, (share, colours)
        # Every byte came from the static folder: the page, the vendored scripts, the archive
        # (read by ranges, never whole).
        # (MapLibre's worker starts from a blob: URL it makes itself.)
        outside = [u for u in requests if not u.startswith((f"{site}/", "blob:", "data:"))]
        assert requests and not outside, outside
        assert any(r.startswith("city.pmtiles ") for r in RangeHandler.ranges)
        style = page.evaluate("window.twinMap.map.getStyle().sources.city.url")
        assert style == "pmtiles://city.pmtiles"
        feats = page.evaluate(
            "window.twinMap.map.queryRenderedFeatures({layers: ['buildings-3d']})"
            ".map(f => [f.id, f.properties.use])"
        )
        assert feats, "no building rendered out of the archive"
        roads = page.evaluate(
            "window.twinMap.map.queryRenderedFeatures({layers: ['roads']}).length"
        )
        assert roads > 0
        w.assert_clean()
    finally:
        w.close()
    rendered = {int(fid): use for fid, use in feats}
    with psycopg.connect(tiny_settings.database_url or "") as conn:
        rows = conn.execute("SELECT id, use FROM twin.building").fetchall()
    # The view holds the archive's whole extent: every building of the twin is drawn, with its use.
    assert rendered == {int(i): u for i, u in rows}
