"""Security headers on every answer, and CORS (off unless ``TWIN_CORS_ORIGINS`` names origins).

The web map loads everything from this server (twin/api/routers/webmap.py): its page, script and
style sheet, MapLibre GL JS, the style, TileJSON and tiles. MapLibre runs its workers from
``blob:`` URLs and draws images from ``data:`` and ``blob:`` URLs; its style sheet and the page
set inline styles. The map's policy allows exactly that. The API documentation pages (/docs,
/redoc) are FastAPI's, which load Swagger UI and ReDoc from a CDN with an inline script; every
other answer is data and gets a policy that allows nothing.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from twin.api.limits import ASGIApp, Message, Receive, Scope, Send
from twin.settings import Settings

MAP_CSP = (
    "default-src 'self'; script-src 'self'; worker-src 'self' blob:; child-src 'self' blob:; "
    "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
CDN = "https://cdn.jsdelivr.net"
DOCS_CSP = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {CDN}; "
    f"style-src 'self' 'unsafe-inline' {CDN} https://fonts.googleapis.com; "
    "font-src 'self' data: https://fonts.gstatic.com; img-src 'self' data: https:; "
    "worker-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
#: Headers of every answer (the CSP is added per path).
COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
DOCS_PATHS = ("/docs", "/redoc")


def csp_for(path: str) -> str:
    """The Content-Security-Policy of an answer at ``path``."""
    if path == "/map":
        return MAP_CSP
    if path.startswith(DOCS_PATHS):
        return DOCS_CSP
    return API_CSP


class SecurityHeadersMiddleware:
    """Adds :data:`COMMON` and the path's Content-Security-Policy to every HTTP answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.csp = {p: [(b"content-security-policy", csp_for(p).encode())] for p in
                    ("/map", "/docs", "/")}  # fmt: skip

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        key = "/map" if path == "/map" else "/docs" if path.startswith(DOCS_PATHS) else "/"
        extra = COMMON + self.csp[key]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k not in present
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: FastAPI, settings: Settings) -> None:
    """Starlette's CORS middleware for the configured origins; nothing when there are none."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "If-None-Match"],
        expose_headers=["ETag", "X-Tile-Reason", "Retry-After"],
        max_age=600,
    )
