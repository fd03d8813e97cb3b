-- Rollups, compression and retention on TimescaleDB (2.11 or newer, for inserts and
-- ON CONFLICT into compressed chunks, which late and redelivered readings need).
-- The plain flavour builds the same names and columns by hand; see docs/storage.md.
-- The intervals below are the defaults of core.retention; store.timescale.sync_policies()
-- (run by `mamori db maintain`) re-applies whatever the settings say.

-- Compression: one segment per (device, metric), newest first inside it, so a chart or
-- a "latest value" reads one small compressed batch per series.
ALTER TABLE readings SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id, metric',
    timescaledb.compress_orderby = 'ts DESC'
);
SELECT add_compression_policy('readings', compress_after => INTERVAL '7 days');
SELECT add_retention_policy('readings', drop_after => INTERVAL '90 days');

-- materialized_only = false: real-time aggregation adds the newest, not yet materialised
-- buckets from the hypertable, like the raw tail store.queries adds on plain PostgreSQL.
CREATE MATERIALIZED VIEW readings_1m
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 minute', ts) AS bucket,
       device_id,
       metric,
       min(value) AS min,
       max(value) AS max,
       avg(value) AS avg,
       last(value, ts) AS last,
       count(*) AS count
FROM readings
GROUP BY time_bucket(INTERVAL '1 minute', ts), device_id, metric
WITH NO DATA;

-- The window reaches back past the ingest's oldest accepted reading (35 days), so late
-- data is folded in, and stays inside raw retention (90 days), so a refresh never
-- empties buckets whose raw chunks were dropped.
SELECT add_continuous_aggregate_policy('readings_1m',
    start_offset => INTERVAL '40 days',
    end_offset => INTERVAL '1 minute',
    schedule_interval => INTERVAL '1 minute');
ALTER MATERIALIZED VIEW readings_1m SET (timescaledb.compress = true);
SELECT add_compression_policy('readings_1m', compress_after => INTERVAL '45 days');
SELECT add_retention_policy('readings_1m', drop_after => INTERVAL '730 days');

CREATE MATERIALIZED VIEW readings_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
       device_id,
       metric,
       min(value) AS min,
       max(value) AS max,
       avg(value) AS avg,
       last(value, ts) AS last,
       count(*) AS count
FROM readings
GROUP BY time_bucket(INTERVAL '1 hour', ts), device_id, metric
WITH NO DATA;

SELECT add_continuous_aggregate_policy('readings_1h',
    start_offset => INTERVAL '40 days',
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
-- The hourly level is kept forever by default: no retention policy.

-- Real-time aggregates are complete up to now: store.queries needs no raw tail.
CREATE FUNCTION mamori_rollups_complete_through(level text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$ SELECT NULL::timestamptz $$;
