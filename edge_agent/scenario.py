"""A heavy-rain event in Yamaguchi, replayed fast: the input of every simulated sensor.

The shape follows the July 2023 linear rain band (線状降水帯) over the 椹野川 (Fushino)
basin: a few hours of light rain, a burst near 80 mm/h, then a tail. Rivers answer with a
lag through a linear-reservoir model; slopes creep once the soil is wet. The numbers are
plausible, not a record of any real station.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RainEvent:
    peak_mm_h: float = 80.0
    peak_at_h: float = 6.0
    spread_h: float = 1.5
    background_mm_h: float = 2.0
    duration_h: float = 18.0

    def rain_rate(self, hours: float) -> float:
        """Rain intensity (mm/h) at ``hours`` since the event began."""
        if hours < 0 or hours > self.duration_h:
            return 0.0
        burst = self.peak_mm_h * math.exp(-0.5 * ((hours - self.peak_at_h) / self.spread_h) ** 2)
        return self.background_mm_h + burst

    def cumulative_mm(self, hours: float, step_h: float = 0.05) -> float:
        steps = max(0, int(hours / step_h))
        return sum(self.rain_rate(i * step_h) * step_h for i in range(steps))


@dataclass(frozen=True, slots=True)
class RiverResponse:
    """Water level (m) of a station: base flow plus a lagged, smoothed rain response."""

    base_m: float
    gain_m_per_mm: float
    lag_h: float
    recession_h: float

    def level(self, event: RainEvent, hours: float, step_h: float = 0.1) -> float:
        # Linear reservoir: storage fed by lagged rain, emptying with time constant
        # recession_h. Integrated from the event start; cheap for a few thousand steps.
        storage = 0.0
        t = 0.0
        while t < hours:
            inflow = event.rain_rate(t - self.lag_h)
            storage += (inflow - storage / self.recession_h) * step_h
            t += step_h
        return self.base_m + self.gain_m_per_mm * storage
