"""Shared pieces of the alert integration tests: a settable clock, a registered fleet,
and a subscriber that keeps the retained alert messages."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho
import psycopg

from core.alerting import AssetAlerts
from core.mqtt import build_client, connect
from core.registry import AssetKind, AssetSpec, DeviceSpec, RiverLevels, SiteSpec
from core.settings import MqttSettings
from core.topics import Topics
from store.registry import upsert_asset, upsert_device, upsert_site

T0 = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@dataclass(frozen=True)
class Fleet:
    site: str
    station: str
    device: str
    bridge: str


def register_fleet(database_url: str) -> Fleet:
    """A river station and a bridge with unique ids (engine commits outlive a test)."""
    tag = uuid.uuid4().hex[:8]
    fleet = Fleet(f"s-{tag}", f"river-{tag}", f"wl-{tag}", f"bridge-{tag}")
    levels = RiverLevels(standby_m=1.6, caution_m=2.2, evacuation_m=2.9, danger_m=3.4, bank_m=4.5)
    with psycopg.connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=fleet.site, name="Test site"))
        upsert_asset(
            conn,
            AssetSpec(
                id=fleet.station,
                site_id=fleet.site,
                kind=AssetKind.RIVER_STATION,
                name="Test station",
                name_ja="テスト水位観測所",
                lat=34.2,
                lon=131.45,
                thresholds={"river_levels": levels.model_dump()},
            ),
        )
        upsert_asset(
            conn,
            AssetSpec(
                id=fleet.bridge,
                site_id=fleet.site,
                kind=AssetKind.BRIDGE,
                name="Test bridge",
                lat=34.17,
                lon=131.46,
            ),
        )
        upsert_device(
            conn,
            DeviceSpec(
                id=fleet.device,
                site_id=fleet.site,
                asset_id=fleet.station,
                kind="river_level",
                expected_interval_s=600,
            ),
        )
        conn.commit()
    return fleet


RULES = """
defaults:
  clear_for_s: 300
cap:
  sender: alerts@mamori.test.example
rules:
  - id: river-level
    type: river_levels
    title: River water level
    title_ja: 河川水位
    applies_to: {kinds: [river_station]}
    clear_margin: 0.1
    escalation: {after_s: 600, action: raise, max_level: 5}
  - id: crack
    type: finding
    title: Crack wider than 0.3 mm
    applies_to: {kinds: [bridge]}
    damage_types: [crack]
    min_width_mm: 0.3
    level: 3
"""


@dataclass
class AlertWatcher:
    """Keeps the latest retained AssetAlerts per topic."""

    settings: MqttSettings
    latest: dict[str, AssetAlerts] = field(default_factory=dict)
    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _client: paho.Client | None = None

    def start(self) -> None:
        client = build_client(self.settings, f"watch-{uuid.uuid4().hex[:10]}")
        subscribed = threading.Event()

        def on_connect(c: paho.Client, *_: object) -> None:
            c.subscribe(Topics(self.settings.topic_prefix).all_alerts(), qos=1)

        def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
            with self._lock:
                self.latest[msg.topic] = AssetAlerts.model_validate(json.loads(msg.payload))
                self.count += 1

        client.on_connect = on_connect
        client.on_subscribe = lambda *_: subscribed.set()
        client.on_message = on_message
        connect(client, self.settings)
        client.loop_start()
        assert subscribed.wait(10)
        self._client = client

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()


def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    """Wait for something asynchronous to happen (never a speed assertion)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()
