-- The change feed of /api/stream (twin.feed). Rows carry ``tx``, the id of the transaction that
-- last wrote them (migration 0019). A read runs in one REPEATABLE READ transaction and takes
-- the rows whose tx is not visible in the reader's snapshot ``lo`` but is in ``hi`` (the
-- transaction's own snapshot, or the batch being finished), after the key (tx, kind, id).
-- Not visible in lo means: one of its running transactions (``lo_xip``), or at or above its
-- xmax; the two branches let the tx index pick those rows out (``from_tx``: lo's xmax, or the
-- last key's tx inside a batch, if higher; ``hi_xmax``: hi's xmax) without reading what
-- committed since the oldest running transaction. Run as the caller: row-level security
-- scopes them.

-- name: begin
SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY

-- name: snapshot
SELECT pg_current_snapshot()::text AS snapshot, current_setting('transaction_isolation') AS iso

-- name: alerts
SELECT al.tx, al.id, al.rule_id, al.subject, al.level, al.status, al.cell, al.value,
       al.threshold, al.message, al.hits, al.escalation, al.sim_run_id, al.first_seen,
       al.last_seen, al.acknowledged_at, al.resolved_at, al.area_id, a.code AS area_code,
       a.name AS area_name, a.level AS area_level, ST_X(ST_PointOnSurface(a.geom)) AS lon,
       ST_Y(ST_PointOnSurface(a.geom)) AS lat
FROM (SELECT * FROM twin.alert WHERE tx = ANY(%(lo_xip)s::bigint[])
      UNION ALL
      SELECT * FROM twin.alert WHERE tx >= %(from_tx)s AND tx < %(hi_xmax)s) al
LEFT JOIN twin.admin_area a ON a.id = al.area_id
WHERE al.tx < %(hi_xmax)s
  AND NOT pg_visible_in_snapshot((al.tx::text)::xid8, %(lo)s::pg_snapshot)
  AND pg_visible_in_snapshot((al.tx::text)::xid8, %(hi)s::pg_snapshot)
  AND (al.tx, 0, al.id) > (%(tx)s, %(kind)s, %(id)s)
ORDER BY al.tx, al.id
LIMIT %(limit)s

-- name: transitions
SELECT tt.tx, tt.id, tt.task_id, tt.from_state, tt.to_state, tt.actor, tt.note, tt.at,
       t.title, t.state, t.priority, t.alert_id, t.cell, t.due_at, t.area_id,
       a.code AS area_code, a.name AS area_name, a.level AS area_level
FROM (SELECT * FROM twin.task_transition WHERE tx = ANY(%(lo_xip)s::bigint[])
      UNION ALL
      SELECT * FROM twin.task_transition WHERE tx >= %(from_tx)s AND tx < %(hi_xmax)s) tt
JOIN twin.task t ON t.id = tt.task_id
LEFT JOIN twin.admin_area a ON a.id = t.area_id
WHERE tt.tx < %(hi_xmax)s
  AND NOT pg_visible_in_snapshot((tt.tx::text)::xid8, %(lo)s::pg_snapshot)
  AND pg_visible_in_snapshot((tt.tx::text)::xid8, %(hi)s::pg_snapshot)
  AND (tt.tx, 1, tt.id) > (%(tx)s, %(kind)s, %(id)s)
ORDER BY tt.tx, tt.id
LIMIT %(limit)s

-- name: versions
SELECT layer, version FROM twin.layer_version ORDER BY layer
