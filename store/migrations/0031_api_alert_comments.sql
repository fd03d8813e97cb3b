-- Operators' notes on alerts. Kept apart from alert_events, whose rows are the alert
-- lifecycle's transitions only (core.alerting.Transition); a note changes no state.
-- Append-only, like the audit log it sits beside.

CREATE TABLE alert_comments (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id  bigint NOT NULL REFERENCES alerts (id),
    at        timestamptz NOT NULL,
    actor     text NOT NULL,
    note      text NOT NULL CHECK (length(note) BETWEEN 1 AND 2000)
);
CREATE INDEX alert_comments_alert ON alert_comments (alert_id, at);

CREATE TRIGGER alert_comments_append_only BEFORE UPDATE OR DELETE ON alert_comments
    FOR EACH ROW EXECUTE FUNCTION mamori_refuse_change();
