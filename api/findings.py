"""What a photo's findings are after inspectors had their say.

Reviews are an append-only log; this folds it over the model's detections. For each
detection the latest decision wins: ``confirm``, ``reclassify``, ``adjust`` and ``add``
mean the damage is real (with the class and box they set), ``reject`` that it is not.
A box an inspector drew is stored as a detection of its own (confidence 1, model
version ``inspector``) with an ``add`` review, so it can be adjusted or rejected like
any other. Grades are ``grade`` reviews: per member, or for the whole asset when the
member is empty; the latest per member wins.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from api.taxonomy import severity
from store.api_queries import DetectionRow, ReviewRow

Status = Literal["pending", "confirmed", "rejected"]
_DECISIONS = frozenset({"confirm", "reject", "reclassify", "adjust", "add"})


@dataclass(frozen=True, slots=True)
class Finding:
    detection_id: int
    damage_type: str
    model_damage_type: str
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float
    length_px: float | None
    max_width_px: float | None
    length_mm: float | None
    max_width_mm: float | None
    flagged_reason: str | None
    model_name: str
    model_version: str
    status: Status
    added_by_inspector: bool
    adjusted: bool
    reviewed_by: str | None
    reviewed_at: datetime | None
    #: The measurement is a worker's, of the box an inspector set (not the model's box).
    remeasured: bool = False

    @property
    def severity(self) -> float:
        return severity(self.damage_type, self.confidence, self.max_width_mm)


@dataclass(frozen=True, slots=True)
class GradeEntry:
    member: str | None
    grade: str
    note: str | None
    reviewer: str
    at: datetime


def fold(detections: Sequence[DetectionRow], reviews: Sequence[ReviewRow]) -> list[Finding]:
    """Findings of one photo, most severe first (pending ones before decided ones)."""
    by_detection: dict[int, list[ReviewRow]] = {}
    for review in sorted(reviews, key=lambda r: (r.created_at, r.id)):
        if review.detection_id is not None and review.action in _DECISIONS:
            by_detection.setdefault(review.detection_id, []).append(review)
    findings = []
    for det in detections:
        status: Status = "pending"
        damage_type = det.damage_type
        box = (det.x1, det.y1, det.x2, det.y2)
        added = adjusted = remeasured = False
        sizes = (det.length_px, det.max_width_px, det.length_mm, det.max_width_mm)
        reviewer: str | None = None
        reviewed_at: datetime | None = None
        for review in by_detection.get(det.id, []):
            reviewer, reviewed_at = review.reviewer, review.created_at
            if review.action == "reject":
                status = "rejected"
                continue
            status = "confirmed"
            if review.action == "add":
                added = True
            if review.action in {"reclassify", "add"} and review.damage_type:
                damage_type = review.damage_type
            if review.action == "adjust" and _has_box(review):
                box = (review.x1 or 0.0, review.y1 or 0.0, review.x2 or 0.0, review.y2 or 0.0)
                adjusted = True
            if review.action in {"adjust", "add"} and review.measured_max_width_px is not None:
                # A worker measured the crack in the box this review set.
                sizes = (
                    review.measured_length_px,
                    review.measured_max_width_px,
                    review.measured_length_mm,
                    review.measured_max_width_mm,
                )
                remeasured = True
        findings.append(
            Finding(
                detection_id=det.id,
                damage_type=damage_type,
                model_damage_type=det.damage_type,
                confidence=det.confidence,
                x1=box[0],
                y1=box[1],
                x2=box[2],
                y2=box[3],
                # Until a worker measured the box an inspector set, the model's
                # measurement stands (usually the same crack, boxed better).
                length_px=sizes[0],
                max_width_px=sizes[1],
                length_mm=sizes[2],
                max_width_mm=sizes[3],
                flagged_reason=det.flagged_reason,
                model_name=det.model_name,
                model_version=det.model_version,
                status=status,
                added_by_inspector=added,
                adjusted=adjusted,
                reviewed_by=reviewer,
                reviewed_at=reviewed_at,
                remeasured=remeasured,
            )
        )
    order = {"pending": 0, "confirmed": 1, "rejected": 2}
    findings.sort(key=lambda f: (order[f.status], -f.severity, f.detection_id))
    return findings


def grades(reviews: Sequence[ReviewRow]) -> list[GradeEntry]:
    """The latest grade per member (``None``: the asset as a whole), asset first."""
    latest: dict[str | None, GradeEntry] = {}
    for review in sorted(reviews, key=lambda r: (r.created_at, r.id)):
        if review.action == "grade" and review.grade:
            latest[review.member or None] = GradeEntry(
                review.member or None,
                review.grade,
                review.note,
                review.reviewer,
                review.created_at,
            )
    return sorted(latest.values(), key=lambda g: (g.member is not None, g.member or ""))


def queue_severity(findings: Sequence[Finding]) -> float:
    """A photo's place in the queue: its most severe undecided finding."""
    return max((f.severity for f in findings if f.status == "pending"), default=0.0)


def _has_box(review: ReviewRow) -> bool:
    return None not in (review.x1, review.y1, review.x2, review.y2)
