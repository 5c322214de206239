"""Reading risk scores for the API: per layer and cell, with the people rule applied."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import dict_row

from twin.risk.catalog import LEVELS, Layer

# Cells of the layers in %(scoped)s (core layers) count only within the caller's scope.
LEVEL_COUNTS_SQL = """
SELECT layer_id, res, level, count(*)::int AS n, max(computed_at) AS computed_at
FROM twin.risk_score
WHERE NOT (layer_id = ANY(%(scoped)s::text[])) OR twin.scope_allows_cell(cell)
GROUP BY layer_id, res, level
"""

CELLS_SQL = """
SELECT twin.h3_to_hex(cell) AS h3, score, level, components, small_count,
       twin.scope_allows_cell(cell) AS in_scope
FROM twin.risk_score
WHERE layer_id = %(layer)s AND res = %(res)s
  AND (%(minx)s::float8 IS NULL
       OR geom && ST_MakeEnvelope(%(minx)s, %(miny)s, %(maxx)s, %(maxy)s, 4326))
  AND (%(level)s::text IS NULL OR level = %(level)s)
  AND (NOT %(scoped)s OR twin.scope_allows_cell(cell))
ORDER BY score DESC, cell
LIMIT %(limit)s
"""

CELL_SQL = """
SELECT layer_id, level, score, small_count, computed_at
FROM twin.risk_score WHERE res = %(res)s AND cell = %(cell)s
"""


async def level_counts(
    conn: AsyncConnection, scoped: list[str] | None = None
) -> dict[tuple[str, int], dict[str, Any]]:
    """(layer id, res) -> {"levels": {level: cells}, "computed_at": when}; the layers in
    ``scoped`` count only the cells within the caller's scope (``twin.scope_allows_cell``)."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    cur = await conn.execute(LEVEL_COUNTS_SQL, {"scoped": scoped or []})
    for layer_id, res, level, n, at in await cur.fetchall():
        entry = out.setdefault((layer_id, res), {"levels": {}, "computed_at": at})
        entry["levels"][level] = n
        entry["computed_at"] = max(entry["computed_at"], at)
    return out


def _hide_people(row: dict[str, Any], layer: Layer) -> dict[str, Any]:
    # A score built from a count below k would give the count away: hide the score and the
    # people inputs, keep the level (four bands say next to nothing about a count).
    people = {i.name for i in layer.inputs if i.people}
    row["score"] = None
    row["components"] = {
        name: ({"value": None, "norm": None, "points": None} if name in people else comp)
        for name, comp in row["components"].items()
    }
    return row


def _hide_layer_scores(row: dict[str, Any]) -> dict[str, Any]:
    # The one map lists each layer's score: a suppressed layer's score is hidden there too.
    row["components"] = {
        name: ({**comp, "score": None} if isinstance(comp, dict) and comp.get("suppressed")
               else comp)
        for name, comp in row["components"].items()
    }  # fmt: skip
    return row


async def risk_cells(
    conn: AsyncConnection,
    layer: Layer,
    *,
    res: int,
    bbox: tuple[float, float, float, float] | None,
    level: str | None,
    allowed: bool,
    limit: int,
    scoped: bool = False,
) -> list[dict[str, Any]]:
    """Scored cells of a layer at ``res`` (best first), optionally within a bbox or at a level;
    ``scoped``: only cells within the caller's scope (core layers)."""
    minx, miny, maxx, maxy = bbox if bbox else (None, None, None, None)
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(
            CELLS_SQL,
            {"layer": layer.id, "res": res, "minx": minx, "miny": miny, "maxx": maxx,
             "maxy": maxy, "level": level, "limit": limit, "scoped": scoped},
        )  # fmt: skip
        rows = await cur.fetchall()
    out = []
    for row in rows:
        small = row.pop("small_count")
        # Outside a scoped caller's scope, people counts are hidden as from the public.
        shown = allowed and row.pop("in_scope")
        if not shown:
            row = _hide_layer_scores(row)
        if small and not shown and res == layer.res:
            row = _hide_people(row, layer)
        elif small and not shown:
            row["score"] = None  # a rolled-up cell keeps only its level counts
        row["suppressed"] = bool(small and not shown)
        row.pop("in_scope", None)
        out.append(row)
    return out


async def cell_risks(
    conn: AsyncConnection, cell: int, *, res: int, layers: list[Layer], allowed: bool
) -> list[dict[str, Any]]:
    """The cell's level and score in each of ``layers`` (those the caller may see), worst first.

    Where a layer's score rests on a people count below k and the caller may not see people,
    the score is hidden and only the level is kept, as in the risk tiles."""
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(CELL_SQL, {"res": res, "cell": cell})
        rows = {r["layer_id"]: r for r in await cur.fetchall()}
    out = []
    for layer in layers:
        row = rows.get(layer.id)
        if row is None:
            continue
        hidden = bool(row["small_count"] and not allowed)
        out.append({"layer": layer.id, "title": layer.title, "family": layer.family,
                    "level": row["level"], "score": None if hidden else row["score"],
                    "suppressed": hidden, "computed_at": row["computed_at"]})  # fmt: skip
    rank = {lvl: i for i, lvl in enumerate(reversed(LEVELS))}
    out.sort(key=lambda r: (rank.get(r["level"], 9), r["layer"] != "onemap", r["layer"]))
    return out
