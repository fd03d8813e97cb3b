-- Inspection worker: a shared queue on images, verdicts, and the model behind each finding.
--
-- * images.status gains 'flagged' (needs an inspector, reason in review_reason) and
--   'clear' (nothing found); 'done' stays valid for rows written before this version.
-- * A failed attempt goes back to 'pending' with not_before set (retry with delay) until
--   max attempts, then 'failed' with the reason in error.
-- * claimed_by and status_changed_at let a worker take over a claim abandoned by a
--   crashed one (a 'processing' row older than the lease).
-- * detections.model_name beside model_version, so findings of different models and of
--   the classical finder can be told apart.

ALTER TABLE images DROP CONSTRAINT images_status_check;
ALTER TABLE images ADD CONSTRAINT images_status_check CHECK (status IN (
    'pending', 'processing', 'done', 'flagged', 'clear', 'failed'));
ALTER TABLE images ADD COLUMN review_reason text;
ALTER TABLE images ADD COLUMN not_before timestamptz;
ALTER TABLE images ADD COLUMN claimed_by text;
ALTER TABLE images ADD COLUMN inspected_at timestamptz;

-- Claims abandoned by a crashed worker are found through this index.
CREATE INDEX images_processing ON images (status_changed_at) WHERE status = 'processing';
CREATE INDEX images_flagged ON images (status_changed_at DESC) WHERE status = 'flagged';

ALTER TABLE detections ADD COLUMN model_name text NOT NULL DEFAULT 'unknown';
ALTER TABLE detections ALTER COLUMN model_name DROP DEFAULT;
