"""The fleet as data: the shipped file loads, bad files are refused by key, and
`mamori edge simulate` drives the fleet over a real Mosquitto."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.errors import ConfigError, PayloadError
from core.messages import ReadingBatch, decode
from core.settings import MqttSettings
from edge_agent.fleet import YAMAGUCHI_FLEET, load_fleet


def test_the_shipped_fleet_file_loads() -> None:
    fleet = load_fleet(YAMAGUCHI_FLEET)
    assert fleet.scenario == "yamaguchi-heavy-rain"
    assert {d.spec.kind for d in fleet.devices} >= {
        "river_level",
        "rain_gauge",
        "slope",
        "accelerometer",
        "strain",
    }
    assert all(d.spec.site_id == fleet.site.id for d in fleet.devices)
    assert {d.spec.asset_id for d in fleet.devices} <= {a.id for a in fleet.assets}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            (
                "    driver: {type: river_level, base_m: 0.8",
                "    driver: {type: river_levels, base_m: 0.8",
            ),
            "driver",
        ),
        (
            ("- {id: rg-nihoh-1, asset: rain-nihoh", "- {id: rg-nihoh-1, asset: rain-nowhere"),
            "rain-nowhere",
        ),
        (("peak_mm_h: 80.0", "peak_mm_h: -3"), "peak_mm_h"),
    ],
)
def test_a_bad_fleet_file_names_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    text = YAMAGUCHI_FLEET.read_text(encoding="utf-8")
    assert change[0] in text
    bad = tmp_path / "fleet.yaml"
    bad.write_text(text.replace(change[0], change[1], 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_fleet(bad)


def test_simulate_publishes_every_device(mqtt_settings: MqttSettings) -> None:
    inbox: queue.Queue[tuple[str, bytes]] = queue.Queue()
    watcher = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    watcher.on_message = lambda _c, _u, msg: inbox.put((msg.topic, bytes(msg.payload)))
    watcher.connect(mqtt_settings.host, mqtt_settings.port)
    watcher.subscribe(f"{mqtt_settings.topic_prefix}/v1/+/+/readings", qos=1)
    watcher.loop_start()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mamori",
                "edge",
                "simulate",
                "--scenario",
                "yamaguchi-heavy-rain",
                "--speed",
                "3600",
                "--duration",
                "4",
            ],
            env={
                **os.environ,
                "MAMORI_EDGE_MQTT__HOST": mqtt_settings.host,
                "MAMORI_EDGE_MQTT__PORT": str(mqtt_settings.port),
                "MAMORI_EDGE_MQTT__TOPIC_PREFIX": mqtt_settings.topic_prefix,
            },
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        watcher.loop_stop()
    assert result.returncode == 0, result.stdout + result.stderr
    seen: set[str] = set()
    while not inbox.empty():
        topic, payload = inbox.get()
        try:
            seen.add(decode(ReadingBatch, payload, max_bytes=100_000).device)
        except PayloadError:  # the broken accelerometer's corrupt messages
            assert "br-fushino-acc-2" in topic
    assert seen == {d.spec.id for d in load_fleet(YAMAGUCHI_FLEET).devices}
