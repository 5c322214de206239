"""A pydeck ``Deck`` as one self-contained HTML file that works with no network at all.

pydeck's own ``to_html(offline=True)`` inlines the deck.gl bundle but still links base-map
scripts and style sheets from CDNs. This writes a minimal page instead: the deck.gl bundle that
ships inside the installed pydeck wheel inlined, the deck's JSON inlined, no base map (base-map
keys are dropped from the JSON) and no ``<script src>`` or ``<link href>`` at all. An optional
title and colour legend are drawn in plain HTML over the map.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import cache
from html import escape
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pydeck

#: Page background behind the map (no base map is drawn).
BACKGROUND = "#10151f"
#: Keys of the deck JSON that would make the page fetch a base map.
BASE_MAP_KEYS = ("mapProvider", "mapStyle", "mapboxKey", "googleMapsKey")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
html, body {{ margin: 0; padding: 0; height: 100%; overflow: hidden; background: {background};
  font-family: system-ui, sans-serif; }}
#deck-container {{ position: absolute; inset: 0; }}
.twin-overlay {{ position: absolute; z-index: 2; left: 12px; background: rgba(255,255,255,.88);
  color: #111827; border-radius: 4px; padding: 6px 10px; font-size: 13px; }}
.twin-title {{ top: 12px; font-size: 15px; font-weight: 600; }}
.twin-legend {{ bottom: 12px; }}
.twin-legend i {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px;
  vertical-align: -1px; }}
</style>
<script>{bundle}</script>
</head>
<body>
<div id="deck-container"></div>
{overlays}
<script>
(function () {{
  const container = document.getElementById("deck-container");
  const jsonInput = {json_input};
  const tooltip = {tooltip};
  const deck = createDeck({{ container, jsonInput, tooltip, showError: true }});
  window.deck = deck;
  let frames = 0;
  if (deck && deck.setProps) {{
    deck.setProps({{ onAfterRender: () => {{
      document.documentElement.dataset.deckFrames = String(++frames);
    }} }});
  }}
}})();
</script>
</body>
</html>
"""


@cache
def deckgl_bundle() -> str:
    """The deck.gl jupyter-widget bundle (JavaScript) shipped inside the installed pydeck."""
    path = resources.files("pydeck").joinpath("nbextension", "static", "index.js")
    text = path.read_text(encoding="utf-8")
    # Inside an inline <script> the HTML parser ends the element at the first "</script".
    return text.replace("</script", "<\\/script")


def _script_json(value: Any) -> str:
    """``value`` as JSON that is safe to inline in a ``<script>`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _legend_html(legend: Mapping[str, Sequence[int]]) -> str:
    items = []
    for label, colour in legend.items():
        r, g, b = (int(c) for c in colour[:3])
        items.append(f'<div><i style="background: rgb({r},{g},{b})"></i>{escape(label)}</div>')
    return f'<div class="twin-overlay twin-legend">{"".join(items)}</div>'


def offline_html(
    deck: pydeck.Deck,
    *,
    title: str,
    legend: Mapping[str, Sequence[int]] | None = None,
    tooltip: bool | Mapping[str, Any] | None = None,
    background: str = BACKGROUND,
) -> str:
    """The page for ``deck`` as a string (see :func:`write_offline_html`)."""
    spec = json.loads(deck.to_json())
    for key in BASE_MAP_KEYS:
        spec.pop(key, None)
    if tooltip is None:
        tooltip = getattr(deck, "_tooltip", True)
    overlays = [f'<div class="twin-overlay twin-title">{escape(title)}</div>']
    if legend:
        overlays.append(_legend_html(legend))
    return _PAGE.format(
        title=escape(title),
        background=escape(background),
        bundle=deckgl_bundle(),
        overlays="\n".join(overlays),
        json_input=_script_json(spec),
        tooltip=_script_json(tooltip),
    )


def view_for_bounds(
    bounds: Sequence[float],
    *,
    pitch: float = 0.0,
    bearing: float = 0.0,
    size: tuple[int, int] = (1000, 700),
) -> pydeck.ViewState:
    """A view that shows ``bounds`` (min lon, min lat, max lon, max lat) in a ``size`` window.

    Parameters
    ----------
    bounds
        The extent in degrees, e.g. a GeoDataFrame's ``total_bounds``.
    pitch, bearing
        Tilt and rotation of the view (degrees).
    size
        The window (width, height) in pixels the zoom is fitted to.

    Returns
    -------
    pydeck.ViewState
        Centred on the extent, zoomed so that it fills about 90 % of the window.
    """
    import pydeck

    minx, miny, maxx, maxy = (float(b) for b in bounds)

    def merc_y(lat: float) -> float:
        return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))

    # deck.gl's world is 512 px wide at zoom 0.
    span_x = max((maxx - minx) / 360.0, 1e-9)
    span_y = max((merc_y(maxy) - merc_y(miny)) / (2 * math.pi), 1e-9)
    zoom = math.log2(0.9 * min(size[0] / span_x, size[1] / span_y) / 512.0)
    return pydeck.ViewState(
        longitude=(minx + maxx) / 2,
        latitude=(miny + maxy) / 2,
        zoom=round(min(zoom, 20.0), 2),
        pitch=pitch,
        bearing=bearing,
    )


def write_offline_html(
    deck: pydeck.Deck,
    path: str | Path,
    *,
    title: str,
    legend: Mapping[str, Sequence[int]] | None = None,
    tooltip: bool | Mapping[str, Any] | None = None,
    background: str = BACKGROUND,
) -> Path:
    """Write ``deck`` to ``path`` as a self-contained page that needs no network.

    Parameters
    ----------
    deck
        The pydeck deck. Its base map, if any, is dropped: the layers are drawn on a plain
        ``background``.
    path
        The HTML file to write; its folder is created when missing.
    title
        Shown in the page's title bar and over the map.
    legend
        Optional ``{label: (r, g, b)}`` drawn as a colour legend over the map.
    tooltip
        deck.gl tooltip: ``True`` for the default one, ``{"html": ..., "style": ...}`` for a
        template; default: the deck's own (``pydeck.Deck(tooltip=...)``).
    background
        CSS colour behind the layers.

    Returns
    -------
    Path
        The file written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = offline_html(deck, title=title, legend=legend, tooltip=tooltip, background=background)
    out.write_text(page, encoding="utf-8")
    return out
