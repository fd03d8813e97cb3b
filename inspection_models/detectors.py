"""Backends chosen by validated config, like Frigate's detector plugins."""

from __future__ import annotations

from core.inspection import ClassicalDetectorConfig, DetectorConfig, OnnxDetectorConfig
from inspection_models.detection import Detector


def build_detector(config: DetectorConfig) -> Detector:
    """The backend that ``config.backend`` names; onnxruntime loads only for ``onnx``."""
    if isinstance(config, OnnxDetectorConfig):
        from inspection_models.onnx_backend import OnnxDetector

        return OnnxDetector(config)
    if isinstance(config, ClassicalDetectorConfig):
        from inspection_models.classical import ClassicalDetector

        return ClassicalDetector(config)
    raise AssertionError(f"unknown detector config {config!r}")  # pragma: no cover
