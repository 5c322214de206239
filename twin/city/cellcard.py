"""The cell card and area queries behind /api/cells and /api/addresses (async, read-only).

These shape what grid workers see: a cell's statistics (people counts suppressed for those
without the right), the admin areas that hold it, its open events and hazard sites.
"""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin import grid
from twin.access.privacy import suppress_stats, suppress_values
from twin.city.address import normalize
from twin.db.queries import query

SQL = "cells_api.sql"
# Metrics /api/cells can map; people counts among them are suppressed below k.
METRICS = ("population", "elderly", "jobs", "buildings", "floor_area_m2", "height_mean_m",
           "height_max_m", "enterprises", "hazard_sites", "events_open", "events_30d",
           "road_length_m")  # fmt: skip


async def cell_card(
    conn: AsyncConnection, cell: int, *, fine_res: int, k: int, allowed: bool, limit: int = 50
) -> dict[str, Any] | None:
    """Everything the twin holds about one cell, or None when it has no statistics: its
    statistics, the admin areas holding it (finest first), and up to ``limit`` open events,
    hazard sites and buildings (tallest first) lying in it."""
    res = int(grid.resolution([cell])[0])
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(SQL, "cell_stats"), {"res": res, "cell": cell})
        row = await cur.fetchone()
        if row is None:
            return None
        stats = suppress_stats(row, k, allowed=allowed)
        area_id = stats.pop("area_id")
        areas: list[dict[str, Any]] = []
        if area_id is not None:
            await cur.execute(query(SQL, "area_chain"), {"area_id": area_id})
            areas = list(await cur.fetchall())
        lo, hi = grid.descendant_range(cell, max(fine_res, res))
        window = {"lo": lo, "hi": hi, "limit": limit}
        await cur.execute(query(SQL, "open_events"), window)
        events = list(await cur.fetchall())
        await cur.execute(query(SQL, "hazard_sites"), window)
        sites = list(await cur.fetchall())
        await cur.execute(query(SQL, "buildings"), window)
        buildings = list(await cur.fetchall())
    stats["h3"] = grid.to_hex([cell])[0]
    stats["parent"] = grid.to_hex([stats["parent"]])[0] if stats["parent"] else None
    del stats["cell"]
    return {"cell": stats, "areas": areas, "open_events": events, "hazard_sites": sites,
            "buildings": buildings}  # fmt: skip


async def cells_in_bbox(
    conn: AsyncConnection,
    bbox: tuple[float, float, float, float],
    *,
    res: int,
    metric: str,
    k: int,
    allowed: bool,
    limit: int,
) -> list[dict[str, Any]]:
    """Cells of ``res`` whose boundary meets ``bbox`` with the value of ``metric``."""
    minx, miny, maxx, maxy = bbox
    params = {"res": res, "minx": minx, "miny": miny, "maxx": maxx, "maxy": maxy, "limit": limit}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(SQL, "cells_in_bbox"), params)
        rows = await cur.fetchall()
    values = [r[metric] for r in rows]
    if metric in ("population", "elderly", "jobs") and not allowed:
        values = [None if metric in r["hidden"] else v for r, v in zip(rows, values, strict=True)]
        values = suppress_values(values, k, allowed=allowed)
    return [
        {"h3": h, "value": v}
        for h, v in zip(grid.to_hex([r["cell"] for r in rows]), values, strict=True)
    ]


async def find_addresses(conn: AsyncConnection, q: str, *, limit: int) -> list[dict[str, Any]]:
    """Addresses matching ``q`` in normal form: exact, then prefix, then substring."""
    key = normalize(q)
    if key.endswith("号") and not q.strip().endswith(("号", "號")):
        key = key[:-1]  # a bare number typed as a prefix: do not demand the 号
    like = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    params = {"q": key, "prefix": f"{like}%", "contains": f"%{like}%", "limit": limit}
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query(SQL, "find_addresses"), params)
        rows = await cur.fetchall()
    for r in rows:
        cell = r.pop("cell")
        r["h3"] = grid.to_hex([cell])[0] if cell is not None else None
        r.pop("rank")
    return rows
