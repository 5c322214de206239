"""PMTiles export read back with the PyPI ``pmtiles`` reader: every tile equals what the
server gives the public for the same address and layers (decoded), the header and metadata
describe the archive, and layers above the public clearance are refused."""

from __future__ import annotations

import gzip
from pathlib import Path

import mapbox_vector_tile
import pytest
from fastapi.testclient import TestClient
from pmtiles.reader import MmapSource, Reader, all_tiles
from typer.testing import CliRunner

from twin.cli import app
from twin.settings import Settings
from twin.tiles.export import ExportError, export_pmtiles, tile_range

LAYERS = ["buildings", "roads", "cells"]


def _features(mvt: dict, layer: str) -> dict:  # type: ignore[type-arg]
    return {
        f["id"]: (f["properties"], f["geometry"])
        for f in mvt.get(layer, {"features": []})["features"]
    }


def test_archive_tiles_equal_the_servers(
    tiny_settings: Settings, tiny_client: TestClient, tmp_path: Path
) -> None:
    out = tmp_path / "city.pmtiles"
    report = export_pmtiles(tiny_settings, out, layers=LAYERS, zooms=(13, 15))
    assert report.tiles > 0
    with out.open("rb") as fh:
        reader = Reader(MmapSource(fh))
        header, meta = reader.header(), reader.metadata()
        tiles = list(all_tiles(reader.get_bytes))
    assert (header["min_zoom"], header["max_zoom"]) == (13, 15)
    assert [v["id"] for v in meta["vector_layers"]] == LAYERS
    assert len(tiles) == report.tiles
    # Every address over the extent that the server fills is in the archive, and alike.
    w, s, e, n = report.bounds
    xs, ys = tile_range(report.bounds, 14)
    assert len(xs) * len(ys) >= 1 and w < e and s < n
    compared = 0
    for (z, x, y), data in tiles:
        mvt = mapbox_vector_tile.decode(gzip.decompress(data))
        for layer in LAYERS:
            r = tiny_client.get(f"/tiles/{layer}/{z}/{x}/{y}.mvt")
            assert r.status_code in (200, 204), r.text
            want = mapbox_vector_tile.decode(r.content) if r.status_code == 200 else {}
            assert _features(mvt, layer) == _features(want, layer), (layer, z, x, y)
            compared += 1
    assert compared == len(LAYERS) * len(tiles)


def test_only_public_layers_go_in(tiny_settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="'events' is important data"):
        export_pmtiles(tiny_settings, tmp_path / "x.pmtiles", layers=["events"], zooms=(13, 13))
    with pytest.raises(ExportError, match="core data never goes into a static archive"):
        export_pmtiles(
            tiny_settings, tmp_path / "x.pmtiles", layers=["buildings"], zooms=(13, 13),
            clearance="core",
        )  # fmt: skip
    with pytest.raises(ExportError, match="no tile layer 'nope'"):
        export_pmtiles(tiny_settings, tmp_path / "x.pmtiles", layers=["nope"], zooms=(13, 13))
    assert not (tmp_path / "x.pmtiles").exists()


def test_cli_writes_the_archive(
    tiny_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_DATABASE_URL", tiny_settings.database_url or "")
    out = tmp_path / "c.pmtiles"
    r = CliRunner().invoke(
        app, ["tiles", "export", "--out", str(out), "--layers", "buildings", "--zooms", "14-14"]
    )
    assert r.exit_code == 0, r.output
    assert out.stat().st_size > 127 and "tiles" in r.output
    r = CliRunner().invoke(app, ["tiles", "export", "--out", str(out), "--zooms", "x"])
    assert r.exit_code == 2
