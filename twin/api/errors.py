"""The one table that maps the twin's exceptions (:mod:`twin.errors`) to HTTP statuses.

Handlers raise domain exceptions; this table decides the status. Anything that is the client's
fault is 4xx with a body naming the parameter or field; a database that cannot be reached is 503;
nothing expected ever surfaces as 500. Request validation errors keep FastAPI's 422 body without
the input it carried (see :func:`validation_details`), made safe to render (:func:`json_safe`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable

import psycopg
import psycopg_pool
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from twin.api.methods import allowed_methods, literal_resource_methods, path_parameter_failed
from twin.db.engine import DatabaseNotConfiguredError
from twin.errors import (
    ConflictError,
    DatabaseUnavailableError,
    ForbiddenError,
    InvalidParameterError,
    NotFoundError,
    TwinError,
    UnauthorizedError,
)

# Re-exported: routers import the exceptions from here together with the table.
__all__ = [
    "EXCEPTION_STATUS",
    "ConflictError",
    "DatabaseUnavailableError",
    "ForbiddenError",
    "InvalidParameterError",
    "NotFoundError",
    "TwinError",
    "UnauthorizedError",
    "install",
    "json_safe",
]

log = logging.getLogger(__name__)


# Order matters only between a class and its subclasses: the most specific wins because
# Starlette looks exception handlers up along the exception's MRO.
EXCEPTION_STATUS: dict[type[Exception], int] = {
    NotFoundError: 404,
    InvalidParameterError: 400,
    UnauthorizedError: 401,
    ForbiddenError: 403,
    # Row-level security refused a write outside the caller's scope.
    psycopg.errors.InsufficientPrivilege: 403,
    ConflictError: 409,
    DatabaseUnavailableError: 503,
    DatabaseNotConfiguredError: 503,
    psycopg_pool.PoolTimeout: 503,
    psycopg_pool.PoolClosed: 503,
    psycopg.OperationalError: 503,
    psycopg.errors.QueryCanceled: 504,
    psycopg.errors.DataError: 400,
}

#: The longest message of a 4xx answered back.
MAX_DETAIL = 2000
_PUBLIC_DETAIL: dict[int, str] = {
    403: "outside your scope or role",
    503: "database unavailable",
    504: "query took too long and was cancelled",
}


def _handler(status: int) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, TwinError | DatabaseNotConfiguredError):
            detail = str(exc)
            if len(detail) > MAX_DETAIL:  # a message may quote what the client sent
                detail = detail[:MAX_DETAIL] + "..."
        else:
            # Driver messages can carry hosts and SQL; log them, answer plainly.
            log.warning("%s %s -> %d: %r", request.method, request.url.path, status, exc)
            detail = _PUBLIC_DETAIL.get(status, "invalid value")
        body: dict[str, object] = {"detail": detail, "error": type(exc).__name__}
        if isinstance(exc, InvalidParameterError):
            body["parameter"] = exc.parameter
        headers = {"Retry-After": "5"} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": 'Bearer realm="twin"'}
        return JSONResponse(body, status_code=status, headers=headers)

    return handle


def json_safe(value: object) -> object:
    """``value`` with what strict JSON in UTF-8 cannot carry turned into text.

    A 422 names the invalid field (a key the client chose), and Python's JSON parser lets a
    client send NaN, Infinity and lone surrogates (``"\\ud800"``); a body of another media
    type arrives as bytes that need not be UTF-8. Rendered as they are, each makes the error
    response itself fail (500).
    """
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # 'nan', 'inf', '-inf'
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


#: The longest text of a 422 entry (a location part or a message) answered back.
MAX_ERROR_TEXT = 300


def _short(value: object) -> object:
    if isinstance(value, str) and len(value) > MAX_ERROR_TEXT:
        return value[:MAX_ERROR_TEXT] + "..."
    return value


def validation_details(errors: list[dict[str, object]]) -> list[dict[str, object]]:
    """The entries of a 422: ``loc``, ``msg`` and ``type`` only.

    Never the ``input`` (a 26 MB body came back whole) nor ``ctx`` (it can hold the input
    or the exception raised on it); long texts are cut."""
    out = []
    for e in errors:
        loc = e.get("loc", ())
        out.append({
            "loc": [_short(part) for part in (loc if isinstance(loc, list | tuple) else [loc])],
            "msg": _short(e.get("msg", "")),
            "type": _short(e.get("type", "")),
        })  # fmt: skip
    return out


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 body (``{"detail": [{"loc", "msg", "type"}]}``) without the input."""
    errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
    if path_parameter_failed(errors):
        # A fixed path of other methods (/api/alerts/rules) that a parameterised route
        # (PATCH /api/alerts/{alert_id}) matched too: the resource exists, not this method.
        other = literal_resource_methods(request)
        if other and request.method not in other:
            return _method_not_allowed(other)
    details = validation_details(errors)
    return JSONResponse({"detail": jsonable_encoder(json_safe(details))}, status_code=422)


def _method_not_allowed(allow: list[str]) -> JSONResponse:
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405,
                        headers={"Allow": ", ".join(allow)})  # fmt: skip


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's HTTP errors as FastAPI renders them; a 405 lists every method of the path."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 405:
        return _method_not_allowed(allowed_methods(request))
    return await http_exception_handler(request, exc)


def install(app: FastAPI) -> None:
    """Register a handler for every entry of :data:`EXCEPTION_STATUS`, and the 422 one."""
    for exc_type, status in EXCEPTION_STATUS.items():
        app.add_exception_handler(exc_type, _handler(status))
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
