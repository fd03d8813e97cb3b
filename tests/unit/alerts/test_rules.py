"""Rule files: validation with clear errors, round trips, the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from alerts.evaluator import Evaluator
from alerts.ruleset import (
    CumulativeRule,
    LevelSpec,
    RateOfRiseRule,
    RuleFile,
    ThresholdRule,
    dump_rules,
    load_rules,
    parse_rules,
    time_scaled,
)
from core.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[3] / "alerts" / "rules" / "yamaguchi.yaml"

MINIMAL = """
rules:
  - id: level
    type: threshold
    title: Level
    applies_to: {kinds: [river_station]}
    metric: water_level_m
    levels: [{level: 2, above: 1.0}, {level: 3, above: 2.0}]
"""


def test_the_shipped_example_is_valid_and_binds_every_demo_asset() -> None:
    rules = load_rules(EXAMPLE)
    evaluator = Evaluator(rules, rules.assets)
    assert evaluator.problems == []
    bound_assets = {asset for _, asset in evaluator.bindings}
    assert bound_assets == {a.id for a in rules.assets}
    kinds = {rule.type for rule in rules.rules}
    assert kinds == {
        "river_levels",
        "rate_of_rise",
        "cumulative",
        "silence",
        "threshold",
        "anomaly",
        "finding",
        "composite",
    }


def test_minimal_file_defaults() -> None:
    rules = parse_rules(MINIMAL)
    assert rules.defaults.clear_for_s == 600
    assert rules.clear_for_s(rules.rules[0]) == 600


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ("levels: [{level: 3, above: 1.0}, {level: 2, above: 2.0}]", "distinct and ascending"),
        ("levels: [{level: 2, above: 2.0}, {level: 3, above: 1.0}]", "must not fall"),
        ("levels: [{level: 6, above: 1.0}]", "less than or equal to 5"),
        ("levels: [{level: 2, above: 1.0, clear_margin: -1}]", "greater than or equal to 0"),
        ("levels: [{level: 2, above: {asset: 'Bad Path'}}]", "should match pattern"),
        ("levels: []", "at least 1 item"),
        ("levels: [{level: 2, above: 1.0, below: 0.5}]", "exactly one of 'above' and 'below'"),
        ("levels: [{level: 2}]", "exactly one of 'above' and 'below'"),
        ("levels: [{level: 2, above: 1.0}, {level: 3, below: 0.5}]", "mix 'above' and 'below'"),
        ("levels: [{level: 2, below: 1.0}, {level: 3, below: 2.0}]", "must fall as the level"),
    ],
)
def test_bad_levels_name_the_rule(patch: str, message: str) -> None:
    text = MINIMAL.replace("levels: [{level: 2, above: 1.0}, {level: 3, above: 2.0}]", patch)
    with pytest.raises(ConfigError) as info:
        parse_rules(text, "rules.yaml")
    assert "invalid rules in rules.yaml" in str(info.value)
    assert message in str(info.value)
    assert "rules[level]" in str(info.value)


def test_unknown_type_and_unknown_key_are_refused() -> None:
    with pytest.raises(ConfigError, match="type"):
        parse_rules(MINIMAL.replace("type: threshold", "type: magic"))
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        parse_rules(
            MINIMAL.replace("metric: water_level_m", "metric: water_level_m\n    colour: red")
        )


def test_duplicate_ids_and_dangling_composites_are_refused() -> None:
    twice = MINIMAL + MINIMAL.split("rules:\n", 1)[1]
    with pytest.raises(ConfigError, match="unique; repeated: level"):
        parse_rules(twice)
    composite = (
        MINIMAL
        + """
  - id: both
    type: composite
    title: Both
    applies_to: {assets: [a]}
    all_of: [{rule: level}, {rule: ghost}]
"""
    )
    with pytest.raises(ConfigError, match="unknown rule ghost"):
        parse_rules(composite)


def test_applies_to_needs_a_target() -> None:
    with pytest.raises(ConfigError, match="applies_to needs"):
        parse_rules(MINIMAL.replace("applies_to: {kinds: [river_station]}", "applies_to: {}"))


def test_yaml_and_shape_errors() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_rules("rules: [")
    with pytest.raises(ConfigError, match="mapping"):
        parse_rules("- 1")
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(Path("/nonexistent/rules.yaml"))


def test_time_scaling_for_a_compressed_replay() -> None:
    rules = load_rules(EXAMPLE)
    fast = time_scaled(rules, 100)
    rise = fast.rule("river-rise")
    assert isinstance(rise, RateOfRiseRule)
    assert rise.window_s == 36
    assert rise.levels[0].above == 50  # 0.5 m/h in scenario time is 50 m/h in real time
    rain = fast.rule("rain-1h")
    assert isinstance(rain, CumulativeRule)
    assert rain.window_s == 36
    assert rain.levels[0].above == 30  # sums do not scale
    assert fast.defaults.clear_for_s == 6


# Round trips ----------------------------------------------------------------------------

levels = st.lists(
    st.tuples(
        st.floats(min_value=-100, max_value=100, allow_nan=False),
        st.none() | st.floats(min_value=0, max_value=10, allow_nan=False),
    ),
    min_size=1,
    max_size=4,
)


@st.composite
def rule_files(draw: st.DrawFn) -> RuleFile:
    rules: list[ThresholdRule | CumulativeRule] = []
    for index in range(draw(st.integers(min_value=1, max_value=4))):
        falling = draw(st.booleans())
        raw = sorted(draw(levels), key=lambda pair: pair[0], reverse=falling)
        key = "below" if falling else "above"
        specs = [
            LevelSpec.model_validate({"level": i + 2, key: bound, "clear_margin": margin})
            for i, (bound, margin) in enumerate(raw)
        ]
        common = {
            "id": f"r{index}",
            "title": draw(
                st.text(
                    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")),
                    min_size=1,
                    max_size=20,
                ).filter(str.strip)
            ),
            "applies_to": {"kinds": ["river_station"]},
            "levels": specs,
            "metric": "water_level_m",
            "for_s": draw(st.floats(min_value=0, max_value=3600)),
        }
        if falling or draw(st.booleans()):
            rules.append(ThresholdRule.model_validate({**common, "type": "threshold"}))
        else:
            window = draw(st.floats(min_value=1, max_value=86400))
            rules.append(
                CumulativeRule.model_validate({**common, "type": "cumulative", "window_s": window})
            )
    return RuleFile.model_validate({"rules": rules})


@settings(max_examples=60, deadline=None)
@given(rules=rule_files())
def test_rule_files_round_trip(rules: RuleFile) -> None:
    assert parse_rules(dump_rules(rules)) == rules


def test_the_example_round_trips() -> None:
    rules = load_rules(EXAMPLE)
    assert parse_rules(dump_rules(rules)) == rules


@pytest.mark.parametrize("title", ["flood\x01warning", "line\x85break", "para\u2029graph"])
def test_titles_with_control_characters_are_refused(title: str) -> None:
    """They would break the CAP XML (XML 1.0 forbids most) or change through YAML."""
    rule = {
        "id": "r",
        "type": "threshold",
        "title": title,
        "metric": "water_level_m",
        "applies_to": {"kinds": ["river_station"]},
        "levels": [{"level": 2, "above": 1.0}],
    }
    with pytest.raises(ValidationError, match="title"):
        ThresholdRule.model_validate(rule)


def test_below_levels_do_not_apply_to_sums_or_anomaly_scores() -> None:
    for extra in ("type: cumulative\n    window_s: 3600", "type: anomaly"):
        text = MINIMAL.replace("type: threshold", extra).replace(
            "levels: [{level: 2, above: 1.0}, {level: 3, above: 2.0}]",
            "levels: [{level: 2, below: 1.0}]",
        )
        with pytest.raises(ConfigError, match="use 'above'"):
            parse_rules(text, "rules.yaml")


def test_time_scaling_keeps_a_falling_rate_falling() -> None:
    text = MINIMAL.replace("type: threshold", "type: rate_of_rise\n    window_s: 3600").replace(
        "levels: [{level: 2, above: 1.0}, {level: 3, above: 2.0}]",
        "levels: [{level: 2, below: -0.5}, {level: 3, below: -1.0}]",
    )
    (rule,) = time_scaled(parse_rules(text), 10.0).rules
    assert isinstance(rule, RateOfRiseRule)
    assert [(spec.below, spec.above) for spec in rule.levels] == [(-5.0, None), (-10.0, None)]
