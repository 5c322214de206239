"""A self-contained map page next to a PMTiles archive: the public map on any static host.

:func:`write_viewer` writes, into the archive's folder, ``index.html``, ``viewer.js``, a
MapLibre ``style.json`` whose one vector source is ``pmtiles://<archive>`` (a URL relative to
the page, so the folder can be moved or uploaded as it is), and copies of MapLibre GL JS and
the ``pmtiles`` protocol from the npm packages ``make setup`` installs into ``web/node_modules``.
Nothing is loaded from elsewhere: no CDN, no twin server, no font or sprite.

The style is the server's (``tiles/style.json``) cut to the layers the archive holds (its
``vector_layers`` metadata), every layer reading the one archive source; the view starts at
the archive's extent. The host must answer HTTP Range requests (every object store and CDN
does; Python's ``http.server`` does not), which is how the protocol reads tiles out of the one
file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from pmtiles.reader import MmapSource, Reader

from twin.settings import Settings, project_root
from twin.tiles.export import ExportError

#: Files copied out of node_modules: name in the folder -> path under node_modules.
VENDOR = {
    "maplibre-gl.js": "maplibre-gl/dist/maplibre-gl.js",
    "maplibre-gl.css": "maplibre-gl/dist/maplibre-gl.css",
    "pmtiles.js": "pmtiles/dist/pmtiles.js",
}
SOURCE = "city"

INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="maplibre-gl.css">
<style>html, body, #map {{ margin: 0; height: 100%; }}</style>
</head>
<body data-ready="no">
<div id="map"></div>
<script src="maplibre-gl.js"></script>
<script src="pmtiles.js"></script>
<script src="viewer.js"></script>
</body>
</html>
"""

SCRIPT = """// The public map out of one PMTiles archive, no server (from `twin tiles viewer`).
"use strict";
(function () {
  const protocol = new pmtiles.Protocol();
  maplibregl.addProtocol("pmtiles", protocol.tile);
  fetch("style.json")
    .then((r) => r.json())
    .then((style) => {
      // The first view fits the archive's extent (a shared link's #zoom/lat/lon wins), never
      // zoomed out past the archive's lowest zoom, where it holds no tile.
      const meta = style.metadata || {};
      const opts = { container: "map", style: style, hash: true };
      if (!location.hash && meta["twin:bounds"]) {
        opts.bounds = meta["twin:bounds"];
        opts.fitBoundsOptions = { padding: 24, maxZoom: meta["twin:maxzoom"] + 1 };
      }
      const map = new maplibregl.Map(opts);
      if (map.getZoom() < meta["twin:minzoom"]) map.setZoom(meta["twin:minzoom"]);
      map.addControl(new maplibregl.NavigationControl());
      map.addControl(new maplibregl.ScaleControl());
      window.twinMap = { map: map };
      map.on("load", () => { document.body.dataset.ready = "yes"; });
    });
})();
"""


def archive_info(archive: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The archive's header and metadata (``ExportError`` when it is not a PMTiles v3 file)."""
    try:
        with archive.open("rb") as fh:
            reader = Reader(MmapSource(fh))
            return reader.header(), reader.metadata()
    except FileNotFoundError:
        raise ExportError(f"archive: {archive} does not exist") from None
    except Exception as exc:  # the reader raises bare exceptions on a foreign file
        raise ExportError(f"archive: {archive} is not a PMTiles v3 archive ({exc})") from None


def viewer_style(
    header: dict[str, Any], metadata: dict[str, Any], archive_name: str, base: dict[str, Any]
) -> dict[str, Any]:
    """``base`` (a MapLibre style) cut to the archive's layers, all reading ``pmtiles://``."""
    held = {v["id"] for v in metadata.get("vector_layers", [])}
    layers = []
    for layer in base["layers"]:
        if "source" not in layer:
            layers.append(layer)
        elif layer.get("source-layer", layer["source"]) in held:
            layers.append({**layer, "source": SOURCE})
    if len(layers) == sum("source" not in lyr for lyr in base["layers"]):
        raise ExportError(
            f"archive: none of its layers ({', '.join(sorted(held)) or 'none'}) has a style"
        )
    return {
        "version": 8,
        "name": metadata.get("name") or base.get("name", "City twin"),
        "metadata": {
            "twin:bounds": [
                header[k] / 1e7 for k in ("min_lon_e7", "min_lat_e7", "max_lon_e7", "max_lat_e7")
            ],
            "twin:minzoom": header["min_zoom"],
            "twin:maxzoom": header["max_zoom"],
        },
        "center": [header["center_lon_e7"] / 1e7, header["center_lat_e7"] / 1e7],
        "zoom": header["center_zoom"],
        "sources": {
            SOURCE: {
                "type": "vector",
                "url": f"pmtiles://{archive_name}",
                "attribution": metadata.get("attribution", ""),
            }
        },
        "layers": layers,
    }


def write_viewer(settings: Settings, archive: Path) -> list[Path]:
    """Write the map page for ``archive`` into its folder; returns the files written."""
    header, metadata = archive_info(archive)
    vendor = settings.web_vendor_dir
    missing = [p for p in VENDOR.values() if not (vendor / p).is_file()]
    if missing:
        raise ExportError(
            f"viewer: {', '.join(missing)} not installed in {vendor}: run `make setup` (it runs "
            "`npm ci` in web/)"
        )
    base = json.loads((project_root() / "tiles" / "style.json").read_text())
    style = viewer_style(header, metadata, archive.name, base)
    folder = archive.parent
    written = []
    for name, rel in VENDOR.items():
        shutil.copyfile(vendor / rel, folder / name)
        written.append(folder / name)
    title = str(style["name"]).replace("&", "&amp;").replace("<", "&lt;")
    for name, text in (
        ("style.json", json.dumps(style, indent=1)),
        ("viewer.js", SCRIPT),
        ("index.html", INDEX.format(title=title)),
    ):
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written
