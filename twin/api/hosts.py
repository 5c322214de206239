"""The Host header: checked against the trusted hosts, and never the source of a link.

``Host: evil.example`` used to be copied into redirects, OGC API links and ``style.json``.
Now a pure ASGI middleware, before routing:

- answers 400 to a Host that is not trusted (``TWIN_ALLOWED_HOSTS``, plus the host of
  ``TWIN_PUBLIC_URL`` and the bind address), without echoing it;
- with ``TWIN_PUBLIC_URL`` set, rewrites the request's Host and scheme to the public URL's
  (and its path, if any, becomes the root path, as with ``uvicorn --root-path`` behind a proxy
  that strips it), so whatever Starlette builds from the request (``request.base_url``,
  ``url_for``, the trailing-slash redirect) points at the public URL;
- with ``'*'`` among the allowed hosts (no check), replaces an untrusted Host by the address
  the connection arrived on, so that links are never built from what the client wrote.

:func:`public_base` is the base of every absolute link the routers build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.requests import Request

from twin.api.limits import ASGIApp, Receive, Scope, Send
from twin.settings import Settings

#: Bind addresses that are not a host name a client would use.
_ANY_ADDRESS = {"0.0.0.0", "::", ""}
DETAIL = (
    "Host header not served here: use a trusted host name, or set TWIN_ALLOWED_HOSTS or "
    "TWIN_PUBLIC_URL"
)


def split_host(value: str) -> tuple[str, str | None]:
    """``'Example.org:8000'`` -> ``('example.org', '8000')``; IPv6 in brackets."""
    value = value.strip()
    if value.startswith("["):
        name, _, rest = value[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else None
        return name.lower(), port
    if value.count(":") > 1:  # a bare IPv6 address
        return value.lower(), None
    name, sep, port = value.partition(":")
    return name.lower().rstrip("."), port if sep else None


def trusted_hosts(settings: Settings) -> list[str]:
    """The host patterns served: the settings' list, public_url's host, the bind address."""
    hosts = [h.strip().lower() for h in settings.allowed_hosts if h.strip()]
    if settings.public_url:
        hosts.append((urlsplit(settings.public_url).hostname or "").lower())
    if settings.host not in _ANY_ADDRESS:
        hosts.append(split_host(settings.host)[0])
    return [h for h in dict.fromkeys(hosts) if h]


def host_matches(name: str, patterns: Iterable[str]) -> bool:
    """Whether ``name`` is one of ``patterns`` (``*.example.org``: any subdomain of it)."""
    for p in patterns:
        if p == name or (p.startswith("*.") and p != "*." and name.endswith(p[1:])):
            return True
    return False


def _valid_name(name: str) -> bool:
    return bool(name) and len(name) <= 253 and all(c.isalnum() or c in "-._:" for c in name)


class TrustedHostMiddleware:
    """400 for untrusted Host headers; the Host links are built from made safe (see above)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.patterns = [p for p in trusted_hosts(settings) if p != "*"]
        self.any_host = "*" in trusted_hosts(settings)
        self.public: tuple[str, bytes] | None = None
        self.prefix = ""
        if settings.public_url:
            parts = urlsplit(settings.public_url)
            self.public = (parts.scheme, parts.netloc.encode("ascii", "ignore"))
            self.prefix = parts.path.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        index = next((i for i, (k, _) in enumerate(headers) if k == b"host"), None)
        if index is not None:
            name, _ = split_host(headers[index][1].decode("latin-1"))
            trusted = _valid_name(name) and host_matches(name, self.patterns)
            if not trusted and not self.any_host:
                await _refuse(send, scope)
                return
            if self.public is not None:
                scheme, public = self.public
                headers[index] = (b"host", public)
                scope = dict(scope, headers=headers)
                ws = scope["type"] == "websocket"
                scope["scheme"] = scheme.replace("http", "ws") if ws else scheme
                if self.prefix and not scope.get("root_path"):
                    # Served under a path, as with uvicorn --root-path: the path carries the
                    # prefix (added when a proxy stripped it), routing strips it again.
                    scope["root_path"] = self.prefix
                    if not scope["path"].startswith(self.prefix + "/"):
                        scope["path"] = self.prefix + scope["path"]
                        scope["raw_path"] = self.prefix.encode() + scope.get("raw_path", b"")
            elif not trusted:
                host, port = scope.get("server") or ("127.0.0.1", None)
                own = f"[{host}]" if ":" in host else str(host)
                headers[index] = (b"host", f"{own}:{port}".encode() if port else own.encode())
                scope = dict(scope, headers=headers)
        await self.app(scope, receive, send)


async def _refuse(send: Send, scope: Scope) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    data = json.dumps({"detail": DETAIL, "error": "UntrustedHost"}).encode()
    await send({
        "type": "http.response.start",
        "status": 400,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": data})


def public_base(request: Request) -> str:
    """The base of absolute links, without a trailing slash: ``TWIN_PUBLIC_URL`` when set,
    else the request's base URL (its Host checked, or replaced, by the middleware above)."""
    settings: Settings = request.app.state.settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")
