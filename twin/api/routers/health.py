"""``GET /healthz``: is the service usable (database reachable, PostGIS there, schema current)."""

from __future__ import annotations

from typing import Any

import psycopg
import psycopg_pool
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

import twin
from twin.db.health import database_health

router = APIRouter(tags=["service"])

HEALTH_TIMEOUT_S = 3.0


class Health(BaseModel):
    status: str
    version: str
    database: dict[str, Any]
    detail: str | None = None


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "database unreachable or schema not current"}},
)
async def healthz(request: Request, response: Response) -> Health:
    """200 when the database answers, PostGIS is installed and the schema is at the code's
    revision; 503 with the reason otherwise (the body has the same shape either way)."""
    pool: psycopg_pool.AsyncConnectionPool | None = request.app.state.pool
    db: dict[str, Any] = {"reachable": False}
    if pool is None:
        detail = f"database not configured: {request.app.state.db_error}"
    else:
        try:
            async with pool.connection(timeout=HEALTH_TIMEOUT_S) as conn:
                db = await database_health(conn)
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
                return Health(status="ok", version=twin.__version__, database=db)
    response.status_code = 503
    response.headers["Retry-After"] = "5"
    return Health(status="unavailable", version=twin.__version__, database=db, detail=detail)
