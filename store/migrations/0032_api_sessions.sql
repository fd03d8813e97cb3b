-- Ending sessions before their tokens expire. Logging out records the token's id here
-- until the token would have expired anyway (then the row is pruned). Changing a
-- user's password, or "log out everywhere", moves the user's tokens_not_before: every
-- token issued at or before it is refused.
ALTER TABLE api_users ADD COLUMN tokens_not_before timestamptz;

CREATE TABLE api_revoked_tokens (
    jti         text PRIMARY KEY CHECK (jti ~ '^[0-9a-f]{16,64}$'),
    username    text NOT NULL,
    revoked_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX api_revoked_tokens_expiry ON api_revoked_tokens (expires_at);
