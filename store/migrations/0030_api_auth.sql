-- The HTTP API's people and machines: users with a password hash, API keys (stored as
-- hashes only), and the login attempts that brute-force limiting counts.

CREATE TABLE api_users (
    username       text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9._-]{1,62}$'),
    display_name   text NOT NULL DEFAULT '',
    role           text NOT NULL CHECK (role IN ('admin', 'inspector', 'operator', 'viewer', 'device')),
    -- argon2id in PHC string form ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
    password_hash  text NOT NULL,
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    password_changed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- The public part of the key ("mk_<prefix>_<secret>"): finds the row without a scan.
    prefix        text NOT NULL UNIQUE CHECK (prefix ~ '^[a-z0-9]{8}$'),
    -- SHA-256 of the secret part. The secret is 32 random bytes, so a slow hash adds
    -- nothing; it is shown once, at creation, and never stored.
    secret_sha256 text NOT NULL CHECK (secret_sha256 ~ '^[0-9a-f]{64}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    role          text NOT NULL CHECK (role IN ('admin', 'inspector', 'operator', 'viewer', 'device')),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

CREATE TABLE api_login_attempts (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username   text NOT NULL,
    client     text NOT NULL,
    at         timestamptz NOT NULL,
    succeeded  boolean NOT NULL
);
CREATE INDEX api_login_attempts_user ON api_login_attempts (username, at DESC);
CREATE INDEX api_login_attempts_client ON api_login_attempts (client, at DESC);
