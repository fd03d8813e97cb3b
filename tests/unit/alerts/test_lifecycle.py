"""The alert lifecycle: one alert per rule and asset, transitions, escalation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from alerts.lifecycle import (
    AlertRecord,
    LifecycleError,
    acknowledge,
    apply_level,
    escalate,
    resolve,
)
from alerts.ruleset import Escalation
from core.alerting import AlertState, Transition

T0 = datetime(2026, 7, 1, tzinfo=UTC)


def opened(level: int = 2) -> AlertRecord:
    record, event = apply_level(None, "r", "a", level, T0, 2.5)
    assert record is not None
    assert event is not None
    assert event.transition is Transition.OPENED
    return record


def test_open_raise_lower_resolve() -> None:
    record = opened()
    assert record.state is AlertState.OPEN
    raised, event = apply_level(record, "r", "a", 4, T0 + timedelta(minutes=1))
    assert raised is not None
    assert event is not None
    assert (event.transition, event.from_level, event.to_level) == (Transition.RAISED, 2, 4)
    lowered, event = apply_level(raised, "r", "a", 3, T0 + timedelta(minutes=2))
    assert lowered is not None
    assert event is not None
    assert event.transition is Transition.LOWERED
    assert lowered.level == 3
    resolved, event = apply_level(lowered, "r", "a", 0, T0 + timedelta(minutes=3))
    assert resolved is not None
    assert event is not None
    assert event.transition is Transition.RESOLVED
    assert resolved.state is AlertState.RESOLVED
    assert resolved.level == 3  # a resolved alert keeps its last level
    assert resolved.resolved_by == "rule"


def test_same_level_records_nothing_and_zero_opens_nothing() -> None:
    record = opened()
    assert apply_level(record, "r", "a", 2, T0) == (record, None)
    assert apply_level(None, "r", "a", 0, T0) == (None, None)


def test_after_resolve_a_new_alert_opens() -> None:
    record = opened()
    resolved, _ = resolve(record, "operator", T0)
    again, event = apply_level(resolved, "r", "a", 2, T0 + timedelta(hours=1))
    assert again is not None
    assert event is not None
    assert event.transition is Transition.OPENED
    assert again.id is None


def test_acknowledge_then_a_raise_reopens() -> None:
    acked, event = acknowledge(opened(), "tanaka", T0 + timedelta(minutes=1), "on it")
    assert acked.state is AlertState.ACKNOWLEDGED
    assert (event.actor, event.note) == ("tanaka", "on it")
    lowered, _ = apply_level(acked, "r", "a", 1, T0 + timedelta(minutes=2))
    assert lowered is not None
    assert lowered.state is AlertState.ACKNOWLEDGED
    raised, _ = apply_level(acked, "r", "a", 3, T0 + timedelta(minutes=2))
    assert raised is not None
    assert raised.state is AlertState.OPEN


def test_invalid_operator_transitions() -> None:
    acked, _ = acknowledge(opened(), "tanaka", T0)
    with pytest.raises(LifecycleError, match="only open"):
        acknowledge(acked, "suzuki", T0)
    resolved, _ = resolve(acked, "tanaka", T0)
    with pytest.raises(LifecycleError, match="already resolved"):
        resolve(resolved, "tanaka", T0)


def test_escalation_raises_when_nobody_acknowledges() -> None:
    policy = Escalation(after_s=600, action="raise", max_level=4)
    record = opened(3)
    assert escalate(record, policy, T0 + timedelta(minutes=9)) is None
    result = escalate(record, policy, T0 + timedelta(minutes=10))
    assert result is not None
    raised, event = result
    assert (event.transition, raised.level, event.actor) == (Transition.ESCALATED, 4, "escalation")
    # At the maximum level it notifies again instead.
    result = escalate(raised, policy, T0 + timedelta(minutes=20))
    assert result is not None
    assert result[1].transition is Transition.RENOTIFIED
    assert result[0].level == 4


def test_escalation_stops_once_acknowledged_and_can_be_one_shot() -> None:
    policy = Escalation(after_s=60, action="renotify", repeat=False)
    record = opened()
    acked, _ = acknowledge(record, "tanaka", T0)
    assert escalate(acked, policy, T0 + timedelta(hours=1)) is None
    result = escalate(record, policy, T0 + timedelta(minutes=1))
    assert result is not None
    assert escalate(result[0], policy, T0 + timedelta(hours=1)) is None


def test_a_raise_restarts_the_escalation_clock() -> None:
    policy = Escalation(after_s=600, action="renotify")
    record = opened()
    raised, _ = apply_level(record, "r", "a", 3, T0 + timedelta(minutes=8))
    assert raised is not None
    assert escalate(raised, policy, T0 + timedelta(minutes=12)) is None
    assert escalate(raised, policy, T0 + timedelta(minutes=18)) is not None
