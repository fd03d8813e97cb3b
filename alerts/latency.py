"""Alert latency under load: reading published → alert message received, over MQTT.

A background of ``background_rate`` readings per second (batches of ``batch`` readings
from ``devices`` registered devices, each watched by a threshold rule that never fires)
keeps the engine busy, while a probe device publishes, every ``interval_s``, a reading
that crosses its threshold and then one that clears it. Each crossing makes one
transition; the time from publishing the reading to receiving the retained
:class:`core.alerting.AssetAlerts` that carries it is one sample. ``bench/`` prints the
figures; nothing here asserts a speed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho

from alerts.engine import AlertEngine
from alerts.ruleset import parse_rules
from core.alerting import AssetAlerts
from core.mqtt import build_client, connect
from core.registry import AssetKind, AssetSpec, DeviceSpec, SiteSpec
from core.settings import AlertsSettings, MqttSettings
from core.topics import Topics
from store.db import connect as db_connect
from store.registry import upsert_asset, upsert_device, upsert_site

_log = logging.getLogger(__name__)

_RULES = """
defaults: {clear_for_s: 0}
rules:
  - id: probe
    type: threshold
    title: Probe
    applies_to: {assets: [%(probe)s]}
    metric: probe_m
    levels: [{level: 3, above: 1.0}]
  - id: background
    type: threshold
    title: Background
    applies_to: {kinds: [bridge]}
    metric: strain_ue
    levels: [{level: 2, above: 1.0e9}]
"""


@dataclass(slots=True)
class LatencyResult:
    samples_ms: list[float]
    background_readings: int
    duration_s: float
    lost: int

    @property
    def background_rate(self) -> float:
        return self.background_readings / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        if not self.samples_ms:
            return float("nan")
        ordered = sorted(self.samples_ms)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index]

    def summary(self) -> str:
        return (
            f"{len(self.samples_ms)} transitions ({self.lost} lost) under "
            f"{self.background_rate:,.0f} readings/s: p50 {self.percentile(50):.1f} ms, "
            f"p99 {self.percentile(99):.1f} ms, max {max(self.samples_ms, default=0):.1f} ms"
        )


@dataclass(slots=True)
class _Probe:
    sent: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def run(
    mqtt: MqttSettings,
    database_url: str,
    *,
    probes: int = 200,
    interval_s: float = 0.05,
    background_rate: float = 20_000.0,
    batch: int = 500,
    devices: int = 50,
) -> LatencyResult:
    tag = uuid.uuid4().hex[:6]
    site, probe_asset, probe_device = f"bench-{tag}", f"probe-{tag}", f"probe-dev-{tag}"
    background = [f"bg-{tag}-{i}" for i in range(devices)]
    _register(database_url, site, probe_asset, probe_device, background)
    rules = parse_rules(_RULES % {"probe": probe_asset})
    settings = AlertsSettings(mqtt=mqtt, tick_s=3600)
    engine = AlertEngine(settings, database_url, rules, client_id=f"alerts-bench-{tag}")
    topics = Topics(mqtt.topic_prefix)
    probe = _Probe()
    watcher = _watch(mqtt, topics.alerts(site, probe_asset), probe)
    engine.start()
    stop = threading.Event()
    counter = [0]
    load = threading.Thread(
        target=_background,
        args=(mqtt, topics, site, background, background_rate, batch, stop, counter),
        daemon=True,
    )
    try:
        load.start()
        time.sleep(1.0)  # let the load reach its rate
        started = time.monotonic()
        base = counter[0]
        _send_probes(
            mqtt, topics.readings(site, probe_device), probe_device, probe, probes, interval_s
        )
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(probe.received) < len(probe.sent):
            time.sleep(0.02)
        duration = time.monotonic() - started
        readings = counter[0] - base
    finally:
        stop.set()
        load.join(10)
        engine.stop()
        watcher.disconnect()
        watcher.loop_stop()
    samples = [
        (probe.received[key] - sent) * 1000
        for key, sent in probe.sent.items()
        if key in probe.received
    ]
    return LatencyResult(samples, readings, duration, len(probe.sent) - len(samples))


def _register(
    database_url: str, site: str, probe_asset: str, probe_device: str, background: list[str]
) -> None:
    with db_connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=site, name="Latency bench"))
        upsert_asset(
            conn, AssetSpec(id=probe_asset, site_id=site, kind=AssetKind.LEVEE, name="Probe")
        )
        upsert_device(
            conn, DeviceSpec(id=probe_device, site_id=site, asset_id=probe_asset, kind="probe")
        )
        for name in background:
            upsert_asset(conn, AssetSpec(id=name, site_id=site, kind=AssetKind.BRIDGE, name=name))
            upsert_device(conn, DeviceSpec(id=name, site_id=site, asset_id=name, kind="strain"))
        conn.commit()


def _send_probes(
    mqtt: MqttSettings, topic: str, device: str, probe: _Probe, probes: int, interval_s: float
) -> None:
    publisher = build_client(mqtt, f"bench-probe-{uuid.uuid4().hex[:6]}")
    connect(publisher, mqtt)
    publisher.loop_start()
    at = datetime.now(UTC)
    for i in range(probes):
        at = max(at + timedelta(milliseconds=1), datetime.now(UTC))
        value = 2.0 if i % 2 == 0 else 0.0  # crosses the threshold, then clears it
        payload = json.dumps(
            {
                "v": 1,
                "device": device,
                "seq": i,
                "sent_at": at.isoformat(),
                "readings": [{"metric": "probe_m", "ts": at.isoformat(), "value": value}],
            }
        ).encode()
        with probe.lock:
            probe.sent[at.isoformat()] = time.perf_counter()
        publisher.publish(topic, payload, qos=1)
        time.sleep(interval_s)
    publisher.disconnect()
    publisher.loop_stop()


def _watch(mqtt: MqttSettings, topic: str, probe: _Probe) -> paho.Client:
    client = build_client(mqtt, f"bench-watch-{uuid.uuid4().hex[:6]}")
    ready = threading.Event()

    def on_connect(c: paho.Client, *_: object) -> None:
        c.subscribe(topic, qos=1)

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        state = AssetAlerts.model_validate_json(msg.payload)
        if state.change is not None:
            with probe.lock:
                probe.received.setdefault(state.change.at.isoformat(), now)

    client.on_connect = on_connect
    client.on_subscribe = lambda *_: ready.set()
    client.on_message = on_message
    connect(client, mqtt)
    client.loop_start()
    ready.wait(10)
    return client


def _background(
    mqtt: MqttSettings,
    topics: Topics,
    site: str,
    devices: list[str],
    rate: float,
    batch: int,
    stop: threading.Event,
    counter: list[int],
) -> None:
    client = build_client(mqtt, f"bench-load-{uuid.uuid4().hex[:6]}")
    connect(client, mqtt)
    client.loop_start()
    per_second = rate / batch
    seq = dict.fromkeys(devices, 0)
    started = time.monotonic()
    sent = 0
    try:
        while not stop.is_set():
            due = int((time.monotonic() - started) * per_second)
            if sent >= due:
                time.sleep(0.002)
                continue
            device = devices[sent % len(devices)]
            now = datetime.now(UTC)
            # Formatted by hand: pydantic would cost the load generator more than the engine.
            readings = ",".join(
                f'{{"metric":"strain_ue","ts":"{(now + timedelta(microseconds=i)).isoformat()}",'
                f'"value":{i % 100}}}'
                for i in range(batch)
            )
            payload = (
                f'{{"v":1,"device":"{device}","seq":{seq[device]},'
                f'"sent_at":"{now.isoformat()}","readings":[{readings}]}}'
            ).encode()
            seq[device] += 1
            client.publish(topics.readings(site, device), payload, qos=1)
            sent += 1
            counter[0] += batch
    finally:
        client.disconnect()
        client.loop_stop()


__all__ = ["LatencyResult", "run"]
