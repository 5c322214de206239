"""What lies within a caller's scope where row-level security alone cannot say: cells.

A caller's scope is a set of admin areas (``twin.access.principal.Principal.scope``). Rows that
carry an area (events, tasks, alerts) and hazard sites are scoped by row-level security in
PostgreSQL.
Cell-level data is not a row of the caller's: cell statistics and risk scores of one cell are
shown to everyone, but people counts unsuppressed and core layers only within the scope. A
cell is within a scope when the grid patch holding its centre is (``cell_stats.area_id``, as
the cockpits count cells; ``twin.scope_allows_cell``). Outside its scope a scoped user is the
public (see docs/access.md).

The queries run in the request's transaction, whose ``twin.scope`` is the caller's.
"""

from __future__ import annotations

from collections.abc import Iterable

from psycopg import AsyncConnection

from twin.access.principal import Principal

IN_SCOPE_SQL = "SELECT c FROM unnest(%s::bigint[]) AS c WHERE twin.scope_allows_cell(c)"

#: A condition on alias ``t`` with a ``cell`` column: the cell is within the caller's scope.
CELL_IN_SCOPE = "twin.scope_allows_cell(t.cell)"


async def cells_in_scope(conn: AsyncConnection, who: Principal, cells: Iterable[int]) -> set[int]:
    """Those of ``cells`` within ``who``'s scope (all of them for an unscoped caller)."""
    cells = [int(c) for c in cells]
    if not who.scoped:
        return set(cells)
    if not cells:
        return set()
    cur = await conn.execute(IN_SCOPE_SQL, (cells,))
    return {int(r[0]) for r in await cur.fetchall()}


async def cell_in_scope(conn: AsyncConnection, who: Principal, cell: int) -> bool:
    return cell in await cells_in_scope(conn, who, [cell])
