-- Simulation runs as the API shows them (twin/api/routers/simulations.py).

-- name: run_by_id
SELECT id, kind, status, progress, params, summary, error, created_at, started_at, finished_at,
       created_by, dismissed_at
FROM twin.sim_run WHERE id = %(id)s;

-- name: runs_list
-- Newest first; every kind when kind is null.
SELECT id, kind, status, progress, params, summary, error, created_at, started_at, finished_at
FROM twin.sim_run
WHERE %(kind)s::text IS NULL OR kind = %(kind)s
ORDER BY id DESC
LIMIT %(limit)s;

-- name: job_dismiss
-- OGC API Processes dismiss: a queued or running run is cancelled (its worker stops at its
-- next progress report, twin.runs.store), every run leaves the job list. Null: already gone.
UPDATE twin.sim_run
SET status = CASE WHEN status IN ('queued', 'running') THEN 'cancelled' ELSE status END,
    finished_at = CASE WHEN status IN ('queued', 'running') THEN now() ELSE finished_at END,
    dismissed_at = now()
WHERE id = %(id)s AND dismissed_at IS NULL
RETURNING id, kind, status, progress, params, summary, error, created_at, started_at,
          finished_at, created_by, dismissed_at;

-- name: jobs_list
-- The OGC API Processes job list: flood and traffic runs not dismissed, newest first.
SELECT id, kind, status, progress, params, summary, error, created_at, started_at, finished_at
FROM twin.sim_run
WHERE dismissed_at IS NULL AND kind IN ('flood', 'traffic')
  AND (%(kind)s::text IS NULL OR kind = %(kind)s)
ORDER BY id DESC
LIMIT %(limit)s;
