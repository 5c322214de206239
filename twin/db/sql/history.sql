-- The twin as it stood at an instant (GET /api/history, the map's time slider), from the
-- stored history: alert timestamps, task transitions, readings. Run as the caller: row-level
-- security scopes alerts and tasks. %(at)s is the instant; %(area)s an admin area (subtree) or
-- NULL for all the caller may see.

-- name: alerts
-- Alerts raised by then and not yet resolved then, with their status then.
SELECT al.id, al.rule_id, al.subject, al.level, al.cell, al.value, al.message, al.area_id,
       a.code AS area_code, a.name AS area_name,
       CASE WHEN al.acknowledged_at IS NOT NULL AND al.acknowledged_at <= %(at)s
            THEN 'acknowledged' ELSE 'active' END AS status,
       al.first_seen, al.acknowledged_at, al.resolved_at,
       ST_X(ST_PointOnSurface(a.geom)) AS lon, ST_Y(ST_PointOnSurface(a.geom)) AS lat
FROM twin.alert al LEFT JOIN twin.admin_area a ON a.id = al.area_id
WHERE al.first_seen <= %(at)s AND (al.resolved_at IS NULL OR al.resolved_at > %(at)s)
  AND al.status <> 'pending'
  AND (%(area)s::bigint IS NULL OR al.area_id IN (SELECT twin.area_subtree(%(area)s)))
ORDER BY al.first_seen DESC, al.id DESC
LIMIT %(limit)s

-- name: tasks
-- Tasks created by then, each in the state of its last transition at or before then.
SELECT t.id, t.title, t.priority, t.alert_id, t.area_id, a.code AS area_code,
       a.name AS area_name, tt.to_state AS state, tt.at AS since, t.due_at,
       (t.due_at IS NOT NULL AND t.due_at < %(at)s
        AND tt.to_state NOT IN ('done', 'closed', 'rejected')) AS overdue
FROM twin.task t
JOIN LATERAL (
    SELECT x.to_state, x.at FROM twin.task_transition x
    WHERE x.task_id = t.id AND x.at <= %(at)s ORDER BY x.at DESC, x.id DESC LIMIT 1
) tt ON true
LEFT JOIN twin.admin_area a ON a.id = t.area_id
WHERE (%(area)s::bigint IS NULL OR t.area_id IN (SELECT twin.area_subtree(%(area)s)))
ORDER BY t.id
LIMIT %(limit)s

-- name: readings
-- Each sensor's latest reading in the hour before then.
SELECT s.id AS datastream, s.code, s.kind, s.unit, o.value, o.observed_at
FROM twin.sensor s
JOIN LATERAL (
    SELECT value, observed_at FROM twin.observation
    WHERE sensor_id = s.id AND observed_at <= %(at)s AND observed_at > %(at)s - interval '1 hour'
    ORDER BY observed_at DESC LIMIT 1
) o ON true
ORDER BY s.id

-- name: span
-- From the first to the last recorded change: where the slider may go.
SELECT least((SELECT min(first_seen) FROM twin.alert), (SELECT min(at) FROM twin.task_transition),
             (SELECT min(observed_at) FROM twin.observation)) AS first,
       greatest((SELECT max(last_seen) FROM twin.alert),
                (SELECT max(at) FROM twin.task_transition),
                (SELECT max(observed_at) FROM twin.observation)) AS last
