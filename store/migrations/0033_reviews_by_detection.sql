-- The alert engine folds each detection's reviews (is it still a finding after the
-- inspectors had their say?): find them by detection, newest last.
CREATE INDEX reviews_detection ON reviews (detection_id, created_at) WHERE detection_id IS NOT NULL;
