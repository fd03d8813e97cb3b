"""The alert lifecycle, pure: one alert per rule and asset, and every transition.

::

               level > 0                     level rises (re-opens)
    (none) ─────────────▶ OPEN ◀─────────────────────────────┐
                           │  ▲ │ level falls (stays OPEN)     │
              operator ack │  │ └ escalation: raise / renotify │
                           ▼  │                               │
                      ACKNOWLEDGED ───────────────────────────┘
                           │          level falls (stays ACKNOWLEDGED)
     clear held long enough│ (rule) or operator resolves (either state)
                           ▼
                        RESOLVED  (final; the next rise opens a new alert)

A raise re-opens an acknowledged alert: a more dangerous situation needs a fresh
acknowledgement. Escalation counts from when the alert was opened, raised or last
escalated, and only while nobody has acknowledged it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from alerts.ruleset import Escalation
from core.alerting import AlertState, Transition
from core.errors import MamoriError

RULE_ACTOR = "rule"
ESCALATION_ACTOR = "escalation"


class LifecycleError(MamoriError):
    """The transition asked for does not exist from the alert's state."""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    rule_id: str
    asset_id: str
    level: int
    state: AlertState
    opened_at: datetime
    updated_at: datetime
    escalate_from: datetime
    id: int | None = None
    value: float | None = None
    escalations: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionEvent:
    transition: Transition
    at: datetime
    actor: str
    from_state: AlertState | None
    to_state: AlertState
    from_level: int | None
    to_level: int
    note: str | None = None


def _event(
    before: AlertRecord | None,
    after: AlertRecord,
    transition: Transition,
    at: datetime,
    actor: str,
    note: str | None = None,
) -> TransitionEvent:
    return TransitionEvent(
        transition,
        at,
        actor,
        before.state if before else None,
        after.state,
        before.level if before else None,
        after.level,
        note,
    )


def apply_level(
    record: AlertRecord | None,
    rule_id: str,
    asset_id: str,
    level: int,
    at: datetime,
    value: float | None = None,
) -> tuple[AlertRecord | None, TransitionEvent | None]:
    """The rule's level became ``level`` (0: cleared). Returns the alert after, and what
    happened (``None``: nothing to record)."""
    if record is not None and record.state is AlertState.RESOLVED:
        record = None
    if record is None:
        if level <= 0:
            return None, None
        opened = AlertRecord(rule_id, asset_id, level, AlertState.OPEN, at, at, at, value=value)
        return opened, _event(None, opened, Transition.OPENED, at, RULE_ACTOR)
    if level <= 0:
        resolved = replace(
            record,
            state=AlertState.RESOLVED,
            updated_at=at,
            resolved_at=at,
            resolved_by=RULE_ACTOR,
            value=value,
        )
        return resolved, _event(record, resolved, Transition.RESOLVED, at, RULE_ACTOR, "cleared")
    if level > record.level:
        raised = replace(
            record,
            level=level,
            state=AlertState.OPEN,
            updated_at=at,
            escalate_from=at,
            value=value,
        )
        return raised, _event(record, raised, Transition.RAISED, at, RULE_ACTOR)
    if level < record.level:
        lowered = replace(record, level=level, updated_at=at, value=value)
        return lowered, _event(record, lowered, Transition.LOWERED, at, RULE_ACTOR)
    return record, None


def acknowledge(
    record: AlertRecord, by: str, at: datetime, note: str | None = None
) -> tuple[AlertRecord, TransitionEvent]:
    if record.state is not AlertState.OPEN:
        raise LifecycleError(f"alert {record.id} is {record.state.value}; only open alerts ack")
    acked = replace(
        record,
        state=AlertState.ACKNOWLEDGED,
        updated_at=at,
        acknowledged_at=at,
        acknowledged_by=by,
    )
    return acked, _event(record, acked, Transition.ACKNOWLEDGED, at, by, note)


def resolve(
    record: AlertRecord, by: str, at: datetime, note: str | None = None
) -> tuple[AlertRecord, TransitionEvent]:
    if record.state is AlertState.RESOLVED:
        raise LifecycleError(f"alert {record.id} is already resolved")
    resolved = replace(
        record, state=AlertState.RESOLVED, updated_at=at, resolved_at=at, resolved_by=by
    )
    return resolved, _event(record, resolved, Transition.RESOLVED, at, by, note)


def escalate(
    record: AlertRecord, policy: Escalation, now: datetime
) -> tuple[AlertRecord, TransitionEvent] | None:
    """Raise the level or notify again when nobody acknowledged in ``policy.after_s``."""
    if record.state is not AlertState.OPEN:
        return None
    if not policy.repeat and record.escalations > 0:
        return None
    if now - record.escalate_from < timedelta(seconds=policy.after_s):
        return None
    note = f"not acknowledged in {policy.after_s:g}s"
    if policy.action == "raise" and record.level < policy.max_level:
        raised = replace(
            record,
            level=record.level + 1,
            updated_at=now,
            escalate_from=now,
            escalations=record.escalations + 1,
        )
        return raised, _event(record, raised, Transition.ESCALATED, now, ESCALATION_ACTOR, note)
    again = replace(record, escalate_from=now, escalations=record.escalations + 1)
    return again, _event(record, again, Transition.RENOTIFIED, now, ESCALATION_ACTOR, note)


__all__ = [
    "ESCALATION_ACTOR",
    "RULE_ACTOR",
    "AlertRecord",
    "LifecycleError",
    "TransitionEvent",
    "acknowledge",
    "apply_level",
    "escalate",
    "resolve",
]
