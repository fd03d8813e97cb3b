"""Taxonomy and validated detector configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from core.damage import MODEL_CLASSES, TAXONOMY, DamageType, label
from core.errors import ConfigError
from core.inspection import (
    ClassicalDetectorConfig,
    DetectorConfig,
    MeasurementConfig,
    OnnxDetectorConfig,
    TilingConfig,
    inspection_topic,
)
from core.settings import load_settings
from inspection_models.classical import ClassicalDetector
from inspection_models.detectors import build_detector
from inspection_models.onnx_backend import OnnxDetector
from inspection_models.settings import InspectionSettings


def test_every_damage_type_has_names_in_both_languages() -> None:
    assert set(TAXONOMY) == set(DamageType)
    for damage, entry in TAXONOMY.items():
        assert entry.type == damage
        assert entry.name_en
        assert entry.name_ja
        assert entry.mlit_type_ja
    assert TAXONOMY[DamageType.CRACK].mlit_type_ja == "ひびわれ"
    assert TAXONOMY[DamageType.SPALLING].mlit_type_ja == "剥離・鉄筋露出"
    assert TAXONOMY[DamageType.CORROSION].mlit_type_ja == "腐食"
    assert TAXONOMY[DamageType.EFFLORESCENCE].mlit_type_ja == "漏水・遊離石灰"
    assert label(DamageType.CRACK) == "ひびわれ (crack)"
    assert MODEL_CLASSES[0] == DamageType.CRACK
    assert TAXONOMY[DamageType.CRACK].measured


def test_backend_is_chosen_by_the_discriminator() -> None:
    adapter: TypeAdapter[DetectorConfig] = TypeAdapter(DetectorConfig)
    assert isinstance(adapter.validate_python({"backend": "classical"}), ClassicalDetectorConfig)
    onnx = adapter.validate_python({"backend": "onnx", "threads": 1})
    assert isinstance(onnx, OnnxDetectorConfig)
    assert isinstance(build_detector(ClassicalDetectorConfig()), ClassicalDetector)
    with pytest.raises(ValidationError):
        adapter.validate_python({"backend": "tensorrt"})
    with pytest.raises(ValidationError):
        adapter.validate_python({"backend": "onnx", "kernel": 3})  # the other backend's key
    with pytest.raises(ValidationError):
        OnnxDetectorConfig(input_size=500)  # not a multiple of 32
    with pytest.raises(ValidationError):
        ClassicalDetectorConfig(low_sigma=5, high_sigma=4)
    with pytest.raises(ValidationError):
        TilingConfig(tile_px=640, overlap_px=400)
    with pytest.raises(ValidationError):
        MeasurementConfig(width_limits_mm=(0.3, 0.2))


def test_settings_choose_the_backend_from_file_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "inspect.yaml"
    config.write_text(
        "detector: onnx\nthreads: 1\nonnx:\n  input_size: 320\n"
        "classical:\n  min_length_px: 50\ntiling:\n  tile_px: 512\n  overlap_px: 64\n"
    )
    settings = load_settings(InspectionSettings, config)
    chosen = settings.detector_config()
    assert isinstance(chosen, OnnxDetectorConfig)
    assert (chosen.threads, chosen.input_size) == (1, 320)
    assert settings.tiling.tile_px == 512
    detector = build_detector(chosen)
    assert isinstance(detector, OnnxDetector)
    monkeypatch.setenv("MAMORI_INSPECT_DETECTOR", "classical")
    settings = load_settings(InspectionSettings, config)
    classical = settings.detector_config()
    assert isinstance(classical, ClassicalDetectorConfig)
    assert classical.min_length_px == 50
    bad = tmp_path / "bad.yaml"
    bad.write_text("detector: onnx\nonnx:\n  threads: 0\n")
    with pytest.raises(ConfigError, match=r"onnx\.threads"):
        load_settings(InspectionSettings, bad)
    monkeypatch.delenv("MAMORI_INSPECT_DETECTOR")
    missing = tmp_path / "missing.yaml"
    missing.write_text(f"detector: onnx\nmodel_path: {tmp_path / 'nope.onnx'}\n")
    with pytest.raises(ConfigError, match="does not exist"):
        build_detector(load_settings(InspectionSettings, missing).detector_config())


def test_inspection_topic() -> None:
    assert inspection_topic("mamori", "img-1") == "mamori/v1/inspections/img-1"
