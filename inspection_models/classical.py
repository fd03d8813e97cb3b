"""The ``classical`` backend: an OpenCV crack finder that needs no model at all.

A crack is a thin line darker than the surface around it. A multi-scale ridge filter
(the larger eigenvalue of the Hessian of the smoothed picture, less the smaller one)
answers to dark lines of about the scale's width and much less to the round pores and
grains of concrete. Hysteresis keeps weak ridge pixels only where they connect to a
strong one, with both thresholds in standard deviations of the picture's own response,
so that lighting and texture set the bar. Pieces closer than ``link_px`` are grouped as
one crack, and a group is kept only if it is long and thin. It finds cracks only:
spalling, corrosion and efflorescence need the ONNX model.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from core.damage import DamageType
from core.inspection import ClassicalDetectorConfig
from inspection_models.detection import Detection, Image

FloatImage = npt.NDArray[np.float32]
Mask = npt.NDArray[np.uint8]


def ridge_response(gray: Mask, sigmas: Sequence[float]) -> FloatImage:
    """Dark-line strength per pixel, the maximum over scales (scale-normalised)."""
    source = gray.astype(np.float32)
    best = np.zeros_like(source)
    for sigma in sigmas:
        smooth = cv2.GaussianBlur(source, (0, 0), sigma)
        dxx = cv2.Sobel(smooth, cv2.CV_32F, 2, 0, ksize=3)
        dyy = cv2.Sobel(smooth, cv2.CV_32F, 0, 2, ksize=3)
        dxy = cv2.Sobel(smooth, cv2.CV_32F, 1, 1, ksize=3)
        root = np.sqrt((dxx - dyy) ** 2 + 4 * dxy**2)
        across = (dxx + dyy + root) / 2  # curvature across a dark line: large, positive
        along = (dxx + dyy - root) / 2  # along it: near zero (a pore curves both ways)
        response = np.where(across > 0, across - np.abs(along), 0) * np.float32(sigma * sigma)
        np.maximum(best, response, out=best)
    return best


def hysteresis(response: FloatImage, low: float, high: float) -> Mask:
    weak = (response > low).astype(np.uint8)
    count, labels = cv2.connectedComponents(weak, connectivity=8)
    if count <= 1:
        return np.zeros_like(weak)
    seeded = np.zeros(count, dtype=bool)
    seeded[np.unique(labels[response > high])] = True
    seeded[0] = False
    return np.asarray(seeded[labels], dtype=np.uint8) * np.uint8(255)


def crack_mask(gray: Mask, config: ClassicalDetectorConfig) -> tuple[Mask, FloatImage]:
    """(mask of crack-like pixels, ridge response) of a greyscale picture."""
    response = ridge_response(gray, config.sigmas)
    mean, std = float(response.mean()), float(response.std())
    # The relative bar adapts to texture; the absolute floor keeps a smooth, crack-free
    # surface (whose strongest ridge is still some sigmas above its mean) from seeding.
    high = max(mean + config.high_sigma * std, config.min_response)
    mask = hysteresis(response, mean + config.low_sigma * std, high)
    return mask, response


class ClassicalDetector:
    def __init__(self, config: ClassicalDetectorConfig) -> None:
        self._config = config
        self._version = hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return "classical-ridge"

    @property
    def version(self) -> str:
        return self._version

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        return [self._detect_one(image) for image in images]

    def _detect_one(self, image: Image) -> list[Detection]:
        cfg = self._config
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        mask, response = crack_mask(gray.astype(np.uint8), cfg)
        grouping = mask
        if cfg.link_px > 0:
            size = 2 * cfg.link_px + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            grouping = np.asarray(cv2.dilate(mask, kernel), dtype=np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(grouping, connectivity=8)
        spread = float(response.std()) or 1.0
        found: list[Detection] = []
        for label in range(1, count):
            x, y, w, h, _ = (int(v) for v in stats[label])
            if math.hypot(w, h) < cfg.min_length_px:
                continue
            member = (labels[y : y + h, x : x + w] == label) & (mask[y : y + h, x : x + w] > 0)
            points = cv2.findNonZero(member.astype(np.uint8))
            if points is None:
                continue
            px, py, pw, ph = cv2.boundingRect(points)
            area = float(member.sum())
            (_, _), (side_a, side_b), _ = cv2.minAreaRect(points)
            # A curved or branched crack has a fat rectangle: its length is at least the
            # longer side and, bounded by its pixel count, about the box diagonal.
            length = min(max(side_a, side_b, math.hypot(pw, ph) * 0.8), area)
            mean_width = area / max(length, 1.0)
            if length < cfg.min_length_px or length / max(mean_width, 1.0) < cfg.min_elongation:
                continue
            strength = float(response[y : y + h, x : x + w][member].mean()) / spread
            confidence = 1.0 - math.exp(-(length / cfg.min_length_px) * strength / 4.0)
            found.append(
                Detection(
                    DamageType.CRACK,
                    round(confidence, 4),
                    float(x + px),
                    float(y + py),
                    float(x + px + pw),
                    float(y + py + ph),
                )
            )
        return found
