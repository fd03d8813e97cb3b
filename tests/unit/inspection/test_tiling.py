"""Tiling at native resolution and merging a crack that crosses tile borders."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pytest

from core.damage import DamageType
from core.inspection import ClassicalDetectorConfig, TilingConfig
from inspection_models import synthetic
from inspection_models.classical import ClassicalDetector
from inspection_models.detection import Detection, Image
from inspection_models.pipeline import Inspector
from inspection_models.tiling import detect_tiled, origins, plan


class DarkPixelBoxes:
    """A stand-in detector with a known answer: one box around the dark pixels of a tile."""

    name = "dark-pixels"
    version = "1"

    def __init__(self) -> None:
        self.tile_shapes: list[tuple[int, int]] = []

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        out: list[list[Detection]] = []
        for image in images:
            self.tile_shapes.append(image.shape[:2])
            ys, xs = np.nonzero(image[..., 0] < 60)
            if xs.size == 0:
                out.append([])
                continue
            out.append(
                [Detection(DamageType.CRACK, 0.9, xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)]
            )
        return out


@pytest.mark.parametrize(
    ("length", "tile", "overlap", "expected"),
    [
        (500, 640, 128, [0]),
        (640, 640, 128, [0]),
        (1400, 640, 128, [0, 512, 760]),
        (5472, 640, 128, [0, 512, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 4608, 4832]),
    ],
)
def test_origins_cover_the_photo_with_overlap(
    length: int, tile: int, overlap: int, expected: list[int]
) -> None:
    starts = origins(length, tile, overlap)
    assert starts == expected
    assert starts[-1] + min(tile, length) == length
    for a, b in itertools.pairwise(starts):
        assert b - a <= tile - overlap


def test_a_20_megapixel_photo_is_tiled_at_native_resolution() -> None:
    tiles = plan(3648, 5472, TilingConfig(tile_px=640, overlap_px=128))
    assert len(tiles) == 7 * 11  # rows start at 0, 512, ..., 2560 and flush at 3008
    assert all(t.x1 - t.x0 == 640 for t in tiles)
    assert all(t.y1 - t.y0 == 640 for t in tiles)


def _long_crack_photo() -> tuple[np.ndarray, synthetic.DrawnBox]:
    image = np.full((700, 1800, 3), 150, dtype=np.uint8)
    crack = synthetic.draw_crack(image, [(100, 300), (700, 420), (1300, 330), (1700, 380)], 4)
    return image, crack


def test_a_crack_across_tile_borders_becomes_one_finding() -> None:
    image, crack = _long_crack_photo()
    detector = DarkPixelBoxes()
    found, tiles = detect_tiled(image, detector, TilingConfig(tile_px=640, overlap_px=128))
    assert tiles == 4 * 2
    assert all(shape == (640, 640) for shape in detector.tile_shapes)
    assert len(found) == 1
    merged = found[0]
    assert merged.xyxy() == pytest.approx((crack.x1, crack.y1, crack.x2, crack.y2), abs=1)


def test_separate_cracks_in_one_tile_stay_separate() -> None:
    image = np.full((1300, 1300, 3), 150, dtype=np.uint8)
    synthetic.draw_crack(image, [(100, 100), (400, 120)], 3)
    synthetic.draw_crack(image, [(900, 1000), (1200, 1100)], 3)
    detector = DarkPixelBoxes()
    found, _ = detect_tiled(image, detector, TilingConfig(tile_px=640, overlap_px=128))
    assert len(found) == 2


def test_classical_finder_through_the_pipeline_merges_and_measures() -> None:
    rng = np.random.default_rng(7)
    image = synthetic.concrete(rng, 700, 1800)
    points = [(100, 300), (700, 420), (1300, 330), (1700, 380)]
    crack = synthetic.draw_crack(image, points, 4)
    inspector = Inspector(
        ClassicalDetector(ClassicalDetectorConfig()), TilingConfig(tile_px=640, overlap_px=128)
    )
    result = inspector.inspect(image, mm_per_px=0.1)
    cracks = [f for f in result.findings if f.damage_type == DamageType.CRACK]
    assert len(cracks) == 1
    box = cracks[0].box
    assert box.x1 <= crack.x1 + 10
    assert box.x2 >= crack.x2 - 10
    m = cracks[0].measurement
    assert m is not None
    assert m.max_width_px == pytest.approx(4, abs=1.0)
    true_length = sum(
        float(np.hypot(b[0] - a[0], b[1] - a[1])) for a, b in itertools.pairwise(points)
    )
    assert m.length_px == pytest.approx(true_length, rel=0.1)
    assert result.verdict.value == "flagged"
    assert result.reason is not None
    assert "0.3 mm" in result.reason
