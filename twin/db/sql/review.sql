-- The after-action review (复盘) of a period [from, to): twin.reporting.review.
--
-- Every statement takes %(from)s and %(to)s (timestamptz, half-open) and the area filter:
-- %(whole)s (true: the whole city, nothing filtered) or %(ids)s, the admin area ids of the
-- subtree. Records with an area_id (alerts, tasks) join it directly; sensors and road links
-- go by the grid patch holding their point (a link's midpoint). Run as the caller: row-level
-- security decides which alerts and tasks exist at all.

-- name: sensors
-- Rain gauges and water-level sensors in the area with their readings of the period: the
-- count, the maximum and its first time, and the rain depth (mm): a depth reading ("mm") adds
-- its value; an intensity ("mm/h") holds until the next reading, at most %(hold_s)s seconds
-- and never past %(to)s.
WITH s AS (
    SELECT s.id, s.code, s.kind, s.unit
    FROM twin.sensor s
    WHERE s.kind IN ('rain_gauge', 'water_level')
      AND (%(whole)s OR EXISTS (
            SELECT 1 FROM twin.admin_area a
            WHERE a.id = ANY(%(ids)s) AND a.level = 'grid' AND ST_Intersects(a.geom, s.geom)))
), o AS (
    SELECT o.sensor_id, o.observed_at, o.value,
           lead(o.observed_at) OVER (PARTITION BY o.sensor_id ORDER BY o.observed_at) AS next_at
    FROM twin.observation o JOIN s ON s.id = o.sensor_id
    WHERE o.observed_at >= %(from)s AND o.observed_at < %(to)s
)
SELECT s.id, s.code, s.kind, s.unit,
       count(o.value) AS readings,
       max(o.value) AS max_value,
       (SELECT min(x.observed_at) FROM o x
        WHERE x.sensor_id = s.id AND x.value = max(o.value)) AS max_at,
       CASE WHEN s.kind <> 'rain_gauge' THEN NULL
            WHEN s.unit = 'mm' THEN coalesce(sum(o.value), 0)
            ELSE coalesce(sum(o.value * extract(epoch FROM
                     least(coalesce(o.next_at, %(to)s), %(to)s,
                           o.observed_at + make_interval(secs => %(hold_s)s))
                     - o.observed_at) / 3600.0), 0)
       END AS rain_mm
FROM s LEFT JOIN o ON o.sensor_id = s.id
GROUP BY s.id, s.code, s.kind, s.unit
ORDER BY s.kind, s.code;

-- name: sensor_buckets
-- The largest reading of each sensor in each 5-minute bucket from %(from)s.
SELECT o.sensor_id, date_bin('5 minutes', o.observed_at, %(from)s) AS bucket,
       max(o.value) AS value
FROM twin.observation o
WHERE o.sensor_id = ANY(%(sensors)s) AND o.observed_at >= %(from)s AND o.observed_at < %(to)s
GROUP BY 1, 2
ORDER BY 1, 2;

-- name: nowcast_steps
SELECT count(*) AS n, min(as_of) AS first, max(as_of) AS last
FROM twin.nowcast_step
WHERE as_of >= %(from)s AND as_of < %(to)s;

-- name: nowcast_pairs
-- Each skill row of a step at t in the period, with the +60 min prediction made at t - 60 min
-- (a step with horizon_s = 3600 within %(tol_s)s seconds of it; the nearest, then the
-- lowest id) for the sensor's cell: its depth_horizon_m, 0 where the step stored no row for
-- the cell (dry). The observed depth is the reading, or for a datum sensor the reading less
-- the ground at its pixel (modelled level - modelled depth).
SELECT sk.sensor_id, s.code, st.as_of AS t, sk.observed_at,
       CASE WHEN s.attrs ->> 'datum' = 'elevation'
            THEN sk.observed_m - (sk.modelled_level_m - sk.modelled_depth_m)
            ELSE sk.observed_m END AS observed_depth_m,
       sk.modelled_depth_m AS modelled_now_m,
       p.id AS predicted_step, p.as_of AS predicted_at,
       CASE WHEN p.id IS NULL OR s.cell IS NULL THEN NULL
            ELSE coalesce(nc.depth_horizon_m, 0) END AS predicted_depth_m
FROM twin.nowcast_skill sk
JOIN twin.nowcast_step st ON st.id = sk.step_id
JOIN twin.sensor s ON s.id = sk.sensor_id
LEFT JOIN LATERAL (
    SELECT p.id, p.as_of FROM twin.nowcast_step p
    WHERE p.horizon_s = 3600
      AND abs(extract(epoch FROM p.as_of - (st.as_of - interval '1 hour'))) <= %(tol_s)s
    ORDER BY abs(extract(epoch FROM p.as_of - (st.as_of - interval '1 hour'))), p.id
    LIMIT 1
) p ON true
LEFT JOIN twin.nowcast_cell nc ON nc.step_id = p.id AND nc.cell = s.cell
WHERE st.as_of >= %(from)s AND st.as_of < %(to)s
  AND (%(whole)s OR EXISTS (
        SELECT 1 FROM twin.admin_area a
        WHERE a.id = ANY(%(ids)s) AND a.level = 'grid' AND ST_Intersects(a.geom, s.geom)))
ORDER BY st.as_of, s.code;

-- name: alerts
-- Alerts raised in the period in the area, with, for a sensor rule (%(ge)s: rule ids whose
-- op is >=, %(gt)s: >), the first reading over the threshold of the run of such readings that
-- ends at first_seen (no reading under it between them), looking back at most %(lookback_s)s
-- seconds. Times after %(to)s have not happened.
SELECT a.id, a.rule_id, a.subject, a.level, a.status, ar.code AS area_code,
       a.value, a.threshold, a.first_seen,
       CASE WHEN a.acknowledged_at < %(to)s THEN a.acknowledged_at END AS acknowledged_at,
       CASE WHEN a.resolved_at < %(to)s THEN a.resolved_at END AS resolved_at,
       s.id IS NOT NULL AS sensor_rule,
       c.crossed_at
FROM twin.alert a
LEFT JOIN twin.admin_area ar ON ar.id = a.area_id
LEFT JOIN twin.sensor s
       ON s.code = a.subject AND a.threshold IS NOT NULL
      AND (a.rule_id = ANY(%(ge)s) OR a.rule_id = ANY(%(gt)s))
LEFT JOIN LATERAL (
    WITH over AS (
        SELECT o.observed_at,
               CASE WHEN a.rule_id = ANY(%(gt)s) THEN o.value > a.threshold
                    ELSE o.value >= a.threshold END AS is_over
        FROM twin.observation o
        WHERE o.sensor_id = s.id AND o.observed_at <= a.first_seen
          AND o.observed_at > a.first_seen - make_interval(secs => %(lookback_s)s)
    )
    SELECT min(observed_at) AS crossed_at FROM over
    WHERE is_over AND observed_at > coalesce(
        (SELECT max(observed_at) FROM over WHERE NOT is_over), '-infinity'::timestamptz)
) c ON s.id IS NOT NULL
WHERE a.first_seen >= %(from)s AND a.first_seen < %(to)s
  AND (%(whole)s OR a.area_id = ANY(%(ids)s))
ORDER BY a.first_seen, a.id;

-- name: tasks
-- Tasks dispatched (created) in the period in the area, with the first transition to
-- accepted, done and closed before %(to)s.
SELECT t.id, t.title, t.state, t.priority, ar.code AS area_code, t.alert_id,
       t.created_at, t.due_at,
       min(x.at) FILTER (WHERE x.to_state = 'accepted') AS accepted_at,
       min(x.at) FILTER (WHERE x.to_state = 'done') AS done_at,
       min(x.at) FILTER (WHERE x.to_state = 'closed') AS closed_at
FROM twin.task t
JOIN twin.admin_area ar ON ar.id = t.area_id
LEFT JOIN twin.task_transition x ON x.task_id = t.id AND x.at < %(to)s
WHERE t.created_at >= %(from)s AND t.created_at < %(to)s
  AND (%(whole)s OR t.area_id = ANY(%(ids)s))
GROUP BY t.id, ar.code
ORDER BY t.created_at, t.id;

-- name: flood_closures
-- Road links closed by the storm (flood) runs that finished in the period, in the area.
WITH runs AS (
    SELECT r.id, r.finished_at FROM twin.sim_run r
    WHERE r.kind = 'flood' AND r.status = 'succeeded'
      AND r.finished_at >= %(from)s AND r.finished_at < %(to)s
)
SELECT runs.id AS run_id, runs.finished_at, l.id AS link_id, l.name, l.road_class,
       fl.max_depth_m
FROM runs
JOIN twin.flood_link_result fl ON fl.run_id = runs.id AND fl.state = 'closed'
JOIN twin.road_link l ON l.id = fl.link_id
WHERE %(whole)s OR EXISTS (
    SELECT 1 FROM twin.admin_area a
    WHERE a.id = ANY(%(ids)s) AND a.level = 'grid'
      AND ST_Intersects(a.geom, ST_LineInterpolatePoint(l.geom, 0.5)))
ORDER BY runs.id, l.id;

-- name: flood_runs
SELECT r.id, r.finished_at FROM twin.sim_run r
WHERE r.kind = 'flood' AND r.status = 'succeeded'
  AND r.finished_at >= %(from)s AND r.finished_at < %(to)s
ORDER BY r.id;

-- name: nowcast_closures
-- Road links the nowcast saw closed (state_now) at a step in the period, in the area: the
-- first and last such step and the deepest water along the link.
SELECT l.id AS link_id, l.name, l.road_class, min(st.as_of) AS first_closed,
       max(st.as_of) AS last_closed, count(*) AS steps, max(nl.depth_now_m) AS max_depth_m
FROM twin.nowcast_link nl
JOIN twin.nowcast_step st ON st.id = nl.step_id
JOIN twin.road_link l ON l.id = nl.link_id
WHERE nl.state_now = 'closed' AND st.as_of >= %(from)s AND st.as_of < %(to)s
  AND (%(whole)s OR EXISTS (
        SELECT 1 FROM twin.admin_area a
        WHERE a.id = ANY(%(ids)s) AND a.level = 'grid'
          AND ST_Intersects(a.geom, ST_LineInterpolatePoint(l.geom, 0.5))))
GROUP BY l.id
ORDER BY min(st.as_of), l.id;

-- name: traffic_delays
-- Traffic runs finished in the period with road closures and a no-closure baseline: the
-- extra total system travel time (veh-h) the closures caused (summary.change), city-wide.
SELECT r.id, r.finished_at, r.baseline_run_id,
       (r.summary ->> 'closed_links')::int AS closed_links,
       (r.summary -> 'change' ->> 'tstt_veh_h')::float8 AS extra_veh_h,
       (r.summary -> 'change' ->> 'tstt_pct')::float8 AS extra_pct,
       (r.summary -> 'baseline' ->> 'tstt_veh_h')::float8 AS baseline_veh_h,
       (r.summary ->> 'tstt_veh_h')::float8 AS tstt_veh_h,
       r.params -> 'flood_runs' AS flood_runs
FROM twin.sim_run r
WHERE r.kind = 'traffic' AND r.status = 'succeeded'
  AND r.finished_at >= %(from)s AND r.finished_at < %(to)s
  AND coalesce((r.summary ->> 'closed_links')::int, 0) > 0
  AND r.summary ? 'change'
ORDER BY r.id;
