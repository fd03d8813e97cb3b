"""YOLO-format label files: ``class cx cy w h`` per line, normalised to the image size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.errors import DeadLetterReason, PayloadError


@dataclass(frozen=True, slots=True)
class YoloBox:
    class_id: int
    cx: float
    cy: float
    w: float
    h: float

    def to_xyxy(self, width: int, height: int) -> tuple[float, float, float, float]:
        return (
            (self.cx - self.w / 2) * width,
            (self.cy - self.h / 2) * height,
            (self.cx + self.w / 2) * width,
            (self.cy + self.h / 2) * height,
        )


def parse_yolo_labels(text: str, source: str = "labels") -> list[YoloBox]:
    """Parse label text; a malformed line is a :class:`PayloadError` naming it."""
    boxes: list[YoloBox] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            raise PayloadError(
                DeadLetterReason.INVALID, f"{source}:{number}: expected 5 fields, got {len(parts)}"
            )
        try:
            class_id = int(parts[0])
            cx, cy, w, h = (float(v) for v in parts[1:])
        except ValueError as exc:
            raise PayloadError(DeadLetterReason.INVALID, f"{source}:{number}: {exc}") from exc
        boxes.append(YoloBox(class_id, cx, cy, w, h))
    return boxes


def read_yolo_labels(path: Path) -> list[YoloBox]:
    """Boxes of one image; a missing or empty file means no damage."""
    if not path.exists():
        return []
    return parse_yolo_labels(path.read_text(encoding="utf-8"), str(path))
