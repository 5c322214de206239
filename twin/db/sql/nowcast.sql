-- The rolling flood nowcast (twin/runs/nowcast.py).

-- name: rain_gauges
-- Rain gauges placed on the map (kind rain_gauge, or a datastream whose quantity names rain or
-- precipitation), with their latest reading at or before the window's end and what they read
-- over the window (start, end]: count, mean (intensities) and sum (depths).
SELECT s.code, s.unit, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat,
       last.observed_at AS last_seen, last.value AS last_value,
       coalesce(win.n, 0) AS n, win.mean_value, win.sum_value
FROM twin.sensor s
LEFT JOIN LATERAL (
    SELECT o.observed_at, o.value FROM twin.observation o
    WHERE o.sensor_id = s.id AND o.observed_at <= %(end)s
    ORDER BY o.observed_at DESC LIMIT 1
) last ON true
LEFT JOIN LATERAL (
    SELECT count(*) AS n, avg(o.value) AS mean_value, sum(o.value) AS sum_value
    FROM twin.observation o
    WHERE o.sensor_id = s.id AND o.observed_at > %(start)s AND o.observed_at <= %(end)s
) win ON true
WHERE s.geom IS NOT NULL
  AND (s.kind = 'rain_gauge' OR lower(coalesce(s.quantity, '')) ~ '(rain|precipitation)')
ORDER BY s.code;

-- name: water_levels
-- Water-level sensors in metres placed on the map and their latest reading in (start, end].
SELECT s.id, s.code, ST_X(s.geom) AS lon, ST_Y(s.geom) AS lat, s.attrs ->> 'datum' AS datum,
       o.observed_at, o.value
FROM twin.sensor s
JOIN LATERAL (
    SELECT observed_at, value FROM twin.observation
    WHERE sensor_id = s.id AND observed_at > %(start)s AND observed_at <= %(end)s
    ORDER BY observed_at DESC LIMIT 1
) o ON true
WHERE s.geom IS NOT NULL AND s.unit = 'm'
  AND (s.kind = 'water_level' OR lower(coalesce(s.quantity, '')) ~ 'water.?level')
ORDER BY s.id;

-- name: latest_nowcast
-- The nowcast a step continues, locked so that two steps at once run one after the other.
SELECT id, origin, as_of, grid, state, steps FROM twin.nowcast
ORDER BY id DESC LIMIT 1 FOR UPDATE;

-- name: insert_nowcast
INSERT INTO twin.nowcast (origin, as_of, grid, params, state, steps)
VALUES (%(origin)s, %(as_of)s, %(grid)s, %(params)s, %(state)s, 0)
RETURNING id;

-- name: update_nowcast
UPDATE twin.nowcast SET as_of = %(as_of)s, state = %(state)s, steps = steps + 1
WHERE id = %(id)s;

-- name: insert_step
INSERT INTO twin.nowcast_step (nowcast_id, as_of, window_s, horizon_s, gauges, rain_mean_mm_h,
    rain_max_mm_h, forecast_rain_mean_mm_h, max_depth_now_m, max_depth_horizon_m, summary)
VALUES (%(nowcast_id)s, %(as_of)s, %(window_s)s, %(horizon_s)s, %(gauges)s, %(rain_mean)s,
    %(rain_max)s, %(forecast_mean)s, %(max_now)s, %(max_horizon)s, %(summary)s)
RETURNING id;

-- name: status
-- The latest nowcast and its latest steps, newest first.
SELECT n.id, n.origin, n.as_of, n.steps, n.grid, octet_length(n.state) AS state_bytes,
       s.id AS step_id, s.as_of AS step_as_of, s.window_s, s.horizon_s, s.gauges,
       s.rain_mean_mm_h, s.rain_max_mm_h, s.forecast_rain_mean_mm_h, s.max_depth_now_m,
       s.max_depth_horizon_m, s.summary
FROM (SELECT * FROM twin.nowcast ORDER BY id DESC LIMIT 1) n
LEFT JOIN twin.nowcast_step s ON s.nowcast_id = n.id
ORDER BY s.as_of DESC NULLS LAST
LIMIT %(limit)s;

-- name: loop_due
-- Whether a timed step has rain to go on (a rain gauge, as in rain_gauges, read in
-- (start, end]) and when the latest step was.
SELECT EXISTS (
    SELECT 1 FROM twin.sensor s JOIN twin.observation o ON o.sensor_id = s.id
    WHERE s.geom IS NOT NULL
      AND (s.kind = 'rain_gauge' OR lower(coalesce(s.quantity, '')) ~ '(rain|precipitation)')
      AND o.observed_at > %(start)s AND o.observed_at <= %(end)s
) AS fresh, (SELECT max(as_of) FROM twin.nowcast_step) AS last_step;

-- name: api_latest_step
-- The latest step (GET /api/nowcast).
SELECT s.id AS step_id, s.nowcast_id, s.as_of, s.window_s, s.horizon_s, s.gauges,
       s.rain_mean_mm_h, s.rain_max_mm_h, s.forecast_rain_mean_mm_h, s.max_depth_now_m,
       s.max_depth_horizon_m, s.summary -> 'restarted' AS restarted, s.created_at
FROM twin.nowcast_step s ORDER BY s.as_of DESC, s.id DESC LIMIT 1;

-- name: api_cell_counts
-- Cells of a step at a resolution holding at least each depth, now and at the horizon.
SELECT d.depth_m,
       count(*) FILTER (WHERE c.depth_now_m >= d.depth_m) AS now,
       count(*) FILTER (WHERE c.depth_horizon_m >= d.depth_m) AS horizon
FROM unnest(%(depths)s::float8[]) AS d(depth_m)
LEFT JOIN twin.nowcast_cell c ON c.step_id = %(step)s AND c.res = %(res)s
GROUP BY d.depth_m ORDER BY d.depth_m;

-- name: api_skill
-- Water-level sensors of a step against the model: how many, mean and largest |difference|.
SELECT count(*) AS sensors, avg(abs(difference_m)) AS mean_abs_difference_m,
       max(abs(difference_m)) AS max_abs_difference_m, avg(difference_m) AS mean_difference_m
FROM twin.nowcast_skill WHERE step_id = %(step)s;

-- name: api_cells
-- A step's cells at a resolution with their depth now or at the horizon (GET /api/nowcast/cells).
SELECT twin.h3_to_hex(cell) AS h3,
       CASE WHEN %(horizon)s = 'now' THEN depth_now_m ELSE depth_horizon_m END AS depth_m,
       depth_now_m, depth_horizon_m, max_depth_horizon_m
FROM twin.nowcast_cell
WHERE step_id = %(step)s AND res = %(res)s
  AND CASE WHEN %(horizon)s = 'now' THEN depth_now_m ELSE depth_horizon_m END >= %(min)s
ORDER BY cell;
