-- The MQTT bridge's bulk store path (twin.sense.ingest): a batch is COPied into the
-- connection's temporary staging table, then inserted into the partitioned twin.observation in
-- one statement. ON CONFLICT DO NOTHING on (sensor_id, observed_at): a replayed or redelivered
-- reading, or one twice in the batch, is stored once.

-- name: stage_create
CREATE TEMP TABLE IF NOT EXISTS twin_sense_stage (
    sensor_id bigint NOT NULL, observed_at timestamptz NOT NULL, value float8 NOT NULL,
    observed_until timestamptz, result_time timestamptz, quality smallint, parameters jsonb,
    feature_id bigint
) ON COMMIT DELETE ROWS

-- name: stage_clear
DELETE FROM pg_temp.twin_sense_stage

-- name: stage_copy
COPY pg_temp.twin_sense_stage (sensor_id, observed_at, value, observed_until, result_time,
    quality, parameters, feature_id) FROM STDIN (FORMAT BINARY)

-- name: stage_insert
INSERT INTO twin.observation (sensor_id, observed_at, value, observed_until, result_time,
    quality, parameters, feature_id)
SELECT sensor_id, observed_at, value, observed_until, result_time, quality, parameters,
    feature_id
FROM pg_temp.twin_sense_stage
ON CONFLICT DO NOTHING

-- name: stage_insert_returning
INSERT INTO twin.observation (sensor_id, observed_at, value, observed_until, result_time,
    quality, parameters, feature_id)
SELECT sensor_id, observed_at, value, observed_until, result_time, quality, parameters,
    feature_id
FROM pg_temp.twin_sense_stage
ON CONFLICT DO NOTHING
RETURNING id, sensor_id, observed_at

-- name: stage_ids
SELECT s.sensor_id, s.observed_at, o.id
FROM pg_temp.twin_sense_stage s
JOIN twin.observation o ON o.sensor_id = s.sensor_id AND o.observed_at = s.observed_at
