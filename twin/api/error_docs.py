"""The error answers of every operation, written into the OpenAPI document.

Handlers document their success answers; the errors come from :mod:`twin.api.errors` (the
exception table), :mod:`twin.api.hosts` (400 for an untrusted Host) and :mod:`twin.api.limits`
(413), the same for every route. This adds them to each operation of the schema, so that a
client (or schemathesis' status code check) finds every status it can get documented:
400 and ``default`` everywhere, 413 where a route takes a body. FastAPI documents 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "properties": {
        "detail": {"type": "string", "description": "what went wrong, naming the parameter"},
        "error": {"type": "string", "description": "the kind of error"},
        "parameter": {"type": "string", "description": "the parameter at fault (400)"},
        "limit_bytes": {"type": "integer", "description": "the body limit (413)"},
    },
    "required": ["detail"],
}
_REF = {"$ref": "#/components/schemas/Error"}
_JSON = {"application/json": {"schema": _REF}}
ERRORS: dict[str, dict[str, Any]] = {
    "400": {"description": "a malformed parameter (named), or an untrusted Host header"},
    "default": {
        "description": (
            "401 without a needed token or with a bad one; 403 beyond the caller's role or "
            "scope; 404 not found; 409 a conflicting state change; 503 database unavailable; "
            "504 query cancelled"
        )
    },
}
TOO_LARGE = {"description": "request body larger than the route's limit (named in the message)"}


def add_error_responses(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the error answers in every operation (those it lacks)."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            wanted = dict(ERRORS)
            if "requestBody" in op:
                wanted["413"] = TOO_LARGE
            for status, doc in wanted.items():
                entry = responses.setdefault(status, dict(doc))
                entry.setdefault("content", _JSON)
    return schema


def install(app: FastAPI) -> None:
    """Serve ``/openapi.json`` with the error answers added (to FastAPI's cached schema)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        if "Error" not in schema.get("components", {}).get("schemas", {}):
            add_error_responses(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
