"""``/api/alerts``: alerts raised by the rules; evaluate on demand; acknowledge or resolve."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import psycopg
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from psycopg.rows import dict_row
from pydantic import BaseModel, ConfigDict

from twin.access import audit
from twin.access.principal import act_as
from twin.alerts.evaluate import ALERTS_SQL, alert_row, evaluate_on, status_filter
from twin.alerts.rules import load_rules
from twin.api.deps import Conn, PrincipalDep, SettingsDep, client_address, require
from twin.api.errors import (
    ConflictError,
    ForbiddenError,
    InvalidParameterError,
    NotFoundError,
)
from twin.api.params import Text
from twin.api.schemas.alerts import Alert, AlertList, Evaluation, Rules
from twin.city.areas import find_area
from twin.db.engine import database_url
from twin.risk.catalog import LEVELS

# Alerts are important data (twin.access.classification): signed-in callers only, unless the
# deployment opens important data to the public (TWIN_PUBLIC_CLEARANCE).
router = APIRouter(
    prefix="/api/alerts", tags=["alerts"], dependencies=[require("important", "alerts")]
)


@router.get("", response_model=AlertList, summary="Alerts, newest first")
async def list_alerts(
    conn: Conn,
    status: Annotated[
        str,
        Query(
            description="open (default: pending, active, acknowledged), active, all, or one status"
        ),
    ] = "open",
    rule: Annotated[Text | None, Query(description="rule id")] = None,
    area: Annotated[Text | None, Query(description="admin area id or code (whole subtree)")] = None,
    level: Annotated[str | None, Query(description=f"one of {LEVELS}")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:
    try:
        statuses = status_filter(status)
    except ValueError as exc:
        raise InvalidParameterError("status", str(exc)) from None
    if level is not None and level not in LEVELS:
        raise InvalidParameterError("level", f"one of {', '.join(LEVELS)}")
    area_id = (await find_area(conn, area)).id if area else None
    params = {"statuses": statuses, "rule": rule, "level": level, "area": area_id,
              "limit": limit, "id": None}  # fmt: skip
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(ALERTS_SQL, params)
        rows = await cur.fetchall()
    return {"count": len(rows), "alerts": [alert_row(r) for r in rows]}


@router.get("/rules", response_model=Rules, summary="The alert rules (rules/*.toml)")
async def rules(settings: SettingsDep) -> dict[str, Any]:
    found, errors = load_rules(settings.rules_dir)
    return {
        "rules": [r.describe() for r in found],
        "errors": [{"file": e.path.rsplit("/", 1)[-1], "field": e.field} for e in errors],
    }


@router.post("/evaluate", response_model=Evaluation, summary="Evaluate the alert rules now")
async def evaluate_now(
    request: Request, settings: SettingsDep, who: PrincipalDep
) -> dict[str, Any]:
    """Runs every rule once (deduplicating, escalating and resolving) and returns the counts.

    It runs as the caller, under row-level security: a scoped operator's evaluation touches
    only the alerts of its own areas (and raises new ones only there)."""
    if not who.may_operate(settings.open_operations):
        raise ForbiddenError("evaluating alerts needs the operator role")
    found, errors = load_rules(settings.rules_dir)
    if errors:
        raise InvalidParameterError("rules", str(errors[0]))
    client = client_address(request)

    def work() -> dict[str, dict[str, int]]:
        # One transaction as the caller: the evaluation and its audit row commit together.
        with psycopg.connect(database_url(settings)) as c:
            act_as(c, who, settings.api_db_role, client)
            result = evaluate_on(c, found)
            audit.record_sync(c, who, "alerts.evaluate", "alerts", detail={"rules": len(found)})
            return result

    return {"rules": await run_in_threadpool(work)}


class AlertPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["acknowledged", "resolved"]


@router.patch("/{alert_id}", response_model=Alert, summary="Acknowledge or resolve an alert")
async def patch_alert(
    alert_id: int, body: AlertPatch, conn: Conn, settings: SettingsDep, who: PrincipalDep
) -> dict[str, Any]:
    if not who.may_operate(settings.open_operations):
        raise ForbiddenError("changing alerts needs the operator role")
    cur = await conn.execute("SELECT status FROM twin.alert WHERE id = %s FOR UPDATE", (alert_id,))
    row = await cur.fetchone()
    if row is None:
        raise NotFoundError(f"no alert {alert_id}")
    legal = {"pending": {"resolved"}, "active": {"acknowledged", "resolved"},
             "acknowledged": {"resolved"}, "resolved": set()}  # fmt: skip
    if body.status not in legal[row[0]]:
        raise ConflictError(f"alert {alert_id} is {row[0]}; it cannot become {body.status}")
    await conn.execute(
        "UPDATE twin.alert SET status = %(s)s,"
        " acknowledged_at = CASE WHEN %(s)s = 'acknowledged' THEN now() ELSE acknowledged_at END,"
        " resolved_at = CASE WHEN %(s)s = 'resolved' THEN now() ELSE resolved_at END"
        " WHERE id = %(id)s",
        {"s": body.status, "id": alert_id},
    )
    async with conn.cursor(row_factory=dict_row) as c:
        await c.execute(
            ALERTS_SQL,
            {"id": alert_id, "statuses": ["acknowledged", "resolved"], "rule": None,
             "level": None, "area": None, "limit": 1},
        )  # fmt: skip
        updated = await c.fetchone()
    assert updated is not None
    await audit.record(conn, who, "alert.update", f"alert/{alert_id}",
                       area_id=updated["area_id"], detail={"status": body.status})  # fmt: skip
    return alert_row(updated)
