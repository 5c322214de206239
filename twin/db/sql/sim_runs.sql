-- Simulation runs as the API shows them (twin/api/routers/simulations.py).

-- name: run_by_id
SELECT id, kind, status, progress, params, summary, error, created_at, started_at, finished_at
FROM twin.sim_run WHERE id = %(id)s;

-- name: runs_list
-- Newest first; every kind when kind is null.
SELECT id, kind, status, progress, params, summary, error, created_at, started_at, finished_at
FROM twin.sim_run
WHERE %(kind)s::text IS NULL OR kind = %(kind)s
ORDER BY id DESC
LIMIT %(limit)s;
