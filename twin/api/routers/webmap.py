"""``/map``: the web map (planner, emergency and grid-worker modes) and its static files.

Everything the page loads comes from this server: the page and its script from the package,
MapLibre GL JS from the npm packages ``make setup`` installs into ``web/node_modules``. No CDN,
so the map works on a network with no internet access.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, HTMLResponse

from twin.api.errors import NotFoundError

router = APIRouter(tags=["web map"])
WEB = resources.files("twin") / "web"
#: Files of npm packages the page may load: URL name -> path under node_modules.
VENDOR = {
    "maplibre-gl.js": "maplibre-gl/dist/maplibre-gl.js",
    "maplibre-gl.css": "maplibre-gl/dist/maplibre-gl.css",
}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
#: The page in the OpenAPI document: HTML text (``format`` makes it a typed answer).
HTML_PAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {"schema": {"type": "string", "format": "html"}}},
          "description": "the map page (HTML)"},
    503: {"content": {"text/html": {"schema": {"type": "string", "format": "html"}}},
          "description": "MapLibre GL JS not installed: a page saying how to install it"},
}  # fmt: skip
MISSING = """<!doctype html><meta charset="utf-8"><title>City twin map</title>
<p>The web map needs MapLibre GL JS, which is not installed in <code>{path}</code>.
Run <code>make setup</code> (it runs <code>npm ci</code> in <code>web/</code>).</p>"""


@router.get("/map", response_class=HTMLResponse, summary="The web map", responses=HTML_PAGE)
async def web_map(request: Request) -> Response:
    """One page, three modes (``?mode=planner|emergency|grid``); see the README."""
    vendor: Path = request.app.state.settings.web_vendor_dir
    if not (vendor / VENDOR["maplibre-gl.js"]).is_file():
        return HTMLResponse(MISSING.format(path=vendor), status_code=503)
    return HTMLResponse((WEB / "map.html").read_text(encoding="utf-8"),
                        headers={"Cache-Control": "no-cache"})  # fmt: skip


@router.get("/static/vendor/{name}", include_in_schema=False)
async def vendor_file(name: str, request: Request) -> Response:
    rel = VENDOR.get(name)
    path = request.app.state.settings.web_vendor_dir / rel if rel else None
    if path is None or not path.is_file():
        raise NotFoundError(f"no vendored file {name!r} (run make setup)")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=86400"})


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> Response:
    # Only plain file names of the package's static folder: no paths, so no traversal.
    item = WEB / "static" / name
    suffix = Path(name).suffix
    if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES or not item.is_file():
        raise NotFoundError(f"no static file {name!r}")
    return Response(item.read_bytes(), media_type=STATIC_TYPES[suffix],
                    headers={"Cache-Control": "no-cache"})  # fmt: skip


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> Response:
    return Response((WEB / "static" / "favicon.svg").read_bytes(), media_type="image/svg+xml")
