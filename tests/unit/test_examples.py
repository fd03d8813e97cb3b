"""Example files shipped in the repository stay valid."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import EdgeSettings, StreamSensor, load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_device_example_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMORI_EDGE_MQTT__PASSWORD", "from-the-environment")
    settings = load_settings(EdgeSettings, EXAMPLES / "device-gateway.yaml")
    assert settings.device == "wl-ohdoi-1"
    assert isinstance(settings.sensors[0], StreamSensor)
    assert settings.mqtt.tls is not None
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "from-the-environment"
