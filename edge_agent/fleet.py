"""Simulated fleets: who the devices are (a data file) and a loop that drives them.

A fleet file (``edge_agent/fleets/*.yaml``) names the site, its assets with their
thresholds, the devices with their drivers, and the scenario they replay.

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
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from core.errors import ConfigError, TransportError
from core.messages import Ident
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
    scenario: str
    event: RainEvent


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RainSpec(_File):
    peak_mm_h: float = Field(ge=0, le=300)
    peak_at_h: float = Field(ge=0)
    spread_h: float = Field(gt=0)
    background_mm_h: float = Field(ge=0, le=100)
    duration_h: float = Field(gt=0)


class ScenarioSpec(_File):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    rain: RainSpec


class RiverLevelDriverSpec(_File):
    type: Literal["river_level"]
    base_m: float
    gain_m_per_mm: float = Field(gt=0)
    lag_h: float = Field(ge=0)
    recession_h: float = Field(gt=0)
    calm_interval_s: float = Field(default=600.0, gt=0)
    active_interval_s: float = Field(default=120.0, gt=0)


class SimpleDriverSpec(_File):
    type: Literal["rain_gauge", "slope", "bridge_accel", "bridge_strain"]


#: The device kind recorded in the registry for each driver type.
_KIND = {
    "river_level": "river_level",
    "rain_gauge": "rain_gauge",
    "slope": "slope",
    "bridge_accel": "accelerometer",
    "bridge_strain": "strain",
}


class DeviceFileSpec(_File):
    id: Ident
    asset: Ident
    expected_interval_s: int = Field(gt=0)
    driver: Annotated[RiverLevelDriverSpec | SimpleDriverSpec, Field(discriminator="type")]
    fault_every: int | None = Field(default=None, ge=2)


class AssetFileSpec(_File):
    id: Ident
    kind: AssetKind
    name: str
    name_ja: str | None = None
    lat: float | None = None
    lon: float | None = None
    thresholds: dict[str, Any] = Field(default_factory=dict)


class FleetFile(_File):
    """A fleet and the scenario it replays, as written in ``edge_agent/fleets/*.yaml``."""

    scenario: ScenarioSpec
    site: SiteSpec
    assets: list[AssetFileSpec] = Field(min_length=1)
    devices: list[DeviceFileSpec] = Field(min_length=1)


YAMAGUCHI_FLEET: Final = Path(__file__).with_name("fleets") / "yamaguchi-heavy-rain.yaml"


def load_fleet(path: Path, *, seed: int = 7) -> Fleet:
    """Read a fleet file; every problem is a :class:`ConfigError` naming the key."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the fleet file {path}: {exc}") from exc
    try:
        spec = FleetFile.model_validate(raw)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_url=False)
        )
        raise ConfigError(f"invalid fleet file {path}: {details}") from exc
    return _build(spec, seed)


def _build(spec: FleetFile, seed: int) -> Fleet:
    rng = random.Random(seed)
    event = RainEvent(**spec.scenario.rain.model_dump())
    site_id = spec.site.id
    assets = tuple(AssetSpec(site_id=site_id, **a.model_dump()) for a in spec.assets)
    by_id = {a.id: a for a in assets}
    devices = []
    for d in spec.devices:
        asset = by_id.get(d.asset)
        if asset is None:
            raise ConfigError(f"device {d.id}: no asset {d.asset!r} in the fleet file")
        devices.append(
            SimulatedDevice(
                DeviceSpec(
                    id=d.id,
                    site_id=site_id,
                    asset_id=asset.id,
                    kind=_KIND[d.driver.type],
                    expected_interval_s=d.expected_interval_s,
                ),
                _driver(d.driver, event, asset, rng),
                fault_every=d.fault_every,
            )
        )
    return Fleet(spec.site, assets, tuple(devices), spec.scenario.name, event)


def _driver(
    spec: RiverLevelDriverSpec | SimpleDriverSpec,
    event: RainEvent,
    asset: AssetSpec,
    rng: random.Random,
) -> Driver:
    if isinstance(spec, RiverLevelDriverSpec):
        levels = asset.thresholds.get("river_levels")
        if not isinstance(levels, dict):
            raise ConfigError(
                f"asset {asset.id}: a river_level driver needs thresholds.river_levels"
            )
        river = RiverResponse(spec.base_m, spec.gain_m_per_mm, spec.lag_h, spec.recession_h)
        return RiverLevelDriver(
            event,
            river,
            trigger_m=RiverLevels.model_validate(levels).standby_m,
            calm_interval_s=spec.calm_interval_s,
            active_interval_s=spec.active_interval_s,
            rng=random.Random(rng.random()),
        )
    match spec.type:
        case "rain_gauge":
            return RainGaugeDriver(event)
        case "slope":
            return SlopeDriver(event, rng=random.Random(rng.random()))
        case "bridge_accel":
            return BridgeAccelDriver(rng=random.Random(rng.random()))
        case "bridge_strain":
            return BridgeStrainDriver(rng=random.Random(rng.random()))


def yamaguchi_fleet(seed: int = 7) -> Fleet:
    """The demo's fleet: ``edge_agent/fleets/yamaguchi-heavy-rain.yaml``."""
    return load_fleet(YAMAGUCHI_FLEET, seed=seed)


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
