-- Queries behind the decision report (`twin report`), over the areas %(ids)s (an area's
-- subtree). Windows as in cockpit.sql: this period [%(start)s, %(end)s), the one before
-- [%(prev)s, %(start)s).

-- name: events_by_type
SELECT e.type,
       count(*) FILTER (WHERE e.occurred_at >= %(start)s) AS current,
       count(*) FILTER (WHERE e.occurred_at < %(start)s) AS previous
FROM twin.event e
WHERE e.area_id = ANY(%(ids)s::bigint[])
  AND e.occurred_at >= %(prev)s AND e.occurred_at < %(end)s
GROUP BY e.type
ORDER BY current DESC, previous DESC, e.type;

-- name: events_daily
-- Events per day counted from the period start: day 0 .. days-1 this period, -days .. -1 the
-- period before (days are 24 h steps from %(start)s, not calendar days).
SELECT floor(extract(epoch FROM e.occurred_at - %(start)s) / 86400)::int AS day,
       count(*) AS n
FROM twin.event e
WHERE e.area_id = ANY(%(ids)s::bigint[])
  AND e.occurred_at >= %(prev)s AND e.occurred_at < %(end)s
GROUP BY 1 ORDER BY 1;

-- name: task_transitions
-- Tasks of the areas that entered each state in each period (a task counts once per state).
SELECT x.to_state AS state,
       count(DISTINCT x.task_id) FILTER (WHERE x.at >= %(start)s) AS current,
       count(DISTINCT x.task_id) FILTER (WHERE x.at < %(start)s) AS previous
FROM twin.task_transition x
JOIN twin.task t ON t.id = x.task_id
WHERE t.area_id = ANY(%(ids)s::bigint[]) AND x.at >= %(prev)s AND x.at < %(end)s
GROUP BY x.to_state;

-- name: task_times
-- Response (first 'accepted') and completion (first 'done') times in hours after creation,
-- for tasks created in each period, counted once the transition happened before %(end)s.
WITH t AS (
    SELECT t.created_at >= %(start)s AS current,
           extract(epoch FROM (SELECT min(x.at) FROM twin.task_transition x
                               WHERE x.task_id = t.id AND x.to_state = 'accepted'
                                 AND x.at < %(end)s) - t.created_at)::float8 / 3600.0
               AS response_h,
           extract(epoch FROM (SELECT min(x.at) FROM twin.task_transition x
                               WHERE x.task_id = t.id AND x.to_state = 'done'
                                 AND x.at < %(end)s) - t.created_at)::float8 / 3600.0
               AS done_h
    FROM twin.task t
    WHERE t.area_id = ANY(%(ids)s::bigint[])
      AND t.created_at >= %(prev)s AND t.created_at < %(end)s
)
SELECT current,
       count(*) AS created,
       count(response_h) AS responded,
       avg(response_h) AS response_mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY response_h) AS response_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY response_h) AS response_p90,
       count(done_h) AS completed,
       avg(done_h) AS done_mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY done_h) AS done_median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY done_h) AS done_p90
FROM t GROUP BY current;

-- name: flood_runs
-- Succeeded flood runs finished in this period, oldest first.
SELECT id, finished_at, summary FROM twin.sim_run
WHERE kind = 'flood' AND status = 'succeeded'
  AND finished_at >= %(start)s AND finished_at < %(end)s
ORDER BY finished_at, id;

-- name: traffic_runs
-- Succeeded traffic runs finished in this period that are no other run's baseline, with the
-- delay index of their own no-closure baseline.
SELECT r.id, r.finished_at, r.summary, r.baseline_run_id,
       (b.summary->>'delay_index')::float8 AS baseline_delay_index
FROM twin.sim_run r
LEFT JOIN twin.sim_run b ON b.id = r.baseline_run_id
WHERE r.kind = 'traffic' AND r.status = 'succeeded'
  AND r.finished_at >= %(start)s AND r.finished_at < %(end)s
  AND NOT EXISTS (SELECT 1 FROM twin.sim_run o WHERE o.baseline_run_id = r.id)
ORDER BY r.finished_at, r.id;

-- name: flood_affected
-- Buildings of the areas a flood run reached at %(depth)s m or more, and their residents.
SELECT count(*) AS buildings,
       coalesce(sum((SELECT count(*) FROM twin.person p WHERE p.home_building_id = b.id)), 0)
           AS people
FROM twin.flood_building_result fb
JOIN twin.building b ON b.id = fb.building_id
WHERE fb.run_id = %(run)s AND fb.max_depth_m >= %(depth)s
  AND b.area_id = ANY(%(ids)s::bigint[]);
