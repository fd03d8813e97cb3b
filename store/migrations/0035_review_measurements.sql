-- A crack box an inspector adjusted or drew is measured again by an inspection worker:
-- the crack inside the new box, in pixels and, with the photo's ground sample distance,
-- in millimetres. One row per review; `error` when the photo could not be measured.
-- `seq` orders them for the alert engine, which reads new ones as findings.
CREATE TABLE review_measurements (
    review_id     bigint PRIMARY KEY REFERENCES reviews (id) ON DELETE CASCADE,
    seq           bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    length_px     real,
    max_width_px  real,
    length_mm     real,
    max_width_mm  real,
    measured_at   timestamptz NOT NULL DEFAULT now(),
    measured_by   text NOT NULL,
    error         text
);
