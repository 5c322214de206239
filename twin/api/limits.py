"""Request body limits, enforced before anything parses the body.

A pure ASGI middleware: a ``Content-Length`` beyond the route's limit is answered 413 without
reading a byte; a body without one (``Transfer-Encoding: chunked``) is read and counted up to
the limit, then handed on, or answered 413 as soon as it passes the limit. The app never sees
an oversized body, so no handler, parser or validator spends time on it.

The limit is ``TWIN_MAX_BODY_BYTES`` (1 MiB by default); the routes of :data:`ROUTE_LIMITS`
that legitimately take more have their own, never below the default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Routes with a larger limit: (method, path pattern) -> bytes. A traffic request may close
#: up to 100,000 links by id (about 2 MB of JSON at 19 digits an id).
ROUTE_LIMITS: dict[tuple[str, str], int] = {
    ("POST", r"/api/simulations/traffic"): 4 * 2**20,
}
_ROUTES = [(method, re.compile(f"^{pattern}$"), n) for (method, pattern), n in ROUTE_LIMITS.items()]


def limit_for(method: str, path: str, default: int) -> int:
    """The body limit of a request (bytes)."""
    for m, pattern, n in _ROUTES:
        if m == method and pattern.match(path):
            return max(n, default)
    return default


def _human(n: int) -> str:
    if n % 2**20 == 0:
        return f"{n // 2**20} MiB"
    if n % 2**10 == 0:
        return f"{n // 2**10} KiB"
    return f"{n} bytes"


class BodyLimitMiddleware:
    """413 for request bodies beyond the route's limit, checked before the app runs."""

    def __init__(self, app: ASGIApp, default: int) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"transfer-encoding":
                chunked = True
        if length is None and not chunked:  # HTTP/1.1: no body at all
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["method"], scope["path"], self.default)
        if length is not None and not chunked:
            if not length.strip().isdigit():
                await _answer(send, 400, "Content-Length is not a number", None)
                return
            if int(length) > limit:
                await _too_large(scope, send, limit)
                return
            # The server never hands on more than Content-Length bytes.
            await self.app(scope, receive, send)
            return
        # No length given: read and count, then replay what was read.
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                messages.append(message)  # a disconnect: the app learns of it
                break
            size += len(message.get("body", b""))
            if size > limit:
                await _too_large(scope, send, limit)
                return
            messages.append(message)
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    detail = (
        f"request body larger than the limit of {_human(limit)} ({limit} bytes) for "
        f"{scope['method']} {scope['path']}"
    )
    await _answer(send, 413, detail, limit)


async def _answer(send: Send, status: int, detail: str, limit: int | None) -> None:
    body: dict[str, object] = {
        "detail": detail,
        "error": "PayloadTooLarge" if status == 413 else "BadRequest",
    }
    if limit is not None:
        body["limit_bytes"] = limit
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
            # The unread body would otherwise be taken for the next request.
            (b"connection", b"close"),
        ],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": data})
