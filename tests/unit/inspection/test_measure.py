"""Crack measurement on drawn cracks whose length and width are known."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from core.damage import DamageType
from core.inspection import GroundSampleDistance, MeasurementConfig
from inspection_models import synthetic
from inspection_models.detection import Detection
from inspection_models.measure import gsd_from_meta, measure, path_length, thin


def _crack(
    points: list[tuple[int, int]], width: int, seed: int = 0
) -> tuple[np.ndarray, Detection]:
    image = synthetic.concrete(np.random.default_rng(seed), 320, 320)
    box = synthetic.draw_crack(image, points, width)
    return image, Detection(DamageType.CRACK, 0.9, box.x1, box.y1, box.x2, box.y2)


def _polyline_length(points: list[tuple[int, int]]) -> float:
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))


@pytest.mark.parametrize("width", [2, 3, 5, 9])
@pytest.mark.parametrize(
    "points",
    [
        [(40, 100), (280, 100)],
        [(40, 40), (220, 220)],
        [(30, 160), (130, 90), (290, 170)],
        [(20, 30), (260, 210)],
    ],
    ids=["horizontal", "diagonal", "bent", "slanted"],
)
def test_length_and_width_in_pixels(points: list[tuple[int, int]], width: int) -> None:
    image, det = _crack(points, width, seed=width)
    m = measure(image, det, MeasurementConfig(), mm_per_px=None)
    assert m.length_px == pytest.approx(_polyline_length(points), rel=0.08)
    assert m.max_width_px == pytest.approx(width, abs=max(1.0, 0.2 * width))
    assert m.mean_width_px <= m.max_width_px
    assert m.length_mm is None
    assert m.max_width_mm is None


def test_millimetres_from_ground_sample_distance_and_limits() -> None:
    # 0.1 mm per pixel: a 3 px crack is 0.3 mm wide and 240 px is 24 mm long.
    image, det = _crack([(40, 160), (280, 160)], 3)
    m = measure(image, det, MeasurementConfig(width_limits_mm=(0.2, 0.3)), mm_per_px=0.1)
    assert m.max_width_mm == pytest.approx(0.3, abs=0.035)
    assert m.length_mm == pytest.approx(24.0, rel=0.08)
    assert m.exceeds_limit_mm in (0.2, 0.3)  # 0.3 exactly sits on the limit
    thin_image, thin_det = _crack([(40, 160), (280, 160)], 1)
    hair = measure(thin_image, thin_det, MeasurementConfig(), mm_per_px=0.1)
    assert hair.max_width_mm == pytest.approx(0.1, abs=0.02)
    assert hair.exceeds_limit_mm is None
    wide_image, wide_det = _crack([(40, 160), (280, 160)], 9)
    wide = measure(wide_image, wide_det, MeasurementConfig(), mm_per_px=0.1)
    assert wide.exceeds_limit_mm == 0.3


def test_gsd_from_camera_geometry() -> None:
    # 10 m away, 13.2 mm sensor, 10.57 mm lens, 5472 px: about 2.28 mm per pixel.
    gsd = GroundSampleDistance(
        distance_m=10, focal_length_mm=10.57, sensor_width_mm=13.2, image_width_px=5472
    )
    assert gsd.resolve() == pytest.approx(2.282, abs=0.002)
    assert GroundSampleDistance(mm_per_px=0.5).resolve() == 0.5
    with pytest.raises(ValueError, match="mm_per_px"):
        GroundSampleDistance(distance_m=10)


def test_gsd_from_image_metadata_and_fallback() -> None:
    fallback = GroundSampleDistance(mm_per_px=9.0)
    assert gsd_from_meta({"gsd_mm_per_px": 0.25}, fallback) == 0.25
    manifest_like = {
        "camera": {"focal_length_mm": 8.8, "sensor_width_mm": 13.2, "image_width_px": 5472},
        "location": {"lat": 34.1, "lon": 131.4, "alt_m": 5.0},
    }
    assert gsd_from_meta(manifest_like, None) == pytest.approx(5000 * 13.2 / (8.8 * 5472))
    assert gsd_from_meta({"camera": {"focal_length_mm": 8.8}, "distance_m": 5}, fallback) == 9.0
    assert gsd_from_meta({}, None) is None


def test_thinning_and_path_length_of_a_straight_bar() -> None:
    mask = np.zeros((20, 60), dtype=np.uint8)
    mask[8:13, 5:55] = 1
    skeleton = thin(mask)
    assert skeleton.sum() >= 40
    assert (skeleton.sum(axis=0)[10:50] == 1).all()  # one pixel across
    # Thinning eats about half the bar's width at each square end: 50 - 5 px remain.
    assert path_length(skeleton) == pytest.approx((50 - 5) * 0.948, rel=0.1)
