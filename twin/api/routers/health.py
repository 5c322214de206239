"""``GET /healthz``: is the service usable (database reachable, PostGIS there, schema current).

Anyone gets the status (``ok`` or ``unavailable``, 200 or 503): enough for a load balancer.
The versions of the twin, PostgreSQL and PostGIS, the schema revision and the reason of a 503
are for operators (a bearer token of an operator or admin): they tell an attacker which
vulnerabilities to try."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

import twin
from twin.access.tokens import principal_for_token
from twin.api.deps import bearer_token
from twin.api.errors import UnauthorizedError
from twin.db.health import database_health

router = APIRouter(tags=["service"])

HEALTH_TIMEOUT_S = 3.0


class Health(BaseModel):
    status: str = Field(description="ok or unavailable")
    version: str | None = Field(None, description="the twin's version (operators only)")
    database: dict[str, Any] | None = Field(
        None, description="reachable, server and PostGIS versions, schema (operators only)"
    )
    detail: str | None = Field(None, description="why unavailable (operators only)")


@router.get(
    "/healthz",
    response_model=Health,
    response_model_exclude_none=True,
    responses={
        401: {"description": "a bearer token that is malformed, unknown or revoked"},
        503: {"model": Health, "description": "database unreachable or schema not current"},
    },
)
async def healthz(request: Request, response: Response) -> Health:
    """200 when the database answers, PostGIS is installed and the schema is at the code's
    revision; 503 with the reason otherwise (the body has the same shape either way)."""
    token = bearer_token(request)
    pool: psycopg_pool.AsyncConnectionPool | None = request.app.state.pool
    db: dict[str, Any] = {"reachable": False}
    operator = False
    if pool is None:
        detail = f"database not configured: {request.app.state.db_error}"
    else:
        try:
            async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
                db = await database_health(conn)
                if token is not None:
                    operator = await _is_operator(conn, token)
        except (psycopg_pool.PoolTimeout, psycopg.OperationalError) as exc:
            detail = f"database unreachable within {HEALTH_TIMEOUT_S:.0f} s ({type(exc).__name__})"
        else:
            if db["postgis"] is None:
                detail = "PostGIS extension missing: run `twin db migrate`"
            elif not db["schema_current"]:
                detail = (
                    f"schema at revision {db['schema_revision']}, code expects "
                    f"{db['expected_revision']}: run `twin db migrate`"
                )
            else:
                return _health("ok", db, None, operator)
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return _health("unavailable", db, detail, operator)


async def _is_operator(conn: psycopg.AsyncConnection, token: str) -> bool:
    """Whether ``token`` is an operator's or admin's; 401 for an unknown or revoked one.

    Without the users table (a database not migrated yet) nobody is an operator."""
    try:
        async with conn.transaction():
            who = await principal_for_token(conn, token)
    except psycopg.errors.UndefinedTable:
        return False
    if who is None:
        raise UnauthorizedError("unknown or revoked token")
    return who.at_least("operator")


def _health(status: str, db: dict[str, Any], detail: str | None, operator: bool) -> Health:
    if not operator:
        return Health(status=status)
    return Health(status=status, version=twin.__version__, database=db, detail=detail)
