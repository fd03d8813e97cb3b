"""The training set builder (numpy and OpenCV only; no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.damage import MODEL_CLASSES, DamageType
from inspection_models import synthetic
from inspection_models.detection import read_image
from inspection_models.labels import parse_yolo_labels
from inspection_models.training.dataset import build

DATASET = Path(__file__).resolve().parents[3] / "../shared/datasets/omu-crack-quay"


def test_build_writes_real_composite_and_procedural_pictures(tmp_path: Path) -> None:
    summary = build(DATASET, tmp_path / "data", ("h1",), ("o6",), limit=3, seed=1)
    assert summary.train_real == 3
    assert summary.train_images == 3 + 3 + 3  # real, composited onto real, procedural
    assert summary.val_images == 3
    train_images = sorted((tmp_path / "data/images/train").iterdir())
    assert len(train_images) == summary.train_images
    seen: set[int] = set()
    for image in train_images:
        labels = (tmp_path / "data/labels/train" / f"{image.stem}.txt").read_text()
        for box in parse_yolo_labels(labels):
            assert 0 <= box.class_id < len(MODEL_CLASSES)
            assert 0 < box.w <= 1
            assert 0 < box.h <= 1
            seen.add(box.class_id)
    assert 0 in seen  # real cracks kept in the composites
    data_yaml = summary.data_yaml.read_text()
    assert "0: crack" in data_yaml
    assert "3: efflorescence" in data_yaml


def test_synthetic_damage_is_labelled_where_it_was_drawn() -> None:
    rng = np.random.default_rng(3)
    for _ in range(10):
        image, boxes = synthetic.sample(rng, size=256)
        plain = synthetic.concrete(np.random.default_rng(0), 256, 256)
        assert image.shape == plain.shape
        for box in boxes:
            assert box.damage in (
                DamageType.SPALLING,
                DamageType.CORROSION,
                DamageType.EFFLORESCENCE,
            )
            assert 0 <= box.x1 < box.x2 <= 256
            assert 0 <= box.y1 < box.y2 <= 256


def test_composites_keep_clear_of_labelled_cracks() -> None:
    background = read_image(sorted((DATASET / "h1").glob("*.jpg"))[0])
    assert background is not None
    avoid = ((0.0, 0.0, 128.0, 256.0),)  # the left half is "crack"
    rng = np.random.default_rng(5)
    for _ in range(5):
        _, boxes = synthetic.sample(rng, background=background, avoid=avoid)
        for box in boxes:
            assert box.x1 >= 120  # blur may bleed a few pixels
