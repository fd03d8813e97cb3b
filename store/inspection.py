"""The inspection queue on ``images`` and the ``detections`` it writes.

Many workers on many machines share one queue: :func:`claim_images` takes the oldest
pending photos with ``FOR UPDATE SKIP LOCKED`` (a row another worker is claiming is
skipped, never waited for) and commits the claim at once, so the slow part, detection,
runs outside any transaction. A claim carries the worker's id; results and failures are
written only while the claim is still ours, so a worker that took too long (its claim
was taken over after ``lease_s``) cannot overwrite the newer result.

Status flow::

    pending ──claim──▶ processing ──▶ flagged | clear
       ▲                  │
       └──retry (delay)───┤ failure, attempts < max
                          └──▶ failed (attempts exhausted, reason in ``error``)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from core.inspection import Finding, ImageVerdict
from store.db import translate_errors

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class ClaimedImage:
    id: str
    blob_key: str
    asset_id: str | None
    device_id: str | None
    meta: Mapping[str, object]
    attempts: int


@dataclass(frozen=True, slots=True)
class StoredDetection:
    id: int
    image_id: str
    damage_type: str
    confidence: float
    box: tuple[float, float, float, float]
    length_px: float | None
    max_width_px: float | None
    length_mm: float | None
    max_width_mm: float | None
    flagged_reason: str | None
    model_name: str
    model_version: str


@dataclass(frozen=True, slots=True)
class ImageState:
    status: str
    attempts: int
    error: str | None
    review_reason: str | None
    claimed_by: str | None
    not_before: datetime | None


def add_image(
    conn: Conn,
    image_id: str,
    blob_key: str,
    sha256: str,
    size_bytes: int,
    *,
    content_type: str = "image/jpeg",
    asset_id: str | None = None,
    device_id: str | None = None,
    width: int | None = None,
    height: int | None = None,
    meta: Mapping[str, object] | None = None,
) -> None:
    """Queue a photo (``pending``) already in the blob store; for the demo and tests.

    Ingest does the same for photos that arrive over MQTT.
    """
    with translate_errors("queueing an image"):
        conn.execute(
            """INSERT INTO images (id, blob_key, sha256, size_bytes, content_type, asset_id,
                                   device_id, width, height, meta)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                image_id,
                blob_key,
                sha256,
                size_bytes,
                content_type,
                asset_id,
                device_id,
                width,
                height,
                Jsonb(dict(meta or {})),
            ),
        )


def claim_images(
    conn: Conn, worker_id: str, limit: int, *, lease_s: float, max_attempts: int
) -> list[ClaimedImage]:
    """Claim up to ``limit`` photos for ``worker_id`` and commit the claim.

    Photos whose claim was abandoned (``processing`` for longer than ``lease_s``, a
    crashed worker) are taken over, or failed if they have used all their attempts.
    """
    with translate_errors("claiming images"), conn.transaction():
        conn.execute(
            """UPDATE images
               SET status = 'failed', status_changed_at = now(), claimed_by = NULL,
                   error = format('abandoned by %%s after %%s attempts', claimed_by, attempts)
               WHERE status = 'processing'
                 AND status_changed_at < now() - make_interval(secs => %s)
                 AND attempts >= %s""",
            (lease_s, max_attempts),
        )
        rows = conn.execute(
            """WITH candidates AS (
                   SELECT id FROM images
                   WHERE (status = 'pending' AND (not_before IS NULL OR not_before <= now()))
                      OR (status = 'processing'
                          AND status_changed_at < now() - make_interval(secs => %s))
                   ORDER BY received_at, id
                   LIMIT %s
                   FOR UPDATE SKIP LOCKED
               )
               UPDATE images AS i
               SET status = 'processing', status_changed_at = now(),
                   attempts = i.attempts + 1, claimed_by = %s, not_before = NULL
               FROM candidates
               WHERE i.id = candidates.id
               RETURNING i.id, i.blob_key, i.asset_id, i.device_id, i.meta, i.attempts""",
            (lease_s, limit, worker_id),
        ).fetchall()
    claimed = []
    for row in rows:
        image_id, blob_key, asset_id, device_id, meta, attempts = row
        claimed.append(
            ClaimedImage(
                id=str(image_id),
                blob_key=str(blob_key),
                asset_id=None if asset_id is None else str(asset_id),
                device_id=None if device_id is None else str(device_id),
                meta=meta if isinstance(meta, dict) else {},
                attempts=int(attempts),  # type: ignore[call-overload]
            )
        )
    return sorted(claimed, key=lambda c: c.id)


def record_result(
    conn: Conn,
    image_id: str,
    worker_id: str,
    verdict: ImageVerdict,
    reason: str | None,
    findings: Sequence[Finding],
    *,
    model_name: str,
    model_version: str,
) -> bool:
    """Write the findings and the verdict in one transaction; False if the claim was lost."""
    if verdict not in (ImageVerdict.FLAGGED, ImageVerdict.CLEAR):
        raise ValueError(f"record_result takes flagged or clear, not {verdict}")
    with translate_errors("recording detections"), conn.transaction():
        owned = conn.execute(
            """SELECT 1 FROM images
               WHERE id = %s AND status = 'processing' AND claimed_by = %s FOR UPDATE""",
            (image_id, worker_id),
        ).fetchone()
        if owned is None:
            return False
        # A retried photo may have findings from an attempt that died after writing them.
        conn.execute("DELETE FROM detections WHERE image_id = %s", (image_id,))
        with conn.cursor() as cur:
            cur.executemany(
                """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2, y2,
                       length_px, max_width_px, length_mm, max_width_mm, flagged_reason,
                       model_name, model_version)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                [_detection_row(image_id, f, model_name, model_version) for f in findings],
            )
        conn.execute(
            """UPDATE images
               SET status = %s, review_reason = %s, error = NULL, claimed_by = NULL,
                   status_changed_at = now(), inspected_at = now()
               WHERE id = %s""",
            (verdict.value, reason, image_id),
        )
    return True


def _detection_row(
    image_id: str, f: Finding, model_name: str, model_version: str
) -> tuple[object, ...]:
    m = f.measurement
    return (
        image_id,
        f.damage_type.value,
        f.confidence,
        f.box.x1,
        f.box.y1,
        f.box.x2,
        f.box.y2,
        m.length_px if m else None,
        m.max_width_px if m else None,
        m.length_mm if m else None,
        m.max_width_mm if m else None,
        f.flagged_reason,
        model_name,
        model_version,
    )


def record_failure(
    conn: Conn,
    image_id: str,
    worker_id: str,
    error: str,
    *,
    max_attempts: int,
    retry_delay_s: float,
) -> str | None:
    """Send the photo back to the queue after a delay, or fail it; the new status.

    None when the claim was no longer ours (nothing written).
    """
    with translate_errors("recording a failure"), conn.transaction():
        row = conn.execute(
            """UPDATE images
               SET status = CASE WHEN attempts >= %s THEN 'failed' ELSE 'pending' END,
                   not_before = CASE WHEN attempts >= %s THEN NULL
                                     ELSE now() + make_interval(secs => %s) END,
                   error = %s, claimed_by = NULL, status_changed_at = now()
               WHERE id = %s AND status = 'processing' AND claimed_by = %s
               RETURNING status""",
            (max_attempts, max_attempts, retry_delay_s, error[:2000], image_id, worker_id),
        ).fetchone()
    return None if row is None else str(row[0])


def image_state(conn: Conn, image_id: str) -> ImageState | None:
    with translate_errors("reading an image's state"):
        row = conn.execute(
            """SELECT status, attempts, error, review_reason, claimed_by, not_before
               FROM images WHERE id = %s""",
            (image_id,),
        ).fetchone()
    if row is None:
        return None
    status, attempts, error, reason, claimed_by, not_before = row
    return ImageState(
        status=str(status),
        attempts=int(attempts),  # type: ignore[call-overload]
        error=None if error is None else str(error),
        review_reason=None if reason is None else str(reason),
        claimed_by=None if claimed_by is None else str(claimed_by),
        not_before=not_before if isinstance(not_before, datetime) else None,
    )


def detections_for(conn: Conn, image_id: str) -> list[StoredDetection]:
    with translate_errors("reading detections"):
        rows = conn.execute(
            """SELECT id, image_id, damage_type, confidence, x1, y1, x2, y2, length_px,
                      max_width_px, length_mm, max_width_mm, flagged_reason, model_name,
                      model_version
               FROM detections WHERE image_id = %s ORDER BY confidence DESC, id""",
            (image_id,),
        ).fetchall()
    return [_stored(row) for row in rows]


def _opt(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _stored(row: tuple[object, ...]) -> StoredDetection:
    return StoredDetection(
        id=int(row[0]),  # type: ignore[call-overload]
        image_id=str(row[1]),
        damage_type=str(row[2]),
        confidence=float(row[3]),  # type: ignore[arg-type]
        box=(float(row[4]), float(row[5]), float(row[6]), float(row[7])),  # type: ignore[arg-type]
        length_px=_opt(row[8]),
        max_width_px=_opt(row[9]),
        length_mm=_opt(row[10]),
        max_width_mm=_opt(row[11]),
        flagged_reason=None if row[12] is None else str(row[12]),
        model_name=str(row[13]),
        model_version=str(row[14]),
    )


# Boxes inspectors moved or drew ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoxToMeasure:
    review_id: int
    image_id: str
    blob_key: str
    meta: Mapping[str, object]
    x1: float
    y1: float
    x2: float
    y2: float


@dataclass(frozen=True, slots=True)
class BoxMeasurement:
    length_px: float | None = None
    max_width_px: float | None = None
    length_mm: float | None = None
    max_width_mm: float | None = None
    error: str | None = None


def boxes_to_measure(conn: Conn, limit: int) -> list[BoxToMeasure]:
    """Crack boxes from ``adjust`` and ``add`` reviews that no worker has measured yet,
    locked (SKIP LOCKED) in the caller's transaction so two workers never take one."""
    with translate_errors("finding boxes to measure"):
        rows = conn.execute(
            """SELECT r.id, r.image_id, i.blob_key, i.meta, r.x1, r.y1, r.x2, r.y2
               FROM reviews r
               JOIN images i ON i.id = r.image_id
               LEFT JOIN detections d ON d.id = r.detection_id
               WHERE r.action IN ('adjust', 'add')
                 AND r.x1 IS NOT NULL AND r.y1 IS NOT NULL
                 AND r.x2 IS NOT NULL AND r.y2 IS NOT NULL
                 AND coalesce(r.damage_type, d.damage_type) = 'crack'
                 AND NOT EXISTS (SELECT 1 FROM review_measurements m WHERE m.review_id = r.id)
               ORDER BY r.id
               LIMIT %s
               FOR UPDATE OF r SKIP LOCKED""",
            (limit,),
        ).fetchall()
    boxes = []
    for review_id, image_id, blob_key, meta, x1, y1, x2, y2 in rows:
        boxes.append(
            BoxToMeasure(
                int(str(review_id)),
                str(image_id),
                str(blob_key),
                meta if isinstance(meta, Mapping) else {},
                float(str(x1)),
                float(str(y1)),
                float(str(x2)),
                float(str(y2)),
            )
        )
    return boxes


def record_box_measurement(
    conn: Conn, review_id: int, worker_id: str, measurement: BoxMeasurement
) -> None:
    with translate_errors("recording a box measurement"):
        conn.execute(
            """INSERT INTO review_measurements
                   (review_id, length_px, max_width_px, length_mm, max_width_mm, measured_by,
                    error)
               VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (review_id) DO NOTHING""",
            (
                review_id,
                measurement.length_px,
                measurement.max_width_px,
                measurement.length_mm,
                measurement.max_width_mm,
                worker_id,
                measurement.error,
            ),
        )
