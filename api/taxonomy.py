"""Damage types and soundness grades as the API and the review page name them.

Names and labels come from the shared taxonomy (``core.damage``). The YOLO class index
of ``export-reviewed`` is the models' own class order (``core.damage.MODEL_CLASSES``),
so reviewed photos train the same heads; ``other`` (a type the models do not detect,
chosen by an inspector) is reviewable but has no class and is left out of the labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from core.damage import MODEL_CLASSES, TAXONOMY, DamageType


@dataclass(frozen=True, slots=True)
class ReviewDamageType:
    name: str
    label_ja: str
    label_en: str
    #: Ranks the review queue: exposed rebar before a hairline crack.
    weight: float


#: How urgently each type wants an engineer (a judgement for ordering only; the grade
#: is the engineer's).
_WEIGHTS: Final = {
    DamageType.SPALLING: 4.0,
    DamageType.CORROSION: 3.0,
    DamageType.CRACK: 2.0,
    DamageType.EFFLORESCENCE: 1.5,
    DamageType.OTHER: 1.0,
}

DAMAGE_TYPES: Final = tuple(
    ReviewDamageType(d.value, TAXONOMY[d].name_ja, TAXONOMY[d].name_en, _WEIGHTS[d])
    for d in (*MODEL_CLASSES, *(t for t in DamageType if t not in MODEL_CLASSES))
)
BY_NAME: Final = {d.name: d for d in DAMAGE_TYPES}
CLASS_INDEX: Final = {d.value: i for i, d in enumerate(MODEL_CLASSES)}

Grade = Literal["I", "II", "III", "IV"]
GRADES: Final[tuple[Grade, ...]] = ("I", "II", "III", "IV")
#: MLIT 道路橋定期点検要領 soundness grades (健全性の診断).
GRADE_LABELS: Final = {
    "I": ("Ⅰ 健全", "I Sound"),
    "II": ("Ⅱ 予防保全段階", "II Preventive maintenance"),
    "III": ("Ⅲ 早期措置段階", "III Early action"),
    "IV": ("Ⅳ 緊急措置段階", "IV Emergency action"),
}

#: Crack widths (mm) that inspection manuals commonly treat as limits.
CRACK_WIDTH_LIMITS_MM: Final = (0.2, 0.3)


def label(name: str, lang: str) -> str:
    known = BY_NAME.get(name)
    if known is None:
        return name
    return known.label_ja if lang == "ja" else known.label_en


def severity(name: str, confidence: float, max_width_mm: float | None) -> float:
    """How urgently a finding wants an engineer's eye (higher first)."""
    known = BY_NAME.get(name)
    weight = known.weight if known else 1.0
    if name == DamageType.CRACK.value and max_width_mm is not None:
        if max_width_mm >= CRACK_WIDTH_LIMITS_MM[1]:
            weight += 1.5
        elif max_width_mm >= CRACK_WIDTH_LIMITS_MM[0]:
            weight += 0.75
    return round(weight * (0.5 + 0.5 * confidence), 4)
