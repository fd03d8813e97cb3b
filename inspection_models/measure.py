"""Crack length and width in pixels, and in millimetres where the scale is known.

Inside a crack's box the crack is segmented with a black-hat transform (dark detail
narrower than the kernel) and Otsu's threshold, thinned to a one-pixel skeleton
(Zhang–Suen), and measured:

* length: the skeleton's 8-connected path length with Kulpa's step weights;
* width: twice the distance from the skeleton to the crack's edge (distance transform),
  at its largest, and the mean width as area / length.

A width below one pixel cannot be measured from a mask: such cracks read as 1 px, and
the millimetre figure is then an upper bound. The ground sample distance decides
whether a crack of one pixel is 0.1 mm or 3 mm, so flags in millimetres need it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from core.inspection import (
    ClassicalDetectorConfig,
    CrackMeasurement,
    GroundSampleDistance,
    MeasurementConfig,
)
from inspection_models.classical import crack_mask
from inspection_models.detection import Detection, Image

Mask = npt.NDArray[np.uint8]

_PAD_PX = 24
_MAX_WIDTH_PX = 40  # the black-hat kernel must be wider than the widest crack


def segment_crack(crop: Image) -> Mask:
    return segment_crack_guided(crop)[0]


def segment_crack_guided(crop: Image) -> tuple[Mask, Mask]:
    """(crack pixels, the crack's course) as 0/1 masks of a crop.

    On a fairly even surface the black-hat mask is the crack itself. On a rough one
    (grainy concrete, asphalt-like quay walls) the black-hat answers to every pore and
    nothing, or everything, passes: then the crack's course is found with the ridge
    filter, and its width from the pixels darker than the local background within a
    band around that course.
    """
    gray = np.asarray(
        cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop, dtype=np.uint8
    )
    mask = _blackhat_mask(gray)
    if 0 < mask.sum() <= _MAX_SHARE * mask.size:
        return mask, mask
    return _guided_mask(gray)


_MAX_SHARE = 0.25  # a crack never fills a quarter of its own padded box


def _guided_mask(gray: Mask) -> tuple[Mask, Mask]:
    course, _ = crack_mask(gray, ClassicalDetectorConfig(min_response=0.0))
    course = (course > 0).astype(np.uint8)
    if not course.any():
        return course, course
    # Keep the longest pieces of the course: the crack, not the pores beside it.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(course, connectivity=8)
    extent = np.maximum(stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT])
    keep = np.zeros(count, dtype=bool)
    keep[1:] = extent >= 0.3 * extent.max()
    course = np.asarray(keep[labels], dtype=np.uint8)
    background = cv2.medianBlur(gray, 31).astype(np.int16)
    darkness = background - gray.astype(np.int16)
    median = float(np.median(darkness))
    spread = 1.4826 * float(np.median(np.abs(darkness - median)))
    dark = darkness > median + spread
    return np.asarray(dark & (course > 0), dtype=np.uint8), course


def _blackhat_mask(gray: Mask) -> Mask:
    size = min(2 * _MAX_WIDTH_PX + 1, (min(gray.shape[:2]) // 2) * 2 + 1)
    size = max(size, 3)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    blackhat = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    otsu, _ = cv2.threshold(blackhat, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    # A hair crack is a sliver of the crop, and Otsu then splits the texture instead:
    # never go below what the texture itself reaches (a robust 4-sigma of its response).
    median = float(np.median(blackhat))
    spread = 1.4826 * float(np.median(np.abs(blackhat.astype(np.float32) - median)))
    threshold = max(float(otsu), median + 4 * spread, 8.0)
    mask = (blackhat > threshold).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count <= 1:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(count, dtype=bool)
    keep[1:] = areas >= 0.2 * areas.max()  # the crack, not the texture around it
    return np.asarray(keep[labels], dtype=np.uint8)


def thin(mask: Mask) -> Mask:
    """Zhang–Suen thinning of a 0/1 mask to a one-pixel-wide 8-connected skeleton."""
    img = np.pad(mask.astype(np.uint8), 1)
    while True:
        changed = False
        for step in (0, 1):
            p2 = img[:-2, 1:-1]
            p3 = img[:-2, 2:]
            p4 = img[1:-1, 2:]
            p5 = img[2:, 2:]
            p6 = img[2:, 1:-1]
            p7 = img[2:, :-2]
            p8 = img[1:-1, :-2]
            p9 = img[:-2, :-2]
            centre = img[1:-1, 1:-1]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(n.astype(np.int32) for n in ring[:-1])
            transitions = sum(
                ((ring[k] == 0) & (ring[k + 1] == 1)).astype(np.int32) for k in range(8)
            )
            if step == 0:
                cond = (p2 * p4 * p6 == 0) & (p4 * p6 * p8 == 0)
            else:
                cond = (p2 * p4 * p8 == 0) & (p2 * p6 * p8 == 0)
            remove = (
                (centre == 1) & (neighbours >= 2) & (neighbours <= 6) & (transitions == 1) & cond
            )
            if remove.any():
                centre[remove] = 0
                changed = True
        if not changed:
            return _drop_staircase(img)[1:-1, 1:-1].copy()


def _drop_staircase(img: Mask) -> Mask:
    """Remove the inner corner of each L (N and E set, S, W and SW clear), in each of the
    four orientations in turn: the diagonal step already connects its two ends, and a
    staircase would otherwise count both steps."""
    for _ in range(4):
        centre = img[1:-1, 1:-1]
        north, east = img[:-2, 1:-1], img[1:-1, 2:]
        south, west, south_west = img[2:, 1:-1], img[1:-1, :-2], img[2:, :-2]
        corner = (centre == 1) & (north == 1) & (east == 1)
        corner &= (south == 0) & (west == 0) & (south_west == 0)
        centre[corner] = 0
        img = np.ascontiguousarray(np.rot90(img))
    return img


#: Kulpa's weights for 8-connected chains: unbiased over all directions, within about 6 %
#: for any one direction (a staircase of unit and √2 steps overestimates a slanted line).
_ORTHOGONAL_STEP = 0.948
_DIAGONAL_STEP = 1.343


def path_length(skeleton: Mask) -> float:
    """Length of a skeleton from its orthogonal and diagonal neighbour steps (Kulpa)."""
    s = np.pad(skeleton.astype(bool), 1)
    right = s[1:-1, 1:-1] & s[1:-1, 2:]
    down = s[1:-1, 1:-1] & s[2:, 1:-1]
    # A diagonal step counts only where no orthogonal pair already bridges the corner.
    diag_dr = s[1:-1, 1:-1] & s[2:, 2:] & ~s[1:-1, 2:] & ~s[2:, 1:-1]
    diag_dl = s[1:-1, 1:-1] & s[2:, :-2] & ~s[1:-1, :-2] & ~s[2:, 1:-1]
    orthogonal = float(right.sum() + down.sum())
    diagonal = float(diag_dr.sum() + diag_dl.sum())
    # A single pixel has no steps but is still one pixel long.
    return max(_ORTHOGONAL_STEP * orthogonal + _DIAGONAL_STEP * diagonal, float(skeleton.any()))


def measure_mask(mask: Mask, course: Mask | None = None) -> tuple[float, float, float]:
    """(length, max width, mean width) in pixels of a 0/1 crack mask.

    ``course`` (default: the mask) is what the length and the centre line are read
    from; the width is always read from ``mask``.
    """
    area = float(mask.sum())
    if area == 0:
        return 0.0, 0.0, 0.0
    skeleton = thin(mask if course is None else course)
    length = max(path_length(skeleton), 1.0)
    distance = cv2.distanceTransform(
        np.pad(mask, 1).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE
    )[1:-1, 1:-1]
    on_skeleton = distance[skeleton > 0]
    mean_width = area / length
    # Ignore the two ends, where a thick blob's skeleton stub would read too wide.
    widest = float(np.percentile(on_skeleton, 98)) * 2 - 1 if on_skeleton.size else 1.0
    return length, max(widest, mean_width, 1.0), mean_width


def measure(
    image: Image, det: Detection, config: MeasurementConfig, mm_per_px: float | None
) -> CrackMeasurement:
    """Measure the crack inside ``det``'s box of ``image``."""
    height, width = image.shape[:2]
    x1 = max(0, int(det.x1) - _PAD_PX)
    y1 = max(0, int(det.y1) - _PAD_PX)
    x2 = min(width, math.ceil(det.x2) + _PAD_PX)
    y2 = min(height, math.ceil(det.y2) + _PAD_PX)
    mask, course = segment_crack_guided(image[y1:y2, x1:x2])
    length, max_width, mean_width = measure_mask(mask, course)
    length_mm = max_width_mm = exceeds = None
    if mm_per_px is not None:
        length_mm = round(length * mm_per_px, 2)
        max_width_mm = round(max_width * mm_per_px, 3)
        reached = [limit for limit in config.width_limits_mm if max_width_mm >= limit]
        exceeds = max(reached) if reached else None
    return CrackMeasurement(
        length_px=round(length, 1),
        max_width_px=round(max_width, 2),
        mean_width_px=round(mean_width, 2),
        mm_per_px=mm_per_px,
        length_mm=length_mm,
        max_width_mm=max_width_mm,
        exceeds_limit_mm=exceeds,
    )


def gsd_from_meta(
    meta: Mapping[str, object], fallback: GroundSampleDistance | None
) -> float | None:
    """Millimetres per pixel from an image's metadata, else from config, else unknown.

    Understood keys: ``gsd_mm_per_px``; or ``camera`` (``focal_length_mm``,
    ``sensor_width_mm``, ``image_width_px``) with ``location.alt_m`` or ``distance_m``
    (as in the photo manifest). Anything incomplete or invalid falls back.
    """
    direct = meta.get("gsd_mm_per_px")
    if isinstance(direct, int | float) and direct > 0:
        return float(direct)
    camera = meta.get("camera")
    location = meta.get("location")
    distance = meta.get("distance_m")
    if distance is None and isinstance(location, Mapping):
        distance = location.get("alt_m")
    if isinstance(camera, Mapping) and distance is not None:
        try:
            return GroundSampleDistance.model_validate(
                {
                    "distance_m": distance,
                    "focal_length_mm": camera.get("focal_length_mm"),
                    "sensor_width_mm": camera.get("sensor_width_mm"),
                    "image_width_px": camera.get("image_width_px"),
                }
            ).resolve()
        except ValidationError:
            pass
    return fallback.resolve() if fallback is not None else None
