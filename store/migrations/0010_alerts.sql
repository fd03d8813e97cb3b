-- Alert engine: what the alerts table lacked for escalation, the rules' saved state
-- (so a restart resumes mid-event), the CAP messages sent, and the notification outbox.

ALTER TABLE alerts
    ADD COLUMN site_id        mamori_ident,
    ADD COLUMN value          double precision,
    -- Escalation counts from here: when the alert opened, rose or last escalated.
    ADD COLUMN escalate_from  timestamptz,
    ADD COLUMN escalations    integer NOT NULL DEFAULT 0;
CREATE INDEX alerts_open ON alerts (state) WHERE state <> 'resolved';

-- One row per rule and asset: the ladder (level, pending rise or fall) and the signal's
-- buffer, written in the same transaction as the transitions they caused.
CREATE TABLE alert_rule_state (
    rule_id     text NOT NULL,
    asset_id    mamori_ident NOT NULL,
    state       jsonb NOT NULL CHECK (jsonb_typeof(state) = 'object'),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, asset_id)
);

-- How far the engine has read an append-only source (detections).
CREATE TABLE alert_cursors (
    name        text PRIMARY KEY,
    position    bigint NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Every CAP 1.2 message issued; an Update or Cancel references the earlier ones.
CREATE TABLE alert_cap_messages (
    identifier  text PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id),
    event_id    bigint NOT NULL REFERENCES alert_events (id),
    msg_type    text NOT NULL CHECK (msg_type IN ('Alert', 'Update', 'Cancel')),
    sent        timestamptz NOT NULL,
    xml         text NOT NULL
);
CREATE INDEX alert_cap_messages_alert ON alert_cap_messages (alert_id, sent);
CREATE INDEX alert_cap_messages_sent ON alert_cap_messages (sent DESC);

-- Notifications to deliver (webhooks), written with the transition that caused them and
-- delivered after commit, retried with backoff; the key makes redelivery harmless.
CREATE TABLE alert_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target           text NOT NULL,
    idempotency_key  text NOT NULL,
    alert_id         bigint NOT NULL REFERENCES alerts (id),
    event_id         bigint NOT NULL REFERENCES alert_events (id),
    payload          text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text,
    UNIQUE (target, idempotency_key)
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
