"""Scores of the evaluation against hand-counted answers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from core.damage import DamageType
from inspection_models.detection import Detection
from inspection_models.evaluate import (
    Sample,
    Truth,
    average_precision,
    load_samples,
    parse_class_map,
    score,
)

CRACK = DamageType.CRACK


def _det(conf: float, box: tuple[float, float, float, float]) -> Detection:
    return Detection(CRACK, conf, *box)


def test_box_and_image_level_scores() -> None:
    samples = [
        Sample(Path("a.jpg"), (Truth(CRACK, (0, 0, 10, 10)), Truth(CRACK, (20, 20, 30, 30)))),
        Sample(Path("b.jpg"), (Truth(CRACK, (0, 0, 10, 10)),)),
        Sample(Path("c.jpg"), ()),  # no damage
    ]
    predictions = [
        [_det(0.9, (0, 0, 10, 10)), _det(0.8, (50, 50, 60, 60))],  # hit, false alarm
        [_det(0.1, (0, 0, 10, 10))],  # a hit, but below the operating threshold
        [_det(0.7, (5, 5, 15, 15))],  # false alarm on a clean picture
    ]
    report = score(samples, predictions, [CRACK], confidence=0.5)
    crack = report.per_class["crack"]
    assert (crack.ground_truth, crack.predictions, crack.true_positives) == (3, 3, 1)
    assert crack.precision == pytest.approx(1 / 3, abs=1e-3)
    assert crack.recall == pytest.approx(1 / 3, abs=1e-3)
    # Ranked: 0.9 hit, 0.8 miss, 0.7 miss, 0.1 hit → AP = 1/3 * 1 + 1/3 * 2/4
    assert crack.ap50 == pytest.approx(1 / 3 + 1 / 6, abs=1e-3)
    assert report.map50 == crack.ap50
    level = report.image_level
    assert (level.true_positives, level.false_positives, level.false_negatives) == (1, 1, 1)
    assert level.precision == 0.5
    assert level.recall == 0.5


def test_one_prediction_matches_one_truth_only() -> None:
    samples = [Sample(Path("a.jpg"), (Truth(CRACK, (0, 0, 10, 10)),))]
    predictions = [[_det(0.9, (0, 0, 10, 10)), _det(0.8, (0, 0, 10, 10))]]
    crack = score(samples, predictions, [CRACK], confidence=0.5).per_class["crack"]
    assert crack.true_positives == 1
    assert crack.precision == 0.5


def test_average_precision_of_a_perfect_ranking_is_one() -> None:
    recalls = np.array([0.5, 1.0])
    precisions = np.array([1.0, 1.0])
    assert average_precision(recalls, precisions) == 1.0


def test_class_map_and_folder_loading(tmp_path: Path) -> None:
    assert parse_class_map("0=crack, 1=spalling") == {0: CRACK, 1: DamageType.SPALLING}
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "one.JPG"), image)
    cv2.imwrite(str(tmp_path / "two.jpg"), image)
    (tmp_path / "one.txt").write_text("0 0.5 0.5 0.1 0.2\n1 0.1 0.1 0.1 0.1\n")
    # two.jpg has no label file: no damage.
    samples = load_samples(tmp_path, tmp_path, {0: CRACK})
    assert [s.image_path.name for s in samples] == ["one.JPG", "two.jpg"]
    assert len(samples[0].truths) == 1
    assert samples[0].truths[0].damage == CRACK
    assert samples[0].truths[0].box == pytest.approx((90.0, 40.0, 110.0, 60.0))
    assert samples[1].truths == ()
