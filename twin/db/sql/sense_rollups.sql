-- Roll-ups of readings: re-aggregate the queued (sensor, hour) from the raw rows.
-- Buckets start at date_bin(width, observed_at, 2000-01-01 00:00Z): UTC, whatever the session's
-- time zone. A queued hour of a day detached past the retention is dropped from the queue and
-- its roll-ups are left as they were (the raw rows are no longer there to recompute them).

-- name: refresh_streams
WITH claimed AS (
    DELETE FROM twin.observation_rollup_queue q
    WHERE q.id IN (SELECT id FROM twin.observation_rollup_queue ORDER BY id LIMIT %(limit)s)
    RETURNING q.sensor_id, q.hour
), todo AS (
    SELECT DISTINCT c.sensor_id, c.hour FROM claimed c
    WHERE NOT EXISTS (SELECT 1 FROM twin.observation_detached d
                      WHERE d.day = (c.hour AT TIME ZONE 'UTC')::date)
), fine AS (
    SELECT o.sensor_id,
           date_bin('5 minutes', o.observed_at, timestamptz '2000-01-01 00:00:00+00') AS bucket,
           count(*)::integer AS n, min(o.value) AS min, max(o.value) AS max,
           sum(o.value) AS sum, min(o.observed_at) AS first_at, max(o.observed_at) AS last_at
    FROM todo t
    JOIN twin.observation o ON o.sensor_id = t.sensor_id
     AND o.observed_at >= t.hour AND o.observed_at < t.hour + interval '1 hour'
    GROUP BY 1, 2
), coarse AS (
    SELECT sensor_id, date_bin('1 hour', bucket, timestamptz '2000-01-01 00:00:00+00') AS bucket,
           sum(n)::integer AS n, min(min) AS min, max(max) AS max, sum(sum) AS sum,
           min(first_at) AS first_at, max(last_at) AS last_at
    FROM fine GROUP BY 1, 2
), gone_5min AS (
    DELETE FROM twin.observation_5min r USING todo t
    WHERE r.sensor_id = t.sensor_id AND r.bucket >= t.hour
      AND r.bucket < t.hour + interval '1 hour'
      AND NOT EXISTS (SELECT 1 FROM fine f WHERE f.sensor_id = r.sensor_id AND f.bucket = r.bucket)
), gone_1h AS (
    DELETE FROM twin.observation_1h r USING todo t
    WHERE r.sensor_id = t.sensor_id AND r.bucket = t.hour
      AND NOT EXISTS (SELECT 1 FROM coarse c WHERE c.sensor_id = r.sensor_id
                      AND c.bucket = r.bucket)
), up_5min AS (
    INSERT INTO twin.observation_5min (sensor_id, bucket, n, min, max, sum, first_at, last_at)
    SELECT sensor_id, bucket, n, min, max, sum, first_at, last_at FROM fine
    ON CONFLICT (sensor_id, bucket) DO UPDATE SET
        n = EXCLUDED.n, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
        first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at
), up_1h AS (
    INSERT INTO twin.observation_1h (sensor_id, bucket, n, min, max, sum, first_at, last_at)
    SELECT sensor_id, bucket, n, min, max, sum, first_at, last_at FROM coarse
    ON CONFLICT (sensor_id, bucket) DO UPDATE SET
        n = EXCLUDED.n, min = EXCLUDED.min, max = EXCLUDED.max, sum = EXCLUDED.sum,
        first_at = EXCLUDED.first_at, last_at = EXCLUDED.last_at
)
SELECT (SELECT count(*) FROM claimed) AS entries,
       (SELECT count(*) FROM (SELECT DISTINCT sensor_id, hour FROM claimed) x) AS claimed,
       array(SELECT sensor_id FROM todo ORDER BY sensor_id, hour) AS sensors,
       array(SELECT hour FROM todo ORDER BY sensor_id, hour) AS hours,
       (SELECT count(*) FROM fine) AS buckets_5min;

-- name: refresh_cells
-- The cells (at %(res)s) of the refreshed (sensor, hour), re-aggregated from the datastream
-- roll-ups of every sensor of the same kind and unit in the cell.
WITH touched AS (
    SELECT DISTINCT twin.h3_parent(s.cell, %(res)s) AS cell, s.kind, s.unit, t.hour
    FROM unnest(%(sensors)s::bigint[], %(hours)s::timestamptz[]) AS t(sensor_id, hour)
    JOIN twin.sensor s ON s.id = t.sensor_id
    WHERE twin.h3_parent(s.cell, %(res)s) IS NOT NULL
), members AS (
    SELECT t.cell, t.kind, t.unit, t.hour, s.id AS sensor_id
    FROM touched t
    JOIN twin.sensor s ON twin.h3_parent(s.cell, %(res)s) = t.cell
     AND s.kind = t.kind AND s.unit = t.unit
), fine AS (
    SELECT m.cell, m.kind, m.unit, r.bucket, count(*)::integer AS datastreams,
           sum(r.n)::integer AS n, min(r.min) AS min, max(r.max) AS max, sum(r.sum) AS sum,
           min(r.first_at) AS first_at, max(r.last_at) AS last_at
    FROM members m
    JOIN twin.observation_5min r ON r.sensor_id = m.sensor_id
     AND r.bucket >= m.hour AND r.bucket < m.hour + interval '1 hour'
    GROUP BY 1, 2, 3, 4
), coarse AS (
    SELECT m.cell, m.kind, m.unit, r.bucket, count(*)::integer AS datastreams,
           sum(r.n)::integer AS n, min(r.min) AS min, max(r.max) AS max, sum(r.sum) AS sum,
           min(r.first_at) AS first_at, max(r.last_at) AS last_at
    FROM members m
    JOIN twin.observation_1h r ON r.sensor_id = m.sensor_id AND r.bucket = m.hour
    GROUP BY 1, 2, 3, 4
), gone_5min AS (
    DELETE FROM twin.observation_cell_5min r USING touched t
    WHERE r.res = %(res)s AND r.cell = t.cell AND r.kind = t.kind AND r.unit = t.unit
      AND r.bucket >= t.hour AND r.bucket < t.hour + interval '1 hour'
      AND NOT EXISTS (SELECT 1 FROM fine f WHERE f.cell = r.cell AND f.kind = r.kind
                      AND f.unit = r.unit AND f.bucket = r.bucket)
), gone_1h AS (
    DELETE FROM twin.observation_cell_1h r USING touched t
    WHERE r.res = %(res)s AND r.cell = t.cell AND r.kind = t.kind AND r.unit = t.unit
      AND r.bucket = t.hour
      AND NOT EXISTS (SELECT 1 FROM coarse c WHERE c.cell = r.cell AND c.kind = r.kind
                      AND c.unit = r.unit AND c.bucket = r.bucket)
), up_5min AS (
    INSERT INTO twin.observation_cell_5min
        (res, cell, kind, unit, bucket, datastreams, n, min, max, sum, first_at, last_at)
    SELECT %(res)s, cell, kind, unit, bucket, datastreams, n, min, max, sum, first_at, last_at
    FROM fine
    ON CONFLICT (res, cell, kind, unit, bucket) DO UPDATE SET
        datastreams = EXCLUDED.datastreams, n = EXCLUDED.n, min = EXCLUDED.min,
        max = EXCLUDED.max, sum = EXCLUDED.sum, first_at = EXCLUDED.first_at,
        last_at = EXCLUDED.last_at
), up_1h AS (
    INSERT INTO twin.observation_cell_1h
        (res, cell, kind, unit, bucket, datastreams, n, min, max, sum, first_at, last_at)
    SELECT %(res)s, cell, kind, unit, bucket, datastreams, n, min, max, sum, first_at, last_at
    FROM coarse
    ON CONFLICT (res, cell, kind, unit, bucket) DO UPDATE SET
        datastreams = EXCLUDED.datastreams, n = EXCLUDED.n, min = EXCLUDED.min,
        max = EXCLUDED.max, sum = EXCLUDED.sum, first_at = EXCLUDED.first_at,
        last_at = EXCLUDED.last_at
)
SELECT count(*) FROM (SELECT DISTINCT cell, kind, unit FROM touched) x;

