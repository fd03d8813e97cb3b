"""The damage taxonomy: what the vision models find, mapped to MLIT's damage types.

The categories follow MLIT's periodic inspection guidelines for road bridges
(道路橋定期点検要領, 損傷の種類) and the port facilities' equivalents. A model finds a
*type* of damage; only an engineer assigns a soundness grade (健全度 Ⅰ–Ⅳ), so no grade
appears here.

The class index is part of the model contract: a shipped ONNX model outputs scores in
:data:`MODEL_CLASSES` order, and the model card says so. Add new types at the end.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict


class DamageType(StrEnum):
    """Stored in ``detections.damage_type``; values are stable identifiers."""

    CRACK = "crack"
    SPALLING = "spalling"
    CORROSION = "corrosion"
    EFFLORESCENCE = "efflorescence"
    #: Kept for reviewers: a finding that an inspector reclassifies to something the
    #: models do not detect (deformation, loss of section, abnormal noise, ...).
    OTHER = "other"


class DamageInfo(BaseModel):
    """Names and the MLIT damage type one of our categories stands for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: DamageType
    name_en: str
    name_ja: str
    mlit_type_ja: str
    mlit_type_en: str
    #: The damage-type number in the road-bridge guideline's table (橋梁定期点検要領,
    #: 損傷の種類): steel members ①–⑤, concrete members ⑥–⑫, ⑰ その他.
    mlit_number: str
    #: Which materials the type applies to, for the review page's filters.
    materials: tuple[str, ...]
    #: Whether length and width are measured (cracks only: areas are boxes).
    measured: bool = False


TAXONOMY: Final[dict[DamageType, DamageInfo]] = {
    DamageType.CRACK: DamageInfo(
        type=DamageType.CRACK,
        name_en="crack",
        name_ja="ひびわれ",
        mlit_type_ja="ひびわれ",
        mlit_type_en="cracking",
        mlit_number="⑥",
        materials=("concrete",),
        measured=True,
    ),
    DamageType.SPALLING: DamageInfo(
        type=DamageType.SPALLING,
        name_en="spalling / exposed rebar",
        name_ja="剥離・鉄筋露出",
        mlit_type_ja="剥離・鉄筋露出",
        mlit_type_en="spalling, exposed reinforcement",
        mlit_number="⑦",
        materials=("concrete",),
    ),
    DamageType.CORROSION: DamageInfo(
        type=DamageType.CORROSION,
        name_en="corrosion / rust staining",
        name_ja="腐食",
        mlit_type_ja="腐食",
        mlit_type_en="corrosion",
        mlit_number="①",
        materials=("steel", "concrete"),
    ),
    DamageType.EFFLORESCENCE: DamageInfo(
        type=DamageType.EFFLORESCENCE,
        name_en="leakage / efflorescence",
        name_ja="漏水・遊離石灰",
        mlit_type_ja="漏水・遊離石灰",
        mlit_type_en="water leakage, efflorescence",
        mlit_number="⑧",
        materials=("concrete",),
    ),
    DamageType.OTHER: DamageInfo(
        type=DamageType.OTHER,
        name_en="other damage",
        name_ja="その他",
        mlit_type_ja="その他",
        mlit_type_en="other",
        mlit_number="⑰",
        materials=("concrete", "steel"),
    ),
}

#: The output order of every shipped detection model (class index → type).
MODEL_CLASSES: Final[tuple[DamageType, ...]] = (
    DamageType.CRACK,
    DamageType.SPALLING,
    DamageType.CORROSION,
    DamageType.EFFLORESCENCE,
)


def info(damage: DamageType) -> DamageInfo:
    return TAXONOMY[damage]


def label(damage: DamageType) -> str:
    """``ひびわれ (crack)``: how a picture or a report names a finding."""
    entry = TAXONOMY[damage]
    return f"{entry.name_ja} ({entry.name_en})"


__all__ = ["MODEL_CLASSES", "TAXONOMY", "DamageInfo", "DamageType", "info", "label"]
