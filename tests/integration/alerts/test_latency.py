"""The latency harness behind bench/alert_latency.py works (its figures are not asserted)."""

from __future__ import annotations

from alerts.latency import run
from core.settings import MqttSettings


def test_every_probe_transition_arrives(database_url: str, mqtt_settings: MqttSettings) -> None:
    result = run(
        mqtt_settings, database_url, probes=6, interval_s=0.02, background_rate=2000, devices=4
    )
    assert result.lost == 0
    assert len(result.samples_ms) == 6
    assert result.background_readings > 0
    assert "p99" in result.summary()
