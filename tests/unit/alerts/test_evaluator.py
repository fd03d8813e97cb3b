"""The evaluator on the demo's rules: every rule type end to end, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.evaluator import BindingSnapshot, Decision, Evaluator
from alerts.ruleset import RuleFile, load_rules, parse_rules

EXAMPLE = Path(__file__).resolve().parents[3] / "alerts" / "rules" / "yamaguchi.yaml"
T0 = datetime(2026, 7, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def rules() -> RuleFile:
    return load_rules(EXAMPLE)


def levels_of(decisions: list[Decision], rule: str) -> list[tuple[int, int]]:
    return [(d.old, d.new) for d in decisions if d.rule_id == rule]


def test_river_levels_map_to_alert_levels_and_step_down() -> None:
    r = rules()
    ev = Evaluator(r, r.assets, {"fushino-ohdoi": 600})
    out: list[Decision] = []
    # Ohdoi: caution 2.2 (Lv2), evacuation 2.9 (Lv3), danger 3.4 (Lv4), bank 4.5 (Lv5).
    rise = [1.0, 2.3, 2.3, 3.0, 3.0, 3.5, 3.5, 4.6, 4.6]
    for i, level in enumerate(rise):
        out += ev.observe("fushino-ohdoi", "water_level_m", at(i), level, "wl-1")
    assert levels_of(out, "river-level") == [(0, 2), (2, 3), (3, 4), (4, 5)]
    out.clear()
    fall = [3.2] * 25 + [2.5] * 25 + [1.5] * 25
    for i, level in enumerate(fall, start=len(rise)):
        out += ev.observe("fushino-ohdoi", "water_level_m", at(i), level, "wl-1")
    assert levels_of(out, "river-level") == [(5, 3), (3, 2), (2, 0)]


def test_a_redelivered_reading_is_ignored() -> None:
    r = rules()
    ev = Evaluator(r, r.assets)
    first = ev.observe("fushino-ohdoi", "water_level_m", at(0), 3.0, "wl-1")
    first += ev.observe("fushino-ohdoi", "water_level_m", at(1), 3.0, "wl-1")
    assert levels_of(first, "river-level") == [(0, 3)]
    again = ev.observe("fushino-ohdoi", "water_level_m", at(1), 3.0, "wl-1")
    assert again == []


def test_a_late_reading_keeps_its_own_time_after_ticks() -> None:
    """A gauge back online after an outage: its backlog arrives after the engine ticked
    past it. Each transition is stamped with its reading's time, as a replay of the same
    readings would stamp it, not with the time of the last tick."""
    r = parse_rules(
        """
assets:
  - {id: g, site_id: s, kind: rain_gauge, name: Gauge}
rules:
  - id: tips
    type: threshold
    title: Tips
    applies_to: {kinds: [rain_gauge]}
    metric: rainfall_mm
    levels: [{level: 2, above: 1.0}]
    clear_for_s: 0
"""
    )
    ev = Evaluator(r, r.assets)
    assert ev.observe("g", "rainfall_mm", at(0), 0.5, "rg") == []
    assert ev.tick(at(30)) == []
    late = ev.observe("g", "rainfall_mm", at(5), 1.5, "rg")
    late += ev.observe("g", "rainfall_mm", at(6), 0.5, "rg")
    assert [(d.at, d.new) for d in late] == [(at(5), 2), (at(6), 0)]


BATTERY = """
assets:
  - {id: g, site_id: s, kind: rain_gauge, name: Gauge, thresholds: {battery: {low_v: 11.8}}}
rules:
  - id: battery
    type: threshold
    title: Gauge battery low
    applies_to: {kinds: [rain_gauge]}
    metric: battery_v
    levels:
      - {level: 1, below: {asset: battery.low_v}}
      - {level: 2, below: 11.5}
    clear_margin: 0.2
    clear_for_s: 0
"""


def test_below_levels_rise_as_the_value_falls_with_hysteresis() -> None:
    r = parse_rules(BATTERY)
    ev = Evaluator(r, r.assets)
    volts = [12.6, 11.7, 11.4, 11.6, 11.75, 11.9, 12.05]
    out = [d for i, v in enumerate(volts) for d in ev.observe("g", "battery_v", at(i), v, "rg")]
    # 11.7 ≤ 11.8: level 1; 11.4 ≤ 11.5: level 2; level 2 holds up to 11.5 + 0.2; level 1
    # holds up to 11.8 + 0.2, so 11.9 keeps it and 12.05 clears.
    assert [(d.old, d.new, d.value) for d in out] == [
        (0, 1, 11.7),
        (1, 2, 11.4),
        (2, 1, 11.75),
        (1, 0, 12.05),
    ]


def test_a_below_binding_resumes_from_its_snapshot() -> None:
    r = parse_rules(BATTERY)
    first = Evaluator(r, r.assets)
    first.observe("g", "battery_v", at(0), 11.4, "rg")
    snapshots = {key: b.snapshot().model_dump_json() for key, b in first.bindings.items()}
    again = Evaluator(r, r.assets)
    for key, raw in snapshots.items():
        again.bindings[key].restore(BindingSnapshot.model_validate_json(raw))
    assert again.observe("g", "battery_v", at(0), 11.4, "rg") == []  # seen already
    (step_down,) = again.observe("g", "battery_v", at(1), 11.75, "rg")
    assert (step_down.old, step_down.new, step_down.value) == (2, 1, 11.75)
    assert again.tick(at(2)) == []


def test_hourly_rain_rises_and_clears_as_the_window_slides() -> None:
    r = rules()
    ev = Evaluator(r, r.assets)
    out: list[Decision] = []
    for m in range(60):
        out += ev.observe("rain-nihoh", "rainfall_mm", at(m), 1.0, "rg")  # 60 mm/h
    assert levels_of(out, "rain-1h") == [(0, 2), (2, 3)]
    out.clear()
    for m in range(60, 200):
        out += ev.observe("rain-nihoh", "rainfall_mm", at(m), 0.0, "rg")
    # Steps down through level 2 on the way out; clear_for_s is 600 s.
    assert levels_of(out, "rain-1h") == [(3, 2), (2, 0)]


def test_rate_of_rise() -> None:
    r = rules()
    ev = Evaluator(r, r.assets)
    out: list[Decision] = []
    level = 1.0
    for m in range(0, 61, 5):  # 0.6 m/h: level 2 once half the window is seen
        out += ev.observe("fushino-kozuka", "water_level_m", at(m), level, "wl")
        level += 0.05
    assert levels_of(out, "river-rise") == [(0, 2)]
    for m in range(65, 126, 5):  # 1.2 m/h
        level += 0.1
        out += ev.observe("fushino-kozuka", "water_level_m", at(m), level, "wl")
    assert levels_of(out, "river-rise") == [(0, 2), (2, 3)]


def test_silence_is_judged_by_the_reporting_mode() -> None:
    r = rules()
    ev = Evaluator(r, r.assets, {"fushino-ohdoi": 600})
    ev.observe("fushino-ohdoi", "water_level_m", at(0), 1.0, "wl")  # calm
    assert levels_of(ev.tick(at(20)), "gauge-silent") == []
    assert levels_of(ev.tick(at(31)), "gauge-silent") == [(0, 2)]
    out = ev.observe("fushino-ohdoi", "water_level_m", at(32), 2.0, "wl")  # back, fast mode
    assert levels_of(out, "gauge-silent") == [(2, 0)]
    assert levels_of(ev.tick(at(38)), "gauge-silent") == []  # 2.0 >= 1.6: every 2 min now
    assert levels_of(ev.tick(at(39)), "gauge-silent") == [(0, 2)]


def test_composite_needs_both_tilt_and_rain() -> None:
    r = rules()
    ev = Evaluator(r, r.assets)
    out: list[Decision] = []
    for m in range(0, 61, 5):
        out += ev.observe("slope-r9-k12", "tilt_deg", at(m), 0.05 * m / 60, "sl")
    assert levels_of(out, "slope-tilt-rate") == [(0, 2)]
    assert not [d for d in out if d.rule_id == "slope-tilt-rate" and d.emit]
    assert levels_of(out, "slope-under-rain") == []
    for m in range(61, 100):
        out += ev.observe("rain-nihoh", "rainfall_mm", at(m), 1.0, "rg")
    assert levels_of(out, "slope-under-rain") == [(0, 3)]


def test_findings_latch_on_wide_cracks_and_rebar_only() -> None:
    r = rules()
    ev = Evaluator(r, r.assets)
    assert ev.finding("bridge-fushino", "crack", 0.2, 0.9, at(0)) == []
    assert ev.finding("bridge-fushino", "crack", 0.3, 0.9, at(0)) == []  # not wider than
    assert ev.finding("bridge-fushino", "crack", 0.35, 0.3, at(0)) == []  # unsure model
    assert levels_of(ev.finding("bridge-fushino", "crack", 0.35, 0.9, at(1)), "bridge-crack") == [
        (0, 3)
    ]
    assert ev.finding("bridge-fushino", "crack", 0.5, 0.9, at(2)) == []  # already latched
    assert levels_of(
        ev.finding("bridge-fushino", "spalling", None, 0.8, at(3)), "bridge-rebar"
    ) == [(0, 3)]
    ev.reset(("bridge-crack", "bridge-fushino"))
    assert levels_of(ev.finding("bridge-fushino", "crack", 0.4, 0.9, at(4)), "bridge-crack") == [
        (0, 3)
    ]


def test_anomaly_on_bridge_vibration() -> None:
    r = rules()
    ev = Evaluator(r, r.assets)
    out: list[Decision] = []
    for m in range(60):
        out += ev.observe("bridge-fushino", "accel_rms_g", at(m), 0.010 + 0.0005 * (m % 5), "acc")
    assert levels_of(out, "bridge-vibration-anomaly") == []
    out += ev.observe("bridge-fushino", "accel_rms_g", at(61), 0.04, "acc")
    assert levels_of(out, "bridge-vibration-anomaly") == [(0, 2)]


def test_bindings_that_cannot_apply_are_reported_not_fatal() -> None:
    r = parse_rules(
        """
assets:
  - {id: a, site_id: s, kind: river_station, name: A}
rules:
  - {id: lv, type: river_levels, title: L, applies_to: {kinds: [river_station]}}
  - {id: quiet, type: silence, title: Q, applies_to: {kinds: [river_station]},
     metric: water_level_m}
"""
    )
    ev = Evaluator(r, r.assets)
    assert ev.bindings == {}
    assert any("river_levels" in p for p in ev.problems)
    assert any("expected_interval_s" in p for p in ev.problems)


# Restart: a snapshot taken anywhere resumes exactly ------------------------------------

series = st.lists(st.floats(min_value=0.0, max_value=5.0, allow_nan=False), min_size=2, max_size=40)


@settings(max_examples=40, deadline=None)
@given(values=series, cut=st.integers(min_value=0, max_value=39))
def test_restart_from_a_snapshot_neither_loses_nor_repeats(values: list[float], cut: int) -> None:
    r = rules()
    cut = min(cut, len(values) - 1)

    def feed(ev: Evaluator, part: list[tuple[int, float]]) -> list[tuple[str, int, int]]:
        out = []
        for i, v in part:
            out += ev.observe("fushino-ohdoi", "water_level_m", at(i), v, "wl")
            out += ev.observe("rain-nihoh", "rainfall_mm", at(i), v * 10, "rg")
            out += ev.tick(at(i + 0.5))
        return [(d.rule_id, d.old, d.new) for d in out]

    indexed = list(enumerate(values))
    straight = feed(Evaluator(r, r.assets, {"fushino-ohdoi": 600}), indexed)

    first = Evaluator(r, r.assets, {"fushino-ohdoi": 600})
    before = feed(first, indexed[:cut])
    saved = {
        key: BindingSnapshot.model_validate_json(b.snapshot().model_dump_json())
        for key, b in first.bindings.items()
    }
    second = Evaluator(r, r.assets, {"fushino-ohdoi": 600})
    for key, snap in saved.items():
        second.bindings[key].restore(snap)
    # The broker redelivers the last unacknowledged batch: it must change nothing.
    replayed = feed(second, indexed[max(0, cut - 1) : cut]) if cut else []
    after = feed(second, indexed[cut:])
    assert replayed == []
    assert before + after == straight
