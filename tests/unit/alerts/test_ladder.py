"""The level ladder: hysteresis, minimum durations, stepping down, and its invariants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.ladder import LadderSpec, LadderState, LevelChange, step

T0 = datetime(2026, 7, 1, tzinfo=UTC)
# The upper Fushino station: 氾濫注意 2.2 → 2, 避難判断 2.9 → 3, 氾濫危険 3.4 → 4, bank 4.5 → 5.
RIVER = [(2, 2.2, 0.1), (3, 2.9, 0.1), (4, 3.4, 0.1), (5, 4.5, 0.1)]


def run(
    spec: LadderSpec, values: list[float], every_s: float = 60.0
) -> tuple[list[int], list[LevelChange]]:
    state = LadderState()
    levels, changes = [], []
    for i, value in enumerate(values):
        change = step(spec, state, T0 + timedelta(seconds=i * every_s), value)
        if change is not None:
            changes.append(change)
        levels.append(state.level)
    return levels, changes


def test_rises_straight_to_the_highest_level_reached() -> None:
    levels, changes = run(LadderSpec.build(RIVER), [1.0, 3.0, 3.5])
    assert levels == [0, 3, 4]
    assert [(c.old, c.new) for c in changes] == [(0, 3), (3, 4)]


def test_hysteresis_holds_the_level_inside_the_clear_margin() -> None:
    # Crossing 2.2 then wobbling between 2.15 and 2.25 must not flap.
    levels, changes = run(LadderSpec.build(RIVER), [2.25, 2.15, 2.21, 2.12, 2.18])
    assert levels == [2, 2, 2, 2, 2]
    assert len(changes) == 1


def test_clears_only_below_the_margin() -> None:
    levels, _ = run(LadderSpec.build(RIVER), [2.3, 2.11, 2.09])
    assert levels == [2, 2, 0]


def test_a_falling_river_steps_down_instead_of_vanishing() -> None:
    levels, changes = run(LadderSpec.build(RIVER), [3.6, 3.2, 2.5, 2.0])
    assert levels == [4, 3, 2, 0]
    assert [(c.old, c.new) for c in changes] == [(0, 4), (4, 3), (3, 2), (2, 0)]


def test_a_rise_must_hold_for_its_duration() -> None:
    spec = LadderSpec.build(RIVER, for_s=120)
    # One spike above 2.2 for a single minute is not an alert.
    levels, _ = run(spec, [2.0, 2.4, 2.0, 2.0])
    assert levels == [0, 0, 0, 0]
    levels, changes = run(spec, [2.0, 2.4, 2.4, 2.4, 2.4])
    assert levels == [0, 0, 0, 2, 2]
    assert changes[0].at == T0 + timedelta(minutes=3)


def test_a_rise_goes_only_as_high_as_held_throughout() -> None:
    spec = LadderSpec.build(RIVER, for_s=120)
    # Level 4 for one minute inside a level-2 period: after two minutes, level 2.
    levels, _ = run(spec, [2.4, 3.5, 2.4, 2.4])
    assert levels == [0, 0, 2, 2]


def test_a_fall_must_hold_for_its_duration_and_goes_to_the_highest_level_held() -> None:
    spec = LadderSpec.build(RIVER, clear_for_s=180)
    levels, _ = run(spec, [3.5, 2.5, 3.0, 2.5, 2.5, 2.5, 2.0, 2.0, 2.0, *[2.0] * 4])
    # 3.5 → level 4; below 3.3 from minute 1; 3.0 keeps level 3 in the window; after 3
    # minutes below 3.3 it steps to 3 (the highest held), then to 2, then clears.
    assert levels == [4, 4, 4, 4, 3, 3, 3, 3, 2, 2, 2, 2, 0]


def test_an_interrupted_fall_starts_its_clock_again() -> None:
    spec = LadderSpec.build(RIVER, clear_for_s=120)
    levels, _ = run(spec, [2.5, 2.0, 2.0, 2.3, 2.0, 2.0, 2.0])
    assert levels == [2, 2, 2, 2, 2, 2, 0]


def test_none_says_nothing_and_never_clears() -> None:
    spec = LadderSpec.build(RIVER, clear_for_s=60)
    state = LadderState()
    step(spec, state, T0, 3.0)
    for i in range(1, 10):
        assert step(spec, state, T0 + timedelta(minutes=i), None) is None
    assert state.level == 3


def test_time_never_runs_backwards() -> None:
    spec = LadderSpec.build(RIVER, for_s=60)
    state = LadderState()
    step(spec, state, T0 + timedelta(minutes=5), 2.5)
    # An older observation counts as the latest instant: the rise is not completed early.
    assert step(spec, state, T0, 2.5) is None
    assert state.level == 0


def test_bad_ladders_are_refused() -> None:
    with pytest.raises(ValueError, match="ascending"):
        LadderSpec.build([(3, 1.0, 0.0), (2, 2.0, 0.0)])
    with pytest.raises(ValueError, match="ascending"):
        LadderSpec.build([(0, 1.0, 0.0)])
    with pytest.raises(ValueError, match="clear"):
        LadderSpec.build([(2, 1.0, -0.5)])


# Properties -----------------------------------------------------------------------------

values = st.lists(st.floats(min_value=0.0, max_value=6.0, allow_nan=False), max_size=60)
durations = st.sampled_from([0.0, 60.0, 120.0, 300.0])


@settings(max_examples=150, deadline=None)
@given(values=values, for_s=durations, clear_for_s=durations)
def test_never_falls_below_what_the_value_still_holds(
    values: list[float], for_s: float, clear_for_s: float
) -> None:
    """The level never jumps down past the clear margin: after a fall to L', no level
    between L' and the old level was still held by the value."""
    spec = LadderSpec.build(RIVER, for_s=for_s, clear_for_s=clear_for_s)
    state = LadderState()
    for i, value in enumerate(values):
        old = state.level
        step(spec, state, T0 + timedelta(seconds=60 * i), value)
        if state.level < old:
            held = [s.level for s in spec.steps if s.level <= old and value >= s.clear]
            assert state.level >= max(held, default=0)
            assert value < next(s.clear for s in spec.steps if s.level == old)


@settings(max_examples=150, deadline=None)
@given(values=values, for_s=durations, clear_for_s=durations)
def test_changes_are_consistent(values: list[float], for_s: float, clear_for_s: float) -> None:
    spec = LadderSpec.build(RIVER, for_s=for_s, clear_for_s=clear_for_s)
    state = LadderState()
    for i, value in enumerate(values):
        old = state.level
        change = step(spec, state, T0 + timedelta(seconds=60 * i), value)
        assert state.level in {0, 2, 3, 4, 5}
        if change is None:
            assert state.level == old
        else:
            assert (change.old, change.new) == (old, state.level)
            assert change.old != change.new
            if change.new > change.old:
                # A rise only to a level whose threshold the value reaches now.
                assert value >= next(s.rise for s in spec.steps if s.level == change.new)


@settings(max_examples=100, deadline=None)
@given(values=values)
def test_without_durations_the_level_is_a_function_of_history_only_through_hysteresis(
    values: list[float],
) -> None:
    spec = LadderSpec.build(RIVER)
    state = LadderState()
    for i, value in enumerate(values):
        step(spec, state, T0 + timedelta(seconds=i), value)
        highest_reached = max((s.level for s in spec.steps if value >= s.rise), default=0)
        assert state.level >= highest_reached
