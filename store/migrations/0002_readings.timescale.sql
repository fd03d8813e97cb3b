-- Readings on TimescaleDB: a hypertable with one-day chunks. Same columns and natural
-- key as the plain flavour, and TimescaleDB brings its own time_bucket().
-- Compression, retention and continuous aggregates are added by later migrations.

CREATE TABLE readings (
    ts           timestamptz NOT NULL,
    device_id    text NOT NULL,
    metric       text NOT NULL,
    value        double precision NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (device_id, metric, ts)
);
SELECT create_hypertable('readings', 'ts', chunk_time_interval => INTERVAL '1 day');

-- Kept so maintenance code can call it on either flavour; TimescaleDB makes chunks itself.
CREATE FUNCTION mamori_ensure_readings_partition(day date) RETURNS boolean
LANGUAGE sql AS $$ SELECT false $$;
