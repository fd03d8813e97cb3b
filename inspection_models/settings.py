"""Settings of the inspection service: the base ``InspectSettings`` plus each part's config.

``detector`` (from the base) chooses the backend; only that backend's group applies, so
a config may keep both. ``model_path`` and ``threads`` of the base override the ONNX
group's, so the short environment variables keep working
(``MAMORI_INSPECT_DETECTOR=onnx``, ``MAMORI_INSPECT_THREADS=2``).
"""

from __future__ import annotations

import os
import socket

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from core.inspection import (
    ClassicalDetectorConfig,
    DetectorConfig,
    MeasurementConfig,
    OnnxDetectorConfig,
    TilingConfig,
    WorkerConfig,
)
from core.settings import InspectSettings, MqttSettings


def _default_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"[:64]


class InspectionSettings(InspectSettings):
    model_config = SettingsConfigDict(env_prefix="MAMORI_INSPECT_")

    mqtt: MqttSettings = MqttSettings()
    publish_events: bool = True
    onnx: OnnxDetectorConfig = OnnxDetectorConfig()
    classical: ClassicalDetectorConfig = ClassicalDetectorConfig()
    tiling: TilingConfig = TilingConfig()
    measurement: MeasurementConfig = MeasurementConfig()
    worker: WorkerConfig = WorkerConfig()
    worker_id: str = Field(default_factory=_default_worker_id, min_length=1, max_length=64)

    def detector_config(self) -> DetectorConfig:
        if self.detector == "onnx":
            update: dict[str, object] = {"threads": self.threads}
            if self.model_path is not None:
                update["model_path"] = self.model_path
            return self.onnx.model_copy(update=update)
        return self.classical
