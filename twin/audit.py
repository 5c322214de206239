"""The audit trail: every write through the API and every read of a personal layer, with who,
what, when and which area. Written in the request's own transaction, so a change and its audit
row commit (or roll back) together."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.access import Principal

INSERT_SQL = (
    "INSERT INTO twin.audit_log (user_id, action, resource, area_id, client, detail)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)


async def record(
    conn: AsyncConnection,
    who: Principal,
    action: str,
    resource: str,
    *,
    area_id: int | None = None,
    client: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one audit row (``action`` e.g. ``task.update``; ``resource`` e.g. ``task/12``)."""
    body = {"actor": who.name, "role": who.role, **(detail or {})}
    await conn.execute(
        INSERT_SQL,
        (who.user_id, action, resource, area_id, client, json.dumps(body, default=str)),
    )


def list_entries(
    conn: psycopg.Connection,
    *,
    user: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows, newest first, optionally of one user (by name), action prefix, or since."""
    cur = conn.cursor(row_factory=dict_row)
    cur.execute(
        "SELECT l.id, l.at, coalesce(u.name, l.detail->>'actor') AS actor, l.action,"
        " l.resource, l.area_id, a.code AS area_code, host(l.client) AS client, l.detail"
        " FROM twin.audit_log l LEFT JOIN twin.app_user u ON u.id = l.user_id"
        " LEFT JOIN twin.admin_area a ON a.id = l.area_id"
        " WHERE (%(user)s::text IS NULL OR u.name = %(user)s OR l.detail->>'actor' = %(user)s)"
        " AND (%(action)s::text IS NULL OR l.action LIKE %(action)s || '%%')"
        " AND (%(since)s::timestamptz IS NULL OR l.at >= %(since)s)"
        " ORDER BY l.at DESC, l.id DESC LIMIT %(limit)s",
        {"user": user, "action": action, "since": since, "limit": limit},
    )
    return cur.fetchall()
