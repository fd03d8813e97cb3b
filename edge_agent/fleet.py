"""The simulated Yamaguchi fleet: who the devices are and a loop that drives them.

Scenario time runs ``speed`` times faster than real time (the demo replays an 18-hour
event in a minute or two); timestamps are real, so the data lands where dashboards look.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

from core.errors import TransportError
from core.registry import AssetKind, AssetSpec, DeviceSpec, RiverLevels, SiteSpec
from core.settings import MqttSettings
from edge_agent.drivers import (
    BridgeAccelDriver,
    BridgeStrainDriver,
    Driver,
    RainGaugeDriver,
    RiverLevelDriver,
    SlopeDriver,
)
from edge_agent.publisher import DevicePublisher
from edge_agent.scenario import RainEvent, RiverResponse

_log = logging.getLogger(__name__)


@dataclass(slots=True)
class SimulatedDevice:
    spec: DeviceSpec
    driver: Driver
    #: Every n-th message is corrupted on purpose (a broken sensor), to show dead letters.
    fault_every: int | None = None


@dataclass(frozen=True, slots=True)
class Fleet:
    site: SiteSpec
    assets: tuple[AssetSpec, ...]
    devices: tuple[SimulatedDevice, ...]


def yamaguchi_fleet(seed: int = 7, site_id: str = "yamaguchi") -> Fleet:
    """Gauges on the 椹野川 (Fushino) basin, a slope above a prefectural road, a bridge."""
    rng = random.Random(seed)
    event = RainEvent()
    site = SiteSpec(id=site_id, name="Yamaguchi Prefecture", name_ja="山口県", prefecture="山口県")
    upper = RiverLevels(standby_m=1.6, caution_m=2.2, evacuation_m=2.9, danger_m=3.4, bank_m=4.5)
    lower = RiverLevels(standby_m=2.0, caution_m=2.8, evacuation_m=3.5, danger_m=4.1, bank_m=5.2)
    assets = (
        AssetSpec(
            id="fushino-ohdoi",
            site_id=site_id,
            kind=AssetKind.RIVER_STATION,
            name="Fushino River at Ohdoi",
            name_ja="椹野川 大土井",
            lat=34.200,
            lon=131.447,
            thresholds={"river_levels": upper.model_dump()},
        ),
        AssetSpec(
            id="fushino-kozuka",
            site_id=site_id,
            kind=AssetKind.RIVER_STATION,
            name="Fushino River at Kozuka",
            name_ja="椹野川 小郡",
            lat=34.094,
            lon=131.398,
            thresholds={"river_levels": lower.model_dump()},
        ),
        AssetSpec(
            id="rain-nihoh",
            site_id=site_id,
            kind=AssetKind.RAIN_GAUGE,
            name="Nihoh rain gauge",
            name_ja="仁保 雨量観測所",
            lat=34.214,
            lon=131.520,
        ),
        AssetSpec(
            id="slope-r9-k12",
            site_id=site_id,
            kind=AssetKind.SLOPE,
            name="Route 9 cut slope km 12",
            name_ja="国道9号 切土のり面 12km",
            lat=34.245,
            lon=131.505,
            thresholds={"displacement_rate_mm_h": {"caution": 1.0, "danger": 4.0}},
        ),
        AssetSpec(
            id="bridge-fushino",
            site_id=site_id,
            kind=AssetKind.BRIDGE,
            name="Fushino Bridge",
            name_ja="椹野川橋",
            lat=34.170,
            lon=131.460,
            thresholds={"accel_rms_g": {"caution": 0.05, "danger": 0.1}},
        ),
    )
    devices = (
        SimulatedDevice(
            DeviceSpec(
                id="wl-ohdoi-1",
                site_id=site_id,
                asset_id="fushino-ohdoi",
                kind="river_level",
                expected_interval_s=600,
            ),
            RiverLevelDriver(
                event,
                RiverResponse(base_m=0.8, gain_m_per_mm=0.045, lag_h=1.0, recession_h=2.0),
                trigger_m=upper.standby_m,
                rng=random.Random(rng.random()),
            ),
        ),
        SimulatedDevice(
            DeviceSpec(
                id="wl-kozuka-1",
                site_id=site_id,
                asset_id="fushino-kozuka",
                kind="river_level",
                expected_interval_s=600,
            ),
            RiverLevelDriver(
                event,
                RiverResponse(base_m=1.1, gain_m_per_mm=0.05, lag_h=2.5, recession_h=3.0),
                trigger_m=lower.standby_m,
                rng=random.Random(rng.random()),
            ),
        ),
        SimulatedDevice(
            DeviceSpec(
                id="rg-nihoh-1",
                site_id=site_id,
                asset_id="rain-nihoh",
                kind="rain_gauge",
                expected_interval_s=60,
            ),
            RainGaugeDriver(event),
        ),
        SimulatedDevice(
            DeviceSpec(
                id="sl-r9-k12-1",
                site_id=site_id,
                asset_id="slope-r9-k12",
                kind="slope",
                expected_interval_s=300,
            ),
            SlopeDriver(event, rng=random.Random(rng.random())),
        ),
        SimulatedDevice(
            DeviceSpec(
                id="br-fushino-acc-1",
                site_id=site_id,
                asset_id="bridge-fushino",
                kind="accelerometer",
                expected_interval_s=60,
            ),
            BridgeAccelDriver(rng=random.Random(rng.random())),
        ),
        SimulatedDevice(
            DeviceSpec(
                id="br-fushino-acc-2",
                site_id=site_id,
                asset_id="bridge-fushino",
                kind="accelerometer",
                expected_interval_s=60,
            ),
            BridgeAccelDriver(rng=random.Random(rng.random())),
            fault_every=7,
        ),
        SimulatedDevice(
            DeviceSpec(
                id="br-fushino-str-1",
                site_id=site_id,
                asset_id="bridge-fushino",
                kind="strain",
                expected_interval_s=60,
            ),
            BridgeStrainDriver(rng=random.Random(rng.random())),
        ),
    )
    return Fleet(site, assets, devices)


_CORRUPT_PAYLOAD = b'{"v":1,"device":"%s","seq":0,"sent_at":"not-a-time","readings":[]}'


@dataclass(slots=True)
class FleetStats:
    messages_published: int = 0
    readings_published: int = 0
    faults_injected: int = 0
    publish_errors: int = 0


class FleetRunner:
    """Drives every device of a fleet from one thread on a shared scenario clock."""

    def __init__(
        self,
        fleet: Fleet,
        mqtt: MqttSettings,
        *,
        speed: float,
        scenario_start_h: float = 0.0,
        passwords: dict[str, str] | None = None,
    ) -> None:
        self.fleet = fleet
        self.speed = speed
        self.stats = FleetStats()
        self._start_h = scenario_start_h
        self._stop = threading.Event()
        # Each device logs in as itself when the broker wants credentials.
        secrets = passwords or {}
        self._publishers = {
            d.spec.id: DevicePublisher(
                mqtt.model_copy(
                    update={"username": d.spec.id, "password": SecretStr(secrets[d.spec.id])}
                )
                if d.spec.id in secrets
                else mqtt,
                fleet.site.id,
                d.spec.id,
            )
            for d in fleet.devices
        }
        self._thread: threading.Thread | None = None
        self._real_start = 0.0

    def scenario_hours(self) -> float:
        return self._start_h + (time.monotonic() - self._real_start) * self.speed / 3600

    def start(self) -> None:
        for publisher in self._publishers.values():
            publisher.start()
        self._real_start = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)
        for publisher in self._publishers.values():
            publisher.stop()

    def _run(self, sleep: Callable[[float], bool] | None = None) -> None:
        wait = sleep or self._stop.wait
        due = {d.spec.id: 0.0 for d in self.fleet.devices}  # scenario hours
        counts = dict.fromkeys(due, 0)
        while not self._stop.is_set():
            now_h = self.scenario_hours()
            for device in self.fleet.devices:
                if due[device.spec.id] > now_h:
                    continue
                publisher = self._publishers[device.spec.id]
                counts[device.spec.id] += 1
                try:
                    if device.fault_every and counts[device.spec.id] % device.fault_every == 0:
                        publisher.publish_raw(_CORRUPT_PAYLOAD % device.spec.id.encode())
                        self.stats.faults_injected += 1
                    else:
                        readings = device.driver.sample(datetime.now(UTC), now_h)
                        publisher.publish_batch(readings)
                        self.stats.readings_published += len(readings)
                    self.stats.messages_published += 1
                except TransportError as err:
                    self.stats.publish_errors += 1
                    _log.warning("%s", err)
                due[device.spec.id] = now_h + device.driver.interval_s(now_h) / 3600
            next_due = min(due.values())
            wait(max(0.0, min(0.5, (next_due - self.scenario_hours()) * 3600 / self.speed)))
