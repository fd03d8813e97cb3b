"""The metrics devices report, with their units and physically plausible ranges.

A value outside its range is almost always a broken sensor or a unit mistake, never a
flood: ingest dead-letters it (reason ``out_of_range``) instead of letting it reach a
dashboard or raise an alert. Unknown metric names are allowed (new sensors arrive before
code changes) but get no range check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricSpec:
    name: str
    unit: str
    minimum: float
    maximum: float
    description: str

    def in_range(self, value: float) -> bool:
        return self.minimum <= value <= self.maximum


KNOWN_METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        # River gauges: metres above the station's datum (量水標零点高).
        MetricSpec("water_level_m", "m", -20.0, 100.0, "river water level above the gauge datum"),
        # Rain gauges report the depth fallen since the previous report (tipping bucket).
        MetricSpec("rainfall_mm", "mm", 0.0, 500.0, "rain fallen since the previous report"),
        MetricSpec("rain_rate_mm_h", "mm/h", 0.0, 500.0, "rain intensity"),
        # Slopes: inclinometers and wire extensometers.
        MetricSpec("tilt_deg", "deg", -90.0, 90.0, "slope inclination change"),
        MetricSpec("displacement_mm", "mm", -10_000.0, 10_000.0, "extensometer displacement"),
        # Bridges: accelerometers summarised per window, strain gauges.
        MetricSpec("accel_rms_g", "g", 0.0, 20.0, "acceleration RMS over the window"),
        MetricSpec("accel_peak_g", "g", 0.0, 50.0, "absolute peak acceleration in the window"),
        MetricSpec("strain_ue", "µε", -50_000.0, 50_000.0, "strain in micro-strain"),
        # Device health.
        MetricSpec("battery_v", "V", 0.0, 60.0, "supply voltage"),
        MetricSpec("temperature_c", "°C", -60.0, 90.0, "air or enclosure temperature"),
    )
}


def metric_spec(name: str) -> MetricSpec | None:
    return KNOWN_METRICS.get(name)
