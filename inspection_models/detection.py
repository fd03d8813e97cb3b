"""The detector protocol and what a detector returns, before tiling, merging and measuring."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import numpy.typing as npt

from core.damage import DamageType

#: An 8-bit BGR picture, as OpenCV reads it.
Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class Detection:
    """One box in the pixel coordinates of the picture that was given to the detector."""

    damage: DamageType
    confidence: float
    x1: float
    y1: float
    x2: float
    y2: float

    @property
    def area(self) -> float:
        return max(0.0, self.x2 - self.x1) * max(0.0, self.y2 - self.y1)

    def shifted(self, dx: float, dy: float) -> Detection:
        return replace(self, x1=self.x1 + dx, y1=self.y1 + dy, x2=self.x2 + dx, y2=self.y2 + dy)

    def xyxy(self) -> tuple[float, float, float, float]:
        return self.x1, self.y1, self.x2, self.y2


class Detector(Protocol):
    """A backend: the ONNX model, the classical finder, or anything with these members."""

    @property
    def name(self) -> str:
        """Model name stored with each detection (``yolov8n-mamori``, ``classical``)."""

    @property
    def version(self) -> str:
        """Model version stored with each detection (a file hash, a parameter digest)."""

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Detections for each picture, in the same order; pictures may differ in size."""


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def read_image(path: Path) -> Image | None:
    """An 8-bit BGR picture from a file, or None when OpenCV cannot read it."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else np.asarray(image, dtype=np.uint8)
