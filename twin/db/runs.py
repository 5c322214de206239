"""Reads of the simulation run registry (``twin.sim_run``) that every layer needs.

Which run a map, a layer or a rule shows is a question about stored data, not about running a
simulation, so it lives with the storage (``twin.runs.store`` writes the rows).
"""

from __future__ import annotations

import psycopg

# The run a map or a cockpit shows for a kind: the newest that succeeded. A traffic run that is
# another run's no-closure baseline is a reference, not a scenario, so it is never "the latest".
LATEST_RUN_SQL = """
SELECT id FROM twin.sim_run r
WHERE kind = %(kind)s AND status = 'succeeded'
  AND NOT EXISTS (SELECT 1 FROM twin.sim_run o WHERE o.baseline_run_id = r.id)
ORDER BY finished_at DESC NULLS LAST, id DESC
LIMIT 1
"""


def latest_run_id(conn: psycopg.Connection, kind: str) -> int | None:
    """The id of the newest succeeded run of ``kind`` that is no other run's baseline."""
    row = conn.execute(LATEST_RUN_SQL, {"kind": kind}).fetchone()
    return int(row[0]) if row else None


# The nowcast step that feeds the flood-depth inputs of the risk layers: the latest step, when
# it was stored after the latest flood run finished (the newest picture of the water wins; a
# storm run started later, a what-if, takes over until the next step).
NOWCAST_STEP_SQL = """
SELECT s.id FROM (
    SELECT id, created_at FROM twin.nowcast_step ORDER BY as_of DESC, id DESC LIMIT 1
) s
WHERE %(flood_run)s::bigint IS NULL
   OR s.created_at > (SELECT coalesce(finished_at, created_at) FROM twin.sim_run
                      WHERE id = %(flood_run)s)
"""


def nowcast_step_id(conn: psycopg.Connection, flood_run: int | None) -> int | None:
    """The nowcast step newer than ``flood_run`` (the latest flood run), or None."""
    row = conn.execute(NOWCAST_STEP_SQL, {"flood_run": flood_run}).fetchone()
    return int(row[0]) if row else None
