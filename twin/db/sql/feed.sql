-- The change feed of /api/stream (twin.feed). Rows carry ``tx``, the id of the transaction that
-- last wrote them (migration 0019). A read takes rows after the cursor (tx, kind, id) and below
-- the oldest transaction still running: no row can appear below that mark later, so resuming
-- from the last event seen misses nothing. Run as the caller: row-level security scopes them.

-- name: horizon
SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint AS upto

-- name: alerts
SELECT al.tx, al.id, al.rule_id, al.subject, al.level, al.status, al.cell, al.value,
       al.threshold, al.message, al.hits, al.escalation, al.sim_run_id, al.first_seen,
       al.last_seen, al.acknowledged_at, al.resolved_at, al.area_id, a.code AS area_code,
       a.name AS area_name, a.level AS area_level, ST_X(ST_PointOnSurface(a.geom)) AS lon,
       ST_Y(ST_PointOnSurface(a.geom)) AS lat
FROM twin.alert al LEFT JOIN twin.admin_area a ON a.id = al.area_id
WHERE al.tx >= %(tx)s AND (al.tx, 0, al.id) > (%(tx)s, %(kind)s, %(id)s) AND al.tx < %(upto)s
ORDER BY al.tx, al.id
LIMIT %(limit)s

-- name: transitions
SELECT tt.tx, tt.id, tt.task_id, tt.from_state, tt.to_state, tt.actor, tt.note, tt.at,
       t.title, t.state, t.priority, t.alert_id, t.cell, t.due_at, t.area_id,
       a.code AS area_code, a.name AS area_name, a.level AS area_level
FROM twin.task_transition tt
JOIN twin.task t ON t.id = tt.task_id
LEFT JOIN twin.admin_area a ON a.id = t.area_id
WHERE tt.tx >= %(tx)s AND (tt.tx, 1, tt.id) > (%(tx)s, %(kind)s, %(id)s) AND tt.tx < %(upto)s
ORDER BY tt.tx, tt.id
LIMIT %(limit)s

-- name: versions
SELECT layer, version FROM twin.layer_version ORDER BY layer
