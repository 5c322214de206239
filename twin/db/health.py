"""What the database says about itself: reachable, PostGIS version, schema revision."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import AsyncConnection

from twin.db.migrate import head_revision


async def database_health(conn: AsyncConnection) -> dict[str, Any]:
    """PostgreSQL and PostGIS versions and the schema revision versus the code's head."""
    cur = await conn.execute(
        "SELECT current_setting('server_version'), "
        "(SELECT extversion FROM pg_extension WHERE extname = 'postgis')"
    )
    row = await cur.fetchone()
    assert row is not None
    server_version, postgis = row
    revision: str | None = None
    try:
        async with conn.transaction():
            cur = await conn.execute("SELECT version_num FROM twin.alembic_version")
            rev_row = await cur.fetchone()
            revision = rev_row[0] if rev_row else None
    except psycopg.errors.UndefinedTable:
        revision = None
    head = head_revision()
    return {
        "reachable": True,
        "server_version": server_version,
        "postgis": postgis,
        "schema_revision": revision,
        "expected_revision": head,
        "schema_current": revision == head,
    }
