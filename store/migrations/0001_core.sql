-- Mamori core schema: the registry of sites, assets and devices, photos and what was
-- found on them, reviews, alerts with their audit log, and dead letters.
-- Readings are created by 0002 in the flavour that fits the server (plain or timescale).

CREATE DOMAIN mamori_ident AS text CHECK (VALUE ~ '^[a-z0-9][a-z0-9_-]{0,62}$');

CREATE TABLE sites (
    id          mamori_ident PRIMARY KEY,
    name        text NOT NULL,
    name_ja     text,
    prefecture  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE assets (
    id          mamori_ident PRIMARY KEY,
    site_id     mamori_ident NOT NULL REFERENCES sites (id),
    kind        text NOT NULL CHECK (kind IN (
                    'river_station', 'rain_gauge', 'slope', 'bridge', 'tunnel',
                    'quay_wall', 'levee', 'road')),
    name        text NOT NULL,
    name_ja     text,
    lat         double precision CHECK (lat BETWEEN -90 AND 90),
    lon         double precision CHECK (lon BETWEEN -180 AND 180),
    -- Thresholds are data, not code: a river station's four standard water levels,
    -- a slope's tilt-rate limits, a bridge's vibration limits. Rules read them.
    thresholds  jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(thresholds) = 'object'),
    meta        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assets_site ON assets (site_id);

CREATE TABLE devices (
    id                   mamori_ident PRIMARY KEY,
    site_id              mamori_ident NOT NULL REFERENCES sites (id),
    asset_id             mamori_ident REFERENCES assets (id),
    kind                 text NOT NULL,
    state                text NOT NULL DEFAULT 'unknown'
                             CHECK (state IN ('unknown', 'online', 'offline')),
    state_changed_at     timestamptz,
    last_seen_at         timestamptz,
    last_seq             bigint,
    firmware             text,
    -- How often the device reports when calm; alert rules use it to judge silence.
    expected_interval_s  integer CHECK (expected_interval_s > 0),
    meta                 jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_asset ON devices (asset_id);

CREATE TABLE images (
    id                 mamori_ident PRIMARY KEY,
    device_id          mamori_ident REFERENCES devices (id),
    asset_id           mamori_ident REFERENCES assets (id),
    captured_at        timestamptz,
    received_at        timestamptz NOT NULL DEFAULT now(),
    blob_key           text NOT NULL UNIQUE,
    sha256             text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes         bigint NOT NULL CHECK (size_bytes > 0),
    content_type       text NOT NULL,
    width              integer,
    height             integer,
    meta               jsonb NOT NULL DEFAULT '{}'::jsonb,
    status             text NOT NULL DEFAULT 'pending'
                           CHECK (status IN ('pending', 'processing', 'done', 'failed')),
    status_changed_at  timestamptz NOT NULL DEFAULT now(),
    attempts           integer NOT NULL DEFAULT 0,
    error              text
);
CREATE INDEX images_queue ON images (received_at) WHERE status = 'pending';
CREATE INDEX images_asset ON images (asset_id, captured_at DESC);

CREATE TABLE detections (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id       mamori_ident NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    damage_type    text NOT NULL,
    confidence     real NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    x1             real NOT NULL,
    y1             real NOT NULL,
    x2             real NOT NULL,
    y2             real NOT NULL,
    length_px      real,
    max_width_px   real,
    length_mm      real,
    max_width_mm   real,
    flagged_reason text,
    model_version  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (x2 >= x1 AND y2 >= y1)
);
CREATE INDEX detections_image ON detections (image_id);

CREATE TABLE reviews (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    image_id      mamori_ident NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    detection_id  bigint REFERENCES detections (id) ON DELETE SET NULL,
    reviewer      text NOT NULL,
    action        text NOT NULL CHECK (action IN (
                      'confirm', 'reject', 'reclassify', 'add', 'adjust', 'grade')),
    damage_type   text,
    x1            real,
    y1            real,
    x2            real,
    y2            real,
    member        text,
    -- MLIT 道路橋定期点検要領 soundness grades; only an engineer assigns them.
    grade         text CHECK (grade IN ('I', 'II', 'III', 'IV')),
    note          text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reviews_image ON reviews (image_id, created_at);

CREATE TABLE alerts (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id          text NOT NULL,
    asset_id         mamori_ident NOT NULL REFERENCES assets (id),
    -- 警戒レベル 1-5 (Japan's evacuation alert levels).
    level            smallint NOT NULL CHECK (level BETWEEN 1 AND 5),
    state            text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
    title            text NOT NULL,
    detail           jsonb NOT NULL DEFAULT '{}'::jsonb,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    acknowledged_at  timestamptz,
    acknowledged_by  text,
    resolved_at      timestamptz,
    resolved_by      text
);
-- One open alert per rule and asset: a level change is an update, not a new alert.
CREATE UNIQUE INDEX alerts_one_open ON alerts (rule_id, asset_id) WHERE state <> 'resolved';
CREATE INDEX alerts_recent ON alerts (opened_at DESC);

CREATE TABLE alert_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts (id),
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    transition  text NOT NULL,
    from_state  text,
    to_state    text NOT NULL,
    from_level  smallint,
    to_level    smallint NOT NULL,
    note        text
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, at);

-- The audit log is append-only: history that can be edited is not an audit log.
CREATE FUNCTION mamori_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END $$;
CREATE TRIGGER alert_events_append_only BEFORE UPDATE OR DELETE ON alert_events
    FOR EACH ROW EXECUTE FUNCTION mamori_refuse_change();

CREATE TABLE dead_letters (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at    timestamptz NOT NULL DEFAULT now(),
    source         text NOT NULL DEFAULT 'ingest',
    topic          text NOT NULL,
    payload        bytea NOT NULL,
    reason         text NOT NULL,
    detail         text NOT NULL,
    redriven_at    timestamptz,
    redrive_result text
);
CREATE INDEX dead_letters_received ON dead_letters (received_at DESC);
CREATE INDEX dead_letters_open ON dead_letters (reason) WHERE redriven_at IS NULL;
