"""The classical finder on real drone tiles (omu-crack-quay) and on clean concrete.

Parameters were tuned on site h1 only; site o6 is new to it. The bounds are a little
below the measured figures (docs/inspection.md) so that the test guards against a
regression, not against noise: the finder is deterministic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.damage import DamageType
from core.inspection import ClassicalDetectorConfig
from inspection_models import synthetic
from inspection_models.classical import ClassicalDetector
from inspection_models.evaluate import load_samples, predict_all, score
from inspection_models.training.dataset import evaluation_folder

DATASET = Path(__file__).resolve().parents[3] / "../shared/datasets/omu-crack-quay"


@pytest.fixture(scope="module")
def o6_with_negatives(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not DATASET.is_dir():
        pytest.fail(f"the crack dataset is missing at {DATASET.resolve()}")
    out = tmp_path_factory.mktemp("o6")
    positives, negatives = evaluation_folder(DATASET, ("o6",), out)
    assert (positives, negatives) == (72, 46)
    return out


def test_finds_cracks_on_an_unseen_site(o6_with_negatives: Path) -> None:
    samples = load_samples(o6_with_negatives, o6_with_negatives, {0: DamageType.CRACK})
    detector = ClassicalDetector(ClassicalDetectorConfig(confidence=0.001))
    report = score(
        samples, predict_all(samples, detector.detect), [DamageType.CRACK], confidence=0.7
    )
    assert report.image_level.recall >= 0.95
    assert report.image_level.f1 >= 0.88
    assert report.per_class["crack"].recall >= 0.3


def test_stays_quiet_on_clean_concrete() -> None:
    rng = np.random.default_rng(11)
    clean = [synthetic.clean(rng, 256) for _ in range(12)]
    found = ClassicalDetector(ClassicalDetectorConfig()).detect(clean)
    assert sum(1 for f in found if f) == 0
