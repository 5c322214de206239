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
