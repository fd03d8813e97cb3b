"""Sensor drivers behind one protocol. Simulated drivers read the shared scenario clock.

A driver returns the readings for an instant and says how long until it wants to be
asked again, which is how adaptive reporting (危機管理型水位計: rare when calm, every few
minutes above a trigger level) is expressed.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from core.messages import Reading
from edge_agent.scenario import RainEvent, RiverResponse


class Driver(Protocol):
    def sample(self, now: datetime, scenario_h: float) -> list[Reading]:
        """Readings at real time ``now``, which is ``scenario_h`` hours into the event."""

    def interval_s(self, scenario_h: float) -> float:
        """Scenario seconds until the next sample."""


@dataclass(slots=True)
class RiverLevelDriver:
    """Water level with adaptive reporting above a trigger level."""

    event: RainEvent
    river: RiverResponse
    trigger_m: float
    calm_interval_s: float = 600.0
    active_interval_s: float = 120.0
    noise_m: float = 0.005
    rng: random.Random = field(default_factory=random.Random)

    def sample(self, now: datetime, scenario_h: float) -> list[Reading]:
        level = self.river.level(self.event, scenario_h) + self.rng.gauss(0, self.noise_m)
        return [Reading(metric="water_level_m", ts=now, value=round(level, 3))]

    def interval_s(self, scenario_h: float) -> float:
        above = self.river.level(self.event, scenario_h) >= self.trigger_m
        return self.active_interval_s if above else self.calm_interval_s


@dataclass(slots=True)
class RainGaugeDriver:
    """Tipping-bucket gauge: rain fallen since the previous report, in 0.5 mm tips."""

    event: RainEvent
    interval: float = 60.0
    tip_mm: float = 0.5
    _carry_mm: float = 0.0

    def sample(self, now: datetime, scenario_h: float) -> list[Reading]:
        fallen = self.event.rain_rate(scenario_h) * self.interval / 3600 + self._carry_mm
        tips = math.floor(fallen / self.tip_mm)
        self._carry_mm = fallen - tips * self.tip_mm
        return [
            Reading(metric="rainfall_mm", ts=now, value=tips * self.tip_mm),
            Reading(
                metric="rain_rate_mm_h", ts=now, value=round(self.event.rain_rate(scenario_h), 2)
            ),
        ]

    def interval_s(self, scenario_h: float) -> float:
        return self.interval


@dataclass(slots=True)
class SlopeDriver:
    """Inclinometer and extensometer: creep that speeds up with the rain that has fallen."""

    event: RainEvent
    creep_threshold_mm: float = 120.0
    interval: float = 300.0
    rng: random.Random = field(default_factory=random.Random)

    def sample(self, now: datetime, scenario_h: float) -> list[Reading]:
        wet = max(0.0, self.event.cumulative_mm(scenario_h) - self.creep_threshold_mm)
        displacement = 0.05 * wet + self.rng.gauss(0, 0.05)
        tilt = 0.002 * wet + self.rng.gauss(0, 0.002)
        return [
            Reading(metric="displacement_mm", ts=now, value=round(displacement, 3)),
            Reading(metric="tilt_deg", ts=now, value=round(tilt, 4)),
        ]

    def interval_s(self, scenario_h: float) -> float:
        return self.interval


@dataclass(slots=True)
class BridgeStrainDriver:
    """Strain gauge on a girder: a daily thermal swing plus the live load of traffic."""

    interval: float = 60.0
    dead_load_ue: float = 180.0
    thermal_ue: float = 40.0
    rng: random.Random = field(default_factory=random.Random)

    def sample(self, now: datetime, scenario_h: float) -> list[Reading]:
        thermal = self.thermal_ue * math.sin(2 * math.pi * (scenario_h - 9) / 24)
        live = self.rng.expovariate(1 / 15) if self.rng.random() < 0.4 else 0.0
        strain = self.dead_load_ue + thermal + live + self.rng.gauss(0, 1.5)
        return [Reading(metric="strain_ue", ts=now, value=round(strain, 2))]

    def interval_s(self, scenario_h: float) -> float:
        return self.interval


@dataclass(slots=True)
class BridgeAccelDriver:
    """Accelerometer sampled fast (100 Hz), reported per window as RMS and peak."""

    window_s: float = 60.0
    rate_hz: float = 100.0
    traffic_g: float = 0.01
    rng: random.Random = field(default_factory=random.Random)

    def sample(self, now: datetime, scenario_h: float) -> list[Reading]:
        n = int(self.window_s * self.rate_hz)
        samples = [self.rng.gauss(0, self.traffic_g) for _ in range(n)]
        # A heavy vehicle now and then: a short burst.
        if self.rng.random() < 0.3:
            start = self.rng.randrange(n - 50)
            for i in range(start, start + 50):
                samples[i] += 0.08 * math.sin(i / 3)
        rms = math.sqrt(sum(s * s for s in samples) / n)
        peak = max(abs(s) for s in samples)
        return [
            Reading(metric="accel_rms_g", ts=now, value=round(rms, 5)),
            Reading(metric="accel_peak_g", ts=now, value=round(peak, 5)),
        ]

    def interval_s(self, scenario_h: float) -> float:
        return self.window_s
