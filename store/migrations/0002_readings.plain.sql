-- Readings on plain PostgreSQL: native range partitioning by day, and a time_bucket()
-- that behaves like TimescaleDB's so every query and dashboard runs on both.

CREATE TABLE readings (
    ts           timestamptz NOT NULL,
    device_id    text NOT NULL,
    metric       text NOT NULL,
    value        double precision NOT NULL,
    seq          bigint NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    -- The natural key: a redelivered message can never add a row twice.
    PRIMARY KEY (device_id, metric, ts)
) PARTITION BY RANGE (ts);

-- Catches rows for days whose partition does not exist yet, so nothing is refused;
-- mamori_ensure_readings_partition() moves them out when it creates the day.
CREATE TABLE readings_default PARTITION OF readings DEFAULT;

CREATE FUNCTION mamori_ensure_readings_partition(day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    part text := format('readings_p%s', to_char(day, 'YYYYMMDD'));
    lo timestamptz := day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (day + 1)::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- Rows that landed in the default partition for this day must leave it first, or
    -- PostgreSQL refuses the new partition.
    LOCK TABLE readings_default IN ACCESS EXCLUSIVE MODE;
    CREATE TEMP TABLE IF NOT EXISTS _mamori_moving (LIKE readings) ON COMMIT DROP;
    WITH moved AS (
        DELETE FROM readings_default WHERE ts >= lo AND ts < hi RETURNING *
    )
    INSERT INTO _mamori_moving SELECT * FROM moved;
    EXECUTE format('CREATE TABLE %I PARTITION OF readings FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    INSERT INTO readings SELECT * FROM _mamori_moving;
    DELETE FROM _mamori_moving;
    RETURN true;
END $$;

-- TimescaleDB's time_bucket(interval, timestamptz) aligns buckets to 2000-01-03 UTC
-- (a Monday); date_bin with that origin gives the same buckets for any interval that
-- has no months in it. tests/integration/test_store.py checks the two agree.
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT date_bin(bucket_width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00')
$$;

CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz, origin timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$
    SELECT date_bin(bucket_width, ts, origin)
$$;

SELECT mamori_ensure_readings_partition((now() AT TIME ZONE 'UTC')::date + d)
FROM generate_series(-2, 7) AS d;
