"""The static map page next to a PMTiles archive (``twin tiles viewer``, ``export
--with-viewer``): its files, its style cut to the archive's layers, and the errors. The page
drawing in Chromium is tests/web/test_pmtiles_map.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from twin.cli import app
from twin.settings import Settings
from twin.tiles.viewer import viewer_style

HEADER = {"min_lon_e7": 1_130_000_000, "min_lat_e7": 225_000_000, "max_lon_e7": 1_131_000_000,
          "max_lat_e7": 226_000_000, "center_lon_e7": 1_130_500_000,
          "center_lat_e7": 225_500_000, "center_zoom": 14, "min_zoom": 13, "max_zoom": 15}  # fmt: skip
BASE = {
    "version": 8,
    "name": "base",
    "sources": {"a": {"type": "vector", "url": "{base}/tiles/a.json"}},
    "layers": [
        {"id": "background", "type": "background"},
        {"id": "a-fill", "type": "fill", "source": "a", "source-layer": "a"},
        {"id": "b-line", "type": "line", "source": "b", "source-layer": "b", "minzoom": 9},
    ],
}


def test_style_keeps_the_archives_layers_on_one_pmtiles_source() -> None:
    meta = {"name": "city twin", "attribution": "© x", "vector_layers": [{"id": "b"}]}
    style = viewer_style(HEADER, meta, "city.pmtiles", BASE)
    assert style["sources"] == {
        "city": {"type": "vector", "url": "pmtiles://city.pmtiles", "attribution": "© x"}
    }
    assert style["layers"] == [
        {"id": "background", "type": "background"},
        {"id": "b-line", "type": "line", "source": "city", "source-layer": "b", "minzoom": 9},
    ]
    assert style["metadata"]["twin:bounds"] == [113.0, 22.5, 113.1, 22.6]
    assert style["center"] == [113.05, 22.55] and style["zoom"] == 14


def test_cli_writes_the_page_next_to_the_archive(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", tiny_settings.database_url or "")
    out = tmp_path / "site" / "c.pmtiles"
    out.parent.mkdir()
    r = CliRunner().invoke(app, ["tiles", "export", "--out", str(out), "--layers", "buildings",
                                 "--zooms", "14-14", "--with-viewer", "--json"])  # fmt: skip
    assert r.exit_code == 0, r.output
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == ["c.pmtiles", "index.html", "maplibre-gl.css", "maplibre-gl.js",
                     "pmtiles.js", "style.json", "viewer.js"]  # fmt: skip
    vendor = tiny_settings.web_vendor_dir
    assert (out.parent / "pmtiles.js").read_bytes() == (
        vendor / "pmtiles/dist/pmtiles.js"
    ).read_bytes()
    style = json.loads((out.parent / "style.json").read_text())
    assert style["sources"]["city"]["url"] == "pmtiles://c.pmtiles"
    # Only the buildings layer is in the archive, so only its style layers are kept.
    assert {lyr.get("source-layer") for lyr in style["layers"]} == {None, "buildings"}
    html = (out.parent / "index.html").read_text()
    assert "http" not in html  # nothing from elsewhere: every file is in the folder
    # The viewer alone, again over the same archive.
    r = CliRunner().invoke(app, ["tiles", "viewer", str(out)])
    assert r.exit_code == 0 and "index.html" in r.output, r.output


def test_cli_refuses_what_it_cannot_make_a_page_for(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = CliRunner().invoke(app, ["tiles", "viewer", str(tmp_path / "none.pmtiles")])
    assert r.exit_code == 2 and "does not exist" in r.output, r.output
    junk = tmp_path / "junk.pmtiles"
    junk.write_bytes(b"not an archive" * 20)
    r = CliRunner().invoke(app, ["tiles", "viewer", str(junk)])
    assert r.exit_code == 2 and "not a PMTiles v3 archive" in r.output, r.output
    assert not (tmp_path / "index.html").exists()
    # The npm packages missing: the message says how to install them.
    monkeypatch.setenv("TWIN_DATABASE_URL", tiny_settings.database_url or "")
    out = tmp_path / "c.pmtiles"
    r = CliRunner().invoke(
        app, ["tiles", "export", "--out", str(out), "--layers", "buildings", "--zooms", "14-14"]
    )
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("TWIN_WEB_VENDOR_DIR", str(tmp_path / "empty"))
    r = CliRunner().invoke(app, ["tiles", "viewer", str(out)])
    assert r.exit_code == 2 and "make setup" in r.output, r.output
    assert not (tmp_path / "index.html").exists()
