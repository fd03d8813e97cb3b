-- Rollups on plain PostgreSQL: readings_1m and readings_1h are ordinary tables that
-- store.maintenance.refresh_rollups() keeps up to date. The columns are the same as the
-- continuous aggregates of the timescale flavour, so dashboards and the API read both.
--
-- How the job stays correct with late, duplicate and out-of-order data: every reading
-- carries received_at (the inserting transaction's start time). The job remembers, per
-- level, the received_at below which everything has been rolled up (the watermark),
-- finds the (device, metric, bucket) triples touched by rows received since then, and
-- recomputes those buckets whole from their source. Recomputing is idempotent, so a
-- re-run, a crash half-way or an overlapping scan can only redo work, never skew it.

-- Finding rows received since the watermark without an index on every insert path:
-- BRIN is a few pages per partition and costs ingest next to nothing. Late rows land at
-- the end of an old partition, so their block ranges are the only ones that match.
CREATE INDEX readings_received_at ON readings USING brin (received_at)
    WITH (pages_per_range = 32, autosummarize = on);

CREATE TABLE rollup_watermarks (
    level             text PRIMARY KEY CHECK (level IN ('1m', '1h')),
    -- Every reading with received_at below this is in the level's buckets.
    received_through  timestamptz NOT NULL,
    refreshed_at      timestamptz
);
-- The epoch, not -infinity: everything ever stored is newer, and drivers can read it.
INSERT INTO rollup_watermarks (level, received_through)
VALUES ('1m', TIMESTAMPTZ '1970-01-01 00:00+00'), ('1h', TIMESTAMPTZ '1970-01-01 00:00+00');

-- One-minute rollups: monthly partitions so that retention (two years by default) drops
-- whole months instead of deleting hundreds of millions of rows.
CREATE TABLE readings_1m (
    bucket     timestamptz NOT NULL,
    device_id  text NOT NULL,
    metric     text NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    avg        double precision NOT NULL,
    -- The value at the latest ts in the bucket.
    last       double precision NOT NULL,
    count      bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (device_id, metric, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE readings_1m_default PARTITION OF readings_1m DEFAULT;
-- The rollup job rebuilds hours from one day of minutes at a time; minutes are written
-- roughly in time order, so a BRIN index finds a day's rows for next to nothing.
CREATE INDEX readings_1m_bucket ON readings_1m USING brin (bucket) WITH (pages_per_range = 32);

CREATE FUNCTION mamori_ensure_rollup_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    first_day date := date_trunc('month', month)::date;
    part text := format('readings_1m_p%s', to_char(month, 'YYYYMM'));
    lo timestamptz := first_day::timestamp AT TIME ZONE 'UTC';
    hi timestamptz := (first_day + INTERVAL '1 month')::timestamp AT TIME ZONE 'UTC';
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- As for readings: rows parked in the default partition must leave it first.
    LOCK TABLE readings_1m_default IN ACCESS EXCLUSIVE MODE;
    CREATE TEMP TABLE IF NOT EXISTS _mamori_moving_1m (LIKE readings_1m) ON COMMIT DROP;
    WITH moved AS (
        DELETE FROM readings_1m_default WHERE bucket >= lo AND bucket < hi RETURNING *
    )
    INSERT INTO _mamori_moving_1m SELECT * FROM moved;
    EXECUTE format('CREATE TABLE %I PARTITION OF readings_1m FOR VALUES FROM (%L) TO (%L)',
                   part, lo, hi);
    INSERT INTO readings_1m SELECT * FROM _mamori_moving_1m;
    DELETE FROM _mamori_moving_1m;
    RETURN true;
END $$;

-- One-hour rollups: small (24 rows a day per series) and kept forever by default, so a
-- plain table; retention, when configured, deletes by bucket (BRIN keeps that cheap).
-- The key carries every column: a month-long chart is one ordered index-only scan.
CREATE TABLE readings_1h (
    bucket     timestamptz NOT NULL,
    device_id  text NOT NULL,
    metric     text NOT NULL,
    min        double precision NOT NULL,
    max        double precision NOT NULL,
    avg        double precision NOT NULL,
    last       double precision NOT NULL,
    count      bigint NOT NULL CHECK (count > 0),
    PRIMARY KEY (device_id, metric, bucket) INCLUDE (min, max, avg, last, count)
);
CREATE INDEX readings_1h_bucket ON readings_1h USING brin (bucket);

-- Where the rollups stop being complete: store.queries reads raw rows from here on, so a
-- chart is exact up to the last committed reading. TimescaleDB returns NULL instead
-- (its real-time aggregates already add the not-yet-materialised tail).
CREATE FUNCTION mamori_rollups_complete_through(level text) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT received_through FROM rollup_watermarks WHERE rollup_watermarks.level = $1
$$;

SELECT mamori_ensure_rollup_partition(
    ((now() AT TIME ZONE 'UTC')::date + make_interval(months => m))::date)
FROM generate_series(-1, 2) AS m;
