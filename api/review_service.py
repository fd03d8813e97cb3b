"""The review workflow shared by the REST routes and the review page."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from api.blobs import stored_dimensions
from api.findings import Finding, GradeEntry, fold, grades, queue_severity
from api.models import ReviewIn
from api.pool import Conn
from api.security import Principal
from api.taxonomy import BY_NAME
from store import api_queries as q

_log = logging.getLogger(__name__)

#: ``model_version`` of boxes an inspector drew.
INSPECTOR_MODEL: str = "inspector"


class ReviewRefusedError(Exception):
    """A review that cannot apply to this photo (HTTP 422); the message says why."""


@dataclass(frozen=True, slots=True)
class ImageDetail:
    image: q.ImageRow
    findings: list[Finding]
    grades: list[GradeEntry]


@dataclass(frozen=True, slots=True)
class QueueItem:
    image: q.ImageRow
    severity: float
    pending: int
    top_type: str | None


def image_detail(conn: Conn, image_id: str, blob_dir: Path | None = None) -> ImageDetail:
    """A photo, its findings and grades; with ``blob_dir``, missing pixel dimensions are
    read from the stored photo's header (the page needs them to draw boxes)."""
    image = q.get_image(conn, image_id)
    if blob_dir is not None and (not image.width or not image.height):
        size = stored_dimensions(blob_dir, image.blob_key)
        if size is not None:
            image = dataclasses.replace(image, width=size[0], height=size[1])
    reviews = q.reviews_for(conn, [image_id])
    return ImageDetail(image, fold(q.detections_for(conn, [image_id]), reviews), grades(reviews))


def review_queue(conn: Conn, *, asset_id: str | None, limit: int) -> list[QueueItem]:
    """Photos with undecided findings, most severe first."""
    images = q.images_awaiting_review(conn, asset_id=asset_id, limit=max(limit, 500))
    ids = [i.id for i in images]
    detections = q.detections_for(conn, ids)
    reviews = q.reviews_for(conn, ids)
    items = []
    for image in images:
        findings = fold(
            [d for d in detections if d.image_id == image.id],
            [r for r in reviews if r.image_id == image.id],
        )
        pending = [f for f in findings if f.status == "pending"]
        items.append(
            QueueItem(
                image,
                queue_severity(findings),
                len(pending),
                pending[0].damage_type if pending else None,
            )
        )
    items.sort(key=lambda item: (-item.severity, item.image.received_at, item.image.id))
    return items[:limit]


def apply_review(
    conn: Conn,
    principal: Principal,
    image_id: str,
    body: ReviewIn,
    *,
    at_clock: datetime,
    blob_dir: Path | None = None,
) -> q.ReviewRow:
    """Check ``body`` against the photo and record it (one transaction)."""
    image = (
        image_detail(conn, image_id, blob_dir).image if blob_dir else q.get_image(conn, image_id)
    )
    detection_id = body.detection_id
    if detection_id is not None:
        detection = q.get_detection(conn, detection_id)
        if detection.image_id != image_id:
            raise ReviewRefusedError(f"detection {detection_id} is not on photo {image_id}")
    if body.action in {"reclassify", "add"} and body.damage_type not in BY_NAME:
        known = ", ".join(BY_NAME)
        raise ReviewRefusedError(f"unknown damage type {body.damage_type!r} (known: {known})")
    box = None
    if body.box is not None:
        box = (body.box.x1, body.box.y1, body.box.x2, body.box.y2)
        if image.width and image.height and (box[2] > image.width or box[3] > image.height):
            raise ReviewRefusedError(f"box lies outside the {image.width}×{image.height} photo")
    with conn.transaction():
        if body.action == "add":
            assert box is not None
            assert body.damage_type is not None
            detection_id = q.insert_inspector_detection(
                conn,
                image_id=image_id,
                damage_type=body.damage_type,
                box=box,
                model_version=INSPECTOR_MODEL,
            )
        row = q.insert_review(
            conn,
            q.NewReview(
                image_id=image_id,
                detection_id=detection_id if body.action != "grade" else None,
                reviewer=principal.name,
                action=body.action,
                damage_type=body.damage_type,
                box=box,
                member=(body.member or "").strip() or None,
                grade=body.grade,
                note=(body.note or "").strip() or None,
            ),
            at_clock,
        )
    conn.commit()
    _log.info("%s: %s on %s by %s", row.id, body.action, image_id, principal.name)
    return row
