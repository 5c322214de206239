"""405 answers that list every method of the resource, whichever route was tried first.

Starlette answers a method that no route of a path takes with 405 and the ``Allow`` of the
first route whose path matched, so ``OPTIONS /api/tasks/1`` advertised GET although PATCH is
served there too. And a fixed path that a parameterised route of another method also matches
(``PATCH /api/alerts/rules`` against ``PATCH /api/alerts/{alert_id}``) was a 422 for the id,
where the resource exists and does not take that method: 405.
"""

from __future__ import annotations

import re

from starlette.requests import Request
from starlette.routing import Match

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """The methods of the resource at the request's path (HEAD along with GET): those the
    schema documents for its most specific path, else those some route serves there."""
    documented = _documented(request, 10**6)
    if documented is not None:
        return documented
    found = set()
    for method in METHODS:
        scope = {**request.scope, "method": method}
        if any(r.matches(scope)[0] == Match.FULL for r in request.app.router.routes):
            found.add(method)
    return sorted(found | ({"HEAD"} if "GET" in found else set()))


def _documented(request: Request, fewer_than: int) -> list[str] | None:
    """The documented methods of the schema path with the fewest parameters (fewer than
    ``fewer_than``) that matches the request's path; None if none does."""
    paths = request.app.openapi().get("paths", {})
    here, root = request.scope["path"], request.scope.get("root_path", "")
    if root and here.startswith(root + "/"):
        here = here[len(root) :]
    best: tuple[int, list[str]] | None = None
    for path, ops in paths.items():
        n = path.count("{")
        if (
            n < fewer_than
            and (best is None or n < best[0])
            and _template(path).match(request.url.path)
        ):
            methods = {m.upper() for m in ops if m.upper() in METHODS}
            best = (n, sorted(methods | ({"HEAD"} if "GET" in methods else set())))
    return best[1] if best else None


def _template(path: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", path)
    return re.compile(
        "^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts) + "$"
    )


def literal_resource_methods(request: Request) -> list[str] | None:
    """The documented methods of a path with fewer parameters than the route that took the
    request, that the request's path also is (None if there is none)."""
    route = request.scope.get("route")
    current = getattr(route, "path", "")
    if "{" not in current:
        return None
    return _documented(request, current.count("{"))


def path_parameter_failed(errors: list[dict[str, object]]) -> bool:
    """Whether a path parameter failed validation (the route did not really match)."""
    for e in errors:
        loc = e.get("loc")
        if isinstance(loc, list | tuple) and loc[:1] in (["path"], ("path",)):
            return True
    return False
