-- Queries behind the cockpits (/api/cockpit) and the decision report (`twin report`).
--
-- Every figure is grouped by a caller-supplied mapping of admin areas to groups, given as two
-- parallel arrays %(ids)s (areas) and %(grps)s (the group each belongs to): an area's cockpit
-- maps its whole subtree to itself, its children's headline figures map each child's subtree
-- to the child. Rows carrying an area_id (events, buildings, tasks, alerts) join the mapping
-- directly; cell results go through cell_stats.area_id (the grid patch holding the cell) at the
-- resolution of the result. Time windows are half-open: [start, end).

-- name: area_by_id
SELECT a.id, a.code, a.name, a.name_en, a.level, a.parent_id
FROM twin.admin_area a WHERE a.id = %(id)s;

-- name: area_by_code
SELECT a.id, a.code, a.name, a.name_en, a.level, a.parent_id
FROM twin.admin_area a WHERE a.code = %(code)s;

-- name: root_area
-- The city (the one area without a parent, at the city level); the lowest id if several.
SELECT a.id, a.code, a.name, a.name_en, a.level, a.parent_id
FROM twin.admin_area a WHERE a.parent_id IS NULL AND a.level = 'city'
ORDER BY a.id LIMIT 1;

-- name: children
SELECT a.id, a.code, a.name, a.name_en, a.level, a.parent_id
FROM twin.admin_area a WHERE a.parent_id = %(id)s ORDER BY a.code, a.id;

-- name: subtree
SELECT s AS id FROM twin.area_subtree(%(id)s) AS s;

-- name: descendants_by_child
-- Every area below %(id)s with the child of %(id)s it lies under (children included).
WITH RECURSIVE down(id, grp) AS (
    SELECT id, id FROM twin.admin_area WHERE parent_id = %(id)s
    UNION ALL
    SELECT a.id, d.grp FROM twin.admin_area a JOIN down d ON a.parent_id = d.id
)
SELECT id, grp FROM down;

-- name: population
-- Residents whose home building lies in the group (building.area_id is a grid patch), from the
-- per-patch counts the cell refresh keeps (twin.area_counts): a city's worth of residents is
-- summed from its patches instead of counted (5 s for 12 M people).
SELECT m.grp, sum(c.residents) AS n
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.area_counts c ON c.area_id = m.id
GROUP BY m.grp;

-- name: buildings
SELECT m.grp, sum(c.buildings) AS n
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.area_counts c ON c.area_id = m.id
GROUP BY m.grp;

-- name: events
-- Open at an instant T: reported before T and not closed before T (an event closed without a
-- closing time counts as closed). When %(live)s (the cockpit describes now) every event whose
-- status is open or in_progress counts, including simulation events dated ahead on the storm's
-- clock. Reported / closed: occurred_at / closed_at in the window.
SELECT m.grp,
    count(*) FILTER (WHERE (e.status <> 'closed' AND (%(live)s OR e.occurred_at < %(end)s))
                        OR (e.status = 'closed' AND e.occurred_at < %(end)s
                            AND e.closed_at >= %(end)s)) AS open_now,
    count(*) FILTER (WHERE e.occurred_at < %(start)s
                       AND (e.status <> 'closed' OR e.closed_at >= %(start)s)) AS open_before,
    count(*) FILTER (WHERE e.occurred_at >= %(start)s AND e.occurred_at < %(end)s) AS reported,
    count(*) FILTER (WHERE e.occurred_at >= %(prev)s AND e.occurred_at < %(start)s)
        AS reported_prev,
    count(*) FILTER (WHERE e.status = 'closed'
                       AND e.closed_at >= %(start)s AND e.closed_at < %(end)s) AS closed,
    count(*) FILTER (WHERE e.status = 'closed'
                       AND e.closed_at >= %(prev)s AND e.closed_at < %(start)s) AS closed_prev
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.event e ON e.area_id = m.id
GROUP BY m.grp;

-- name: tasks
-- Tasks whose area lies in the group. Response: first transition to 'accepted' minus
-- created_at; completion: first transition to 'done' minus created_at (hours), both for tasks
-- created in the window and counted once that transition happened before %(end)s. The state
-- at an instant T is the target of the last transition before T ('open' when the task has
-- transitions but none before T; its current state when it has none at all).
-- Open: any state but done, closed and rejected; overdue: open with due_at before T.
WITH t AS (
    SELECT m.grp, t.created_at, t.due_at,
           (SELECT min(x.at) FROM twin.task_transition x
            WHERE x.task_id = t.id AND x.to_state = 'accepted' AND x.at < %(end)s) AS accepted_at,
           (SELECT min(x.at) FROM twin.task_transition x
            WHERE x.task_id = t.id AND x.to_state = 'done' AND x.at < %(end)s) AS done_at,
           CASE WHEN t.created_at < %(end)s THEN coalesce(
               (SELECT x.to_state FROM twin.task_transition x
                WHERE x.task_id = t.id AND x.at < %(end)s ORDER BY x.at DESC, x.id DESC LIMIT 1),
               CASE WHEN EXISTS (SELECT 1 FROM twin.task_transition x WHERE x.task_id = t.id)
                    THEN 'open' ELSE t.state END) END AS state_now,
           CASE WHEN t.created_at < %(start)s THEN coalesce(
               (SELECT x.to_state FROM twin.task_transition x
                WHERE x.task_id = t.id AND x.at < %(start)s ORDER BY x.at DESC, x.id DESC LIMIT 1),
               CASE WHEN EXISTS (SELECT 1 FROM twin.task_transition x WHERE x.task_id = t.id)
                    THEN 'open' ELSE t.state END) END AS state_before
    FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
    JOIN twin.task t ON t.area_id = m.id
), w AS (
    SELECT t.*,
           t.created_at >= %(start)s AND t.created_at < %(end)s AS in_now,
           t.created_at >= %(prev)s AND t.created_at < %(start)s AS in_prev,
           extract(epoch FROM t.accepted_at - t.created_at)::float8 / 3600.0 AS response_h,
           extract(epoch FROM t.done_at - t.created_at)::float8 / 3600.0 AS done_h
    FROM t
)
SELECT grp,
    count(*) FILTER (WHERE in_now) AS created,
    count(*) FILTER (WHERE in_prev) AS created_prev,
    avg(response_h) FILTER (WHERE in_now) AS response_h,
    avg(response_h) FILTER (WHERE in_prev) AS response_h_prev,
    avg(done_h) FILTER (WHERE in_now) AS done_h,
    avg(done_h) FILTER (WHERE in_prev) AS done_h_prev,
    count(*) FILTER (WHERE state_now NOT IN ('done', 'closed', 'rejected')) AS open_now,
    count(*) FILTER (WHERE state_before NOT IN ('done', 'closed', 'rejected')) AS open_before,
    count(*) FILTER (WHERE state_now NOT IN ('done', 'closed', 'rejected')
                       AND due_at < %(end)s) AS overdue_now,
    count(*) FILTER (WHERE state_before NOT IN ('done', 'closed', 'rejected')
                       AND due_at < %(start)s) AS overdue_before
FROM w GROUP BY grp;

-- name: risk_cells
-- Cells per level of a risk layer at a resolution whose grid patch lies in the group.
SELECT m.grp, r.level, count(*) AS n
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.cell_stats cs ON cs.area_id = m.id AND cs.res = %(res)s
JOIN twin.risk_score r ON r.layer_id = %(layer)s AND r.res = cs.res AND r.cell = cs.cell
GROUP BY m.grp, r.level;

-- name: risk_computed_at
SELECT max(computed_at) AS at FROM twin.risk_score
WHERE layer_id = %(layer)s AND res = %(res)s;

-- name: risk_snapshots
-- The two newest snapshots of an area's layer taken at or before %(before)s (newest first).
SELECT computed_at, blue, yellow, orange, red
FROM twin.risk_snapshot
WHERE layer_id = %(layer)s AND area_id = %(area)s AND computed_at <= %(before)s
ORDER BY computed_at DESC, id DESC LIMIT 2;

-- name: risk_snapshot_before
-- The newest snapshot of an area's layer strictly before %(before)s.
SELECT computed_at, blue, yellow, orange, red
FROM twin.risk_snapshot
WHERE layer_id = %(layer)s AND area_id = %(area)s AND computed_at < %(before)s
ORDER BY computed_at DESC, id DESC LIMIT 1;

-- name: alerts
-- Alerts raised (past pending) and not resolved at the instant: status active or acknowledged
-- with first_seen before it, or resolved after it.
SELECT m.grp, a.level,
    count(*) FILTER (WHERE a.first_seen < %(end)s
                       AND (a.status IN ('active', 'acknowledged')
                            OR (a.status = 'resolved' AND a.resolved_at >= %(end)s))) AS n_now,
    count(*) FILTER (WHERE a.first_seen < %(start)s
                       AND (a.status IN ('active', 'acknowledged')
                            OR (a.status = 'resolved' AND a.resolved_at >= %(start)s))) AS n_before
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.alert a ON a.area_id = m.id
GROUP BY m.grp, a.level;

-- name: latest_flood_runs
-- The two newest succeeded flood runs finished before %(end)s.
SELECT id, finished_at, summary FROM twin.sim_run
WHERE kind = 'flood' AND status = 'succeeded' AND finished_at < %(end)s
ORDER BY finished_at DESC, id DESC LIMIT 2;

-- name: latest_traffic_runs
-- The two newest succeeded traffic runs finished before %(end)s that are no other run's
-- no-closure baseline.
SELECT r.id, r.finished_at, r.summary FROM twin.sim_run r
WHERE r.kind = 'traffic' AND r.status = 'succeeded' AND r.finished_at < %(end)s
  AND NOT EXISTS (SELECT 1 FROM twin.sim_run o WHERE o.baseline_run_id = r.id)
ORDER BY r.finished_at DESC, r.id DESC LIMIT 2;

-- name: flooded_cells
-- Cells of a flood run at %(res)s with some flooded share, by group.
SELECT m.grp, f.cell, f.flooded_share
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.cell_stats cs ON cs.area_id = m.id AND cs.res = %(res)s
JOIN twin.flood_cell_result f ON f.run_id = %(run)s AND f.res = cs.res AND f.cell = cs.cell
WHERE f.flooded_share > 0
ORDER BY m.grp, f.cell;

-- name: closed_links
-- Road links a flood run closed, by the grid patch of the link: that of its midpoint cell at
-- %(res)s in cell_stats, else the patch containing its midpoint. MATERIALIZED: inlined, the
-- links were worked out again for every area of the mapping (a minute at the large city).
WITH links AS MATERIALIZED (
    SELECT l.id,
           coalesce(cs.area_id,
                    -- min(), not ORDER BY id LIMIT 1: that walked the id index testing
                    -- every patch (30 s at the large city); this takes the GiST index.
                    (SELECT min(a.id) FROM twin.admin_area a
                     WHERE a.level = 'grid'
                       AND ST_Intersects(a.geom, ST_LineInterpolatePoint(l.geom, 0.5)))) AS patch
    FROM twin.flood_link_result fl
    JOIN twin.road_link l ON l.id = fl.link_id
    LEFT JOIN twin.cell_stats cs ON cs.res = %(res)s AND cs.cell = twin.h3_parent(l.cell, %(res)s)
    WHERE fl.run_id = %(run)s AND fl.state = 'closed'
)
SELECT m.grp, count(*) AS n
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN links ON links.patch = m.id
GROUP BY m.grp;

-- name: traffic_cells
-- Vehicle-km and VKT x travel-time index of a traffic run's cells at %(res)s, by group.
SELECT m.grp, sum(t.vkt) AS vkt, sum(t.vkt * t.tti) AS vkt_tti
FROM unnest(%(ids)s::bigint[], %(grps)s::bigint[]) AS m(id, grp)
JOIN twin.cell_stats cs ON cs.area_id = m.id AND cs.res = %(res)s
JOIN twin.traffic_cell_result t ON t.run_id = %(run)s AND t.res = cs.res AND t.cell = cs.cell
GROUP BY m.grp;
