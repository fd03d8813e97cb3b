"""The demo's heavy-rain event, sampled by the demo's own simulated drivers at scenario
time, through the shipped Yamaguchi rules: 警戒レベル rise and fall back."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from alerts.replay import CsvReading, Replay, ReplayTransition
from alerts.ruleset import load_rules, time_scaled
from edge_agent.fleet import yamaguchi_fleet

EXAMPLE = Path(__file__).resolve().parents[3] / "alerts" / "rules" / "yamaguchi.yaml"
T0 = datetime(2026, 7, 1, tzinfo=UTC)


def scenario_readings(speed: float = 1.0, hours: float = 20.0) -> list[CsvReading]:
    """Every device of the demo fleet, each at its own (adaptive) interval; timestamps
    run ``speed`` times faster than scenario time, as in ``mamori demo``."""
    fleet = yamaguchi_fleet(seed=7)
    random.seed(7)
    readings: list[CsvReading] = []
    for device in fleet.devices:
        if device.spec.kind == "accelerometer":
            continue  # 6000 samples per report and nothing to do with rain: not needed here
        asset = device.spec.asset_id
        assert asset is not None
        h = 0.0
        while h < hours:
            at = T0 + timedelta(hours=h / speed)
            for r in device.driver.sample(at, h):
                readings.append(CsvReading(at, asset, r.metric, r.value))
            h += device.driver.interval_s(h) / 3600
    return readings


def river_levels(transitions: list[ReplayTransition], asset: str) -> list[tuple[str, int]]:
    return [
        (t.transition, t.level) for t in transitions if t.rule == "river-level" and t.asset == asset
    ]


def test_heavy_rain_raises_and_lowers_alert_levels() -> None:
    rules = load_rules(EXAMPLE)
    transitions = Replay(rules, tick_s=60).run(scenario_readings(), tail_s=3600)
    for asset in ("fushino-ohdoi", "fushino-kozuka"):
        levels = river_levels(transitions, asset)
        assert levels[0] == ("opened", 2), asset
        peak = max(level for _, level in levels)
        assert peak >= 4, asset
        assert ("lowered", 2) in levels or ("lowered", 3) in levels, asset
        assert levels[-1][0] == "resolved", asset
    rain = [(t.transition, t.level) for t in transitions if t.rule == "rain-1h"]
    assert rain[0] == ("opened", 2)
    assert rain[-1][0] == "resolved"
    assert any(t.rule == "slope-under-rain" for t in transitions)
    # The gauges speed up in the flood and slow down after it: no false silence alarm
    # while they report (the tail after the data ends is silence indeed).
    end = T0 + timedelta(hours=20)
    assert not [t for t in transitions if t.rule == "gauge-silent" and t.time <= end]


def test_the_same_event_compressed_like_the_demo() -> None:
    speed = 18 * 3600 / 120  # mamori demo --duration 120
    rules = time_scaled(load_rules(EXAMPLE), speed)
    transitions = Replay(rules, tick_s=0.5).run(scenario_readings(speed), tail_s=30)
    levels = river_levels(transitions, "fushino-ohdoi")
    assert levels[0] == ("opened", 2)
    assert max(level for _, level in levels) >= 4
    assert levels[-1][0] == "resolved"
