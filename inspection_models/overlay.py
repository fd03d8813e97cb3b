"""Boxes and measurements drawn onto a photo: the picture an inspector looks at."""

from __future__ import annotations

import cv2
import numpy as np

from core.damage import DamageType
from core.inspection import Finding
from inspection_models.detection import Image

# BGR; chosen to stay apart on grey concrete and for red-green colour blindness.
_COLOURS: dict[DamageType, tuple[int, int, int]] = {
    DamageType.CRACK: (0, 215, 255),
    DamageType.SPALLING: (255, 80, 200),
    DamageType.CORROSION: (0, 90, 255),
    DamageType.EFFLORESCENCE: (255, 200, 0),
    DamageType.OTHER: (200, 200, 200),
}


def caption(finding: Finding) -> str:
    """ASCII text (OpenCV's fonts have no kana): type, confidence, size."""
    text = f"{finding.damage_type.value} {finding.confidence:.2f}"
    m = finding.measurement
    if m is not None:
        if m.max_width_mm is not None and m.length_mm is not None:
            text += f" w{m.max_width_mm:.2f}mm L{m.length_mm:.0f}mm"
        else:
            text += f" w{m.max_width_px:.1f}px L{m.length_px:.0f}px"
        if m.exceeds_limit_mm is not None:
            text += f" >{m.exceeds_limit_mm}mm"
    return text


def draw(image: Image, findings: list[Finding]) -> Image:
    """A copy of ``image`` with every finding boxed and captioned, scaled to be legible."""
    out = image.copy()
    scale = max(1.0, max(out.shape[:2]) / 1200)
    thickness = max(1, round(2 * scale))
    font_scale = 0.5 * scale
    for finding in findings:
        colour = _COLOURS.get(finding.damage_type, (255, 255, 255))
        b = finding.box
        p1, p2 = (round(b.x1), round(b.y1)), (round(b.x2), round(b.y2))
        cv2.rectangle(out, p1, p2, colour, thickness)
        text = caption(finding)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thickness)
        top = max(0, p1[1] - th - base - 2)
        cv2.rectangle(out, (p1[0], top), (p1[0] + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(
            out,
            text,
            (p1[0] + 2, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness,
            cv2.LINE_AA,
        )
    return np.asarray(out, dtype=np.uint8)
