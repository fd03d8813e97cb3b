"""Contracts of damage inspection that other services read.

* Detector configuration, chosen and validated like Frigate's detectors: ``backend``
  names the plugin (``onnx`` or ``classical``) and only that backend's options apply.
* :class:`Finding`: one damage found on one photo, as stored in ``detections`` and shown
  on the review page.
* :class:`InspectionEvent`: what the worker publishes over MQTT when a photo is done,
  on :func:`inspection_topic`.
* :class:`GroundSampleDistance`: millimetres per pixel from a scale or from altitude and
  camera, so that crack widths can be judged against limits in millimetres.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from core.damage import DamageType
from core.messages import PROTOCOL_VERSION, Ident


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Detector configuration --------------------------------------------------------------


class OnnxDetectorConfig(_Model):
    """A YOLO-family model exported to ONNX (``(batch, 4 + classes, anchors)`` output)."""

    backend: Literal["onnx"] = "onnx"
    model_path: Path | None = Field(
        default=None, description="unset means the model shipped in inspection_models/weights"
    )
    input_size: int = Field(default=640, ge=32, le=4096, multiple_of=32)
    threads: int = Field(default=2, ge=1, le=64, description="onnxruntime intra-op threads")
    batch_size: int = Field(default=8, ge=1, le=256)
    confidence: float = Field(default=0.25, gt=0, lt=1, description="operating threshold")
    class_confidence: dict[DamageType, float] = Field(
        default_factory=lambda: {DamageType.CRACK: 0.08},
        description="per-class operating thresholds; the shipped model's crack threshold "
        "was chosen on its training site (see the model card)",
    )
    grey_classes: tuple[DamageType, ...] = Field(
        default=(DamageType.CRACK,),
        description="classes read from a greyscale pass: a crack is a shape, not a colour, "
        "and surfaces differ in colour from site to site; () for one colour pass",
    )
    iou: float = Field(default=0.5, gt=0, lt=1, description="non-maximum suppression IoU")
    max_detections: int = Field(default=300, ge=1, le=10_000)

    @model_validator(mode="after")
    def _thresholds_in_range(self) -> OnnxDetectorConfig:
        if any(not 0 < v < 1 for v in self.class_confidence.values()):
            raise ValueError("class_confidence values must be between 0 and 1")
        return self

    def threshold(self, damage: DamageType) -> float:
        return self.class_confidence.get(damage, self.confidence)


class ClassicalDetectorConfig(_Model):
    """The OpenCV crack finder: multi-scale ridge filter, hysteresis, shape test.

    Thresholds are in standard deviations of the picture's own ridge response, so they
    adapt to lighting and texture. Needs no model at all; finds cracks only.
    """

    backend: Literal["classical"] = "classical"
    sigmas: tuple[float, ...] = Field(
        default=(2.0, 3.0, 4.5), min_length=1, description="ridge scales, pixels; about crack width"
    )
    low_sigma: float = Field(default=1.0, ge=0, le=20, description="hysteresis: grow into")
    high_sigma: float = Field(default=4.0, gt=0, le=50, description="hysteresis: seed from")
    min_response: float = Field(
        default=100.0, ge=0, description="absolute floor of a seed's ridge response"
    )
    min_length_px: float = Field(default=30.0, ge=1)
    min_elongation: float = Field(default=4.0, ge=1, description="length / mean width")
    link_px: int = Field(default=4, ge=0, le=100, description="pieces this close are one crack")
    confidence: float = Field(default=0.7, gt=0, lt=1, description="operating threshold")

    @model_validator(mode="after")
    def _ordered(self) -> ClassicalDetectorConfig:
        if self.low_sigma >= self.high_sigma:
            raise ValueError("low_sigma must be below high_sigma")
        return self


DetectorConfig = Annotated[
    OnnxDetectorConfig | ClassicalDetectorConfig, Field(discriminator="backend")
]


class TilingConfig(_Model):
    """Large photos are cut at native resolution: a crack is a few pixels wide."""

    tile_px: int = Field(default=640, ge=64, le=4096, multiple_of=32)
    overlap_px: int = Field(default=128, ge=0, le=1024)
    merge_gap_px: float = Field(
        default=8.0, ge=0, description="cut pieces of one crack closer than this are joined"
    )
    nested_share: float = Field(
        default=0.6,
        gt=0,
        le=1,
        description="boxes of one class overlapping this much of the smaller are one finding",
    )

    @model_validator(mode="after")
    def _overlap_below_tile(self) -> TilingConfig:
        if self.overlap_px >= self.tile_px // 2:
            raise ValueError("overlap_px must be less than half of tile_px")
        return self


class MeasurementConfig(_Model):
    """Crack width limits in millimetres (common limits: 0.2 mm and 0.3 mm)."""

    width_limits_mm: tuple[float, ...] = Field(default=(0.2, 0.3), min_length=1)
    flag_min_confidence: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="findings at least this sure flag a photo; unset: every finding the "
        "detector reports at its operating threshold does",
    )
    gsd: GroundSampleDistance | None = Field(
        default=None, description="used when a photo carries none of its own"
    )

    @model_validator(mode="after")
    def _sorted_limits(self) -> MeasurementConfig:
        if list(self.width_limits_mm) != sorted(self.width_limits_mm) or any(
            v <= 0 for v in self.width_limits_mm
        ):
            raise ValueError("width_limits_mm must be positive and ascending")
        return self


class WorkerConfig(_Model):
    batch_size: int = Field(default=4, ge=1, le=256, description="images claimed at once")
    max_attempts: int = Field(default=3, ge=1, le=100)
    retry_delay_s: float = Field(default=30.0, ge=0, le=86_400)
    lease_s: float = Field(
        default=600.0, gt=0, description="a claim older than this is taken to be abandoned"
    )
    poll_interval_s: float = Field(default=2.0, gt=0, le=3600)


# Ground sample distance --------------------------------------------------------------


class GroundSampleDistance(_Model):
    """Millimetres on the surface per image pixel.

    Either given (``mm_per_px``, from a scale bar or a survey), or computed from the
    camera: ``distance × sensor width / (focal length × image width)``.
    """

    mm_per_px: float | None = Field(default=None, gt=0, le=1000)
    distance_m: float | None = Field(default=None, gt=0, le=10_000)
    focal_length_mm: float | None = Field(default=None, gt=0, le=2000)
    sensor_width_mm: float | None = Field(default=None, gt=0, le=100)
    image_width_px: int | None = Field(default=None, gt=0, le=100_000)

    @model_validator(mode="after")
    def _complete(self) -> GroundSampleDistance:
        camera = (self.distance_m, self.focal_length_mm, self.sensor_width_mm, self.image_width_px)
        if self.mm_per_px is None and any(v is None for v in camera):
            raise ValueError(
                "give mm_per_px, or all of distance_m, focal_length_mm, sensor_width_mm "
                "and image_width_px"
            )
        return self

    def resolve(self) -> float:
        if self.mm_per_px is not None:
            return self.mm_per_px
        assert self.distance_m is not None
        assert self.focal_length_mm is not None
        assert self.sensor_width_mm is not None
        assert self.image_width_px is not None
        return (
            self.distance_m
            * 1000.0
            * self.sensor_width_mm
            / (self.focal_length_mm * self.image_width_px)
        )


# Findings and events ------------------------------------------------------------------


class Box(_Model):
    x1: float
    y1: float
    x2: float
    y2: float

    @model_validator(mode="after")
    def _ordered(self) -> Box:
        if self.x2 < self.x1 or self.y2 < self.y1:
            raise ValueError("a box needs x2 >= x1 and y2 >= y1")
        return self

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1


class CrackMeasurement(_Model):
    length_px: float = Field(ge=0)
    max_width_px: float = Field(ge=0)
    mean_width_px: float = Field(ge=0)
    mm_per_px: float | None = Field(default=None, gt=0)
    length_mm: float | None = Field(default=None, ge=0)
    max_width_mm: float | None = Field(default=None, ge=0)
    #: The largest configured limit the width reaches (e.g. 0.3), or None.
    exceeds_limit_mm: float | None = None


class Finding(_Model):
    damage_type: DamageType
    confidence: float = Field(ge=0, le=1)
    box: Box
    measurement: CrackMeasurement | None = None
    flagged_reason: str | None = Field(default=None, max_length=500)


class ImageVerdict(StrEnum):
    FLAGGED = "flagged"
    CLEAR = "clear"
    FAILED = "failed"


class InspectionEvent(_Model):
    """Published (QoS 1) on :func:`inspection_topic` when the worker finishes a photo."""

    v: Literal[1] = PROTOCOL_VERSION
    image_id: Ident
    asset: Ident | None = None
    device: Ident | None = None
    verdict: ImageVerdict
    reason: str | None = Field(default=None, max_length=1000)
    model_name: str = Field(max_length=200)
    model_version: str = Field(max_length=200)
    findings: int = Field(ge=0)
    counts: dict[DamageType, int] = Field(default_factory=dict)
    max_crack_width_mm: float | None = Field(default=None, ge=0)
    seconds: float = Field(ge=0)
    at: AwareDatetime


INSPECTION_TOPIC_SEGMENT: Final = "inspections"


def inspection_topic(prefix: str, image_id: str) -> str:
    """``{prefix}/v1/inspections/{image_id}``; to move into ``core.topics.Topics``."""
    return f"{prefix}/v1/{INSPECTION_TOPIC_SEGMENT}/{image_id}"


MeasurementConfig.model_rebuild()

__all__ = [
    "Box",
    "ClassicalDetectorConfig",
    "CrackMeasurement",
    "DetectorConfig",
    "Finding",
    "GroundSampleDistance",
    "ImageVerdict",
    "InspectionEvent",
    "MeasurementConfig",
    "OnnxDetectorConfig",
    "TilingConfig",
    "WorkerConfig",
    "inspection_topic",
]
