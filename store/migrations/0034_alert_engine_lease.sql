-- Which alert engine instance may write: one row per engine (named by its MQTT client
-- id, the session it consumes). The holder renews it in every transaction that writes
-- transitions, so a standby that took over an expired lease fences the old holder out:
-- that one's next commit finds the lease gone, writes nothing and steps down.
CREATE TABLE alert_engine_lease (
    name         text PRIMARY KEY,
    holder       text NOT NULL,
    acquired_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL
);
