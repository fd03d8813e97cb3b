"""Verdicts: what flags a photo for review, and the reason given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.damage import DamageType
from core.inspection import ImageVerdict, MeasurementConfig
from inspection_models.detection import Detection, Image
from inspection_models.pipeline import Inspector


class Fixed:
    """A detector that always reports the same findings."""

    name = "fixed"
    version = "1"

    def __init__(self, found: list[Detection]) -> None:
        self.found = found

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        return [list(self.found) for _ in images]


def _photo() -> Image:
    image = np.full((200, 300, 3), 160, dtype=np.uint8)
    image[100:103, 40:260] = 40  # a 3-px crack, 220 px long
    return image


def test_every_reported_finding_flags_by_default_even_an_unsure_one() -> None:
    crack = Detection(DamageType.CRACK, 0.1, 40, 100, 260, 103)
    result = Inspector(Fixed([crack])).inspect(_photo(), mm_per_px=0.2)
    assert result.verdict == ImageVerdict.FLAGGED
    assert result.reason is not None
    assert result.reason.startswith("crack 0.6")  # 3 px at 0.2 mm/px
    assert "ひびわれ (crack)" in result.reason
    assert result.max_crack_width_mm is not None


def test_a_confidence_floor_can_be_set_and_nothing_found_is_clear() -> None:
    spall = Detection(DamageType.SPALLING, 0.3, 10, 10, 50, 50)
    strict = Inspector(Fixed([spall]), measurement=MeasurementConfig(flag_min_confidence=0.5))
    result = strict.inspect(_photo())
    assert result.verdict == ImageVerdict.CLEAR
    assert result.reason is None
    assert len(result.findings) == 1  # still recorded, for the reviewer
    assert Inspector(Fixed([])).inspect(_photo()).verdict == ImageVerdict.CLEAR


def test_non_crack_findings_name_their_type_and_carry_no_measurement() -> None:
    rust = Detection(DamageType.CORROSION, 0.7, 10, 10, 50, 50)
    result = Inspector(Fixed([rust])).inspect(_photo())
    assert result.verdict == ImageVerdict.FLAGGED
    assert result.findings[0].measurement is None
    assert result.reason == "1 × 腐食 (corrosion / rust staining)"
