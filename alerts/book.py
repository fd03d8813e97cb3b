"""The alert book: the lifecycle applied to the database, with everything a transition owes.

Each transition, whoever causes it (a rule, an escalation, an operator), is written in
the caller's transaction as: the alert row, an ``alert_events`` row (who and when), the
CAP 1.2 message it implies, and one outbox row per webhook target. It returns the MQTT
message to publish once the transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from alerts.cap import CapReference, build_cap, cap_identifier, msg_type_for
from alerts.evaluator import Decision
from alerts.lifecycle import (
    AlertRecord,
    TransitionEvent,
    acknowledge,
    apply_level,
    escalate,
    resolve,
)
from alerts.ruleset import RuleFile
from core.alerting import AlertMessage, AlertState, Transition
from core.errors import MamoriError
from core.registry import AssetSpec
from store import alerts as q

_log = logging.getLogger(__name__)


class AlertNotFoundError(MamoriError):
    """No alert with that id (or it is in a state that refuses the transition)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A committed-to-be transition: the MQTT message and the CAP identifier, if any."""

    message: AlertMessage
    cap_identifier: str | None


def to_record(row: q.AlertRow) -> AlertRecord:
    return AlertRecord(
        rule_id=row.rule_id,
        asset_id=row.asset_id,
        level=row.level,
        state=AlertState(row.state),
        opened_at=row.opened_at,
        updated_at=row.updated_at,
        escalate_from=row.escalate_from or row.updated_at,
        id=row.id,
        value=row.value,
        escalations=row.escalations,
        acknowledged_at=row.acknowledged_at,
        acknowledged_by=row.acknowledged_by,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
    )


class AlertBook:
    def __init__(
        self,
        rules: RuleFile,
        assets: Mapping[str, AssetSpec],
        *,
        emit_cap: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.rules = rules
        self.assets = dict(assets)
        self.emit_cap = emit_cap
        # Notifications are due when written, by our clock: an event's own time comes
        # from a device and may run ahead.
        self._clock = clock

    # Causes ---------------------------------------------------------------------------

    def apply(self, conn: q.Conn, decision: Decision) -> Outcome | None:
        """A rule's level changed on an asset."""
        if not decision.emit:
            return None
        row = q.open_alert(conn, decision.rule_id, decision.asset_id)
        before = to_record(row) if row else None
        after, event = apply_level(
            before,
            decision.rule_id,
            decision.asset_id,
            decision.new,
            decision.at,
            decision.value,
        )
        if after is None or event is None:
            return None
        return self._write(conn, before, after, event)

    def acknowledge(
        self, conn: q.Conn, alert_id: int, by: str, at: datetime, note: str | None = None
    ) -> Outcome:
        before = self._locked(conn, alert_id)
        after, event = acknowledge(before, by, at, note)
        return self._write(conn, before, after, event)

    def resolve(
        self, conn: q.Conn, alert_id: int, by: str, at: datetime, note: str | None = None
    ) -> Outcome:
        before = self._locked(conn, alert_id)
        after, event = resolve(before, by, at, note)
        return self._write(conn, before, after, event)

    def escalate_due(self, conn: q.Conn, now: datetime) -> list[Outcome]:
        outcomes = []
        for row in q.list_alerts(conn, limit=10_000):
            if row.state != AlertState.OPEN.value:
                continue
            try:
                policy = self.rules.escalation(self.rules.rule(row.rule_id))
            except KeyError:
                continue
            if policy is None:
                continue
            locked = q.get_alert(conn, row.id, lock=True)
            if locked is None:
                continue
            before = to_record(locked)
            result = escalate(before, policy, now)
            if result is not None:
                outcomes.append(self._write(conn, before, result[0], result[1]))
        return outcomes

    # Effects --------------------------------------------------------------------------

    def _locked(self, conn: q.Conn, alert_id: int) -> AlertRecord:
        row = q.get_alert(conn, alert_id, lock=True)
        if row is None:
            raise AlertNotFoundError(f"no alert {alert_id}")
        return to_record(row)

    def _write(
        self,
        conn: q.Conn,
        before: AlertRecord | None,
        after: AlertRecord,
        event: TransitionEvent,
    ) -> Outcome:
        asset = self.assets.get(after.asset_id)
        site = asset.site_id if asset else None
        title = self._title(after.rule_id)
        if after.id is None:
            alert_id = q.insert_alert(
                conn,
                rule_id=after.rule_id,
                asset_id=after.asset_id,
                site_id=site,
                level=after.level,
                state=after.state.value,
                title=title,
                value=after.value,
                at=after.opened_at,
            )
        else:
            alert_id = after.id
            q.update_alert(
                conn,
                alert_id,
                level=after.level,
                state=after.state.value,
                value=after.value,
                updated_at=after.updated_at,
                escalate_from=after.escalate_from,
                escalations=after.escalations,
                acknowledged_at=after.acknowledged_at,
                acknowledged_by=after.acknowledged_by,
                resolved_at=after.resolved_at,
                resolved_by=after.resolved_by,
            )
        event_id = q.insert_event(
            conn,
            alert_id,
            q.NewEvent(
                at=event.at,
                actor=event.actor,
                transition=event.transition.value,
                from_state=event.from_state.value if event.from_state else None,
                to_state=event.to_state.value,
                from_level=event.from_level,
                to_level=event.to_level,
                note=event.note,
            ),
        )
        outcome = self._effects(conn, alert_id, event_id, after, event)
        _log.info(
            "alert %s %s: %s on %s level %s (%s)",
            alert_id,
            event.transition.value,
            after.rule_id,
            after.asset_id,
            after.level,
            event.actor,
        )
        return outcome

    def follow_up(self, conn: q.Conn, row: q.AlertEventRow) -> Outcome | None:
        """What a transition owes (its CAP message, its webhooks), for one written by
        someone else (the API writes operators' transitions to the tables directly).
        Idempotent: a CAP message already issued for the event, or a notification already
        queued, is not made again."""
        alert = q.get_alert(conn, row.alert_id)
        if alert is None:
            return None
        after = replace(
            to_record(alert),
            level=row.to_level,
            state=AlertState(row.to_state),
            updated_at=row.at,
        )
        event = TransitionEvent(
            Transition(row.transition),
            row.at,
            row.actor,
            AlertState(row.from_state) if row.from_state else None,
            AlertState(row.to_state),
            row.from_level,
            row.to_level,
            row.note,
        )
        return self._effects(conn, alert.id, row.id, after, event)

    def _effects(
        self,
        conn: q.Conn,
        alert_id: int,
        event_id: int,
        after: AlertRecord,
        event: TransitionEvent,
    ) -> Outcome:
        asset = self.assets.get(after.asset_id)
        identifier = self._cap(conn, alert_id, event_id, after, event, asset)
        message = AlertMessage(
            alert_id=alert_id,
            rule=after.rule_id,
            site=asset.site_id if asset else "unknown",
            asset=after.asset_id,
            level=after.level,
            state=after.state,
            transition=event.transition,
            actor=event.actor,
            title=self._title(after.rule_id),
            title_ja=self._title_ja(after.rule_id),
            at=event.at,
            opened_at=after.opened_at,
            value=after.value,
            cap_identifier=identifier,
        )
        payload = message.model_dump_json()
        for hook in self.rules.webhooks:
            if after.level >= hook.min_level:
                q.enqueue(
                    conn,
                    target=hook.name,
                    idempotency_key=f"alert-{alert_id}-event-{event_id}",
                    alert_id=alert_id,
                    event_id=event_id,
                    payload=payload,
                    at=self._clock(),
                )
        return Outcome(message, identifier)

    def _cap(
        self,
        conn: q.Conn,
        alert_id: int,
        event_id: int,
        after: AlertRecord,
        event: TransitionEvent,
        asset: AssetSpec | None,
    ) -> str | None:
        if not self.emit_cap or asset is None:
            return None
        try:
            rule = self.rules.rule(after.rule_id)
        except KeyError:
            return None
        issued = q.cap_messages(conn, alert_id)
        mine = next((c for c in issued if c.event_id == event_id), None)
        if mine is not None:
            return mine.identifier
        earlier = [c for c in issued if c.event_id < event_id]
        msg_type = msg_type_for(event.transition, bool(earlier))
        if msg_type is None:
            return None
        sender = self.rules.cap.sender
        identifier = cap_identifier(sender, alert_id, event_id)
        cap = build_cap(
            settings=self.rules.cap,
            identifier=identifier,
            msg_type=msg_type,
            sent=event.at,
            rule=rule,
            asset=asset,
            level=after.level,
            transition=event.transition,
            value=after.value,
            references=tuple(CapReference(sender, e.identifier, e.sent) for e in earlier),
        )
        q.insert_cap(conn, identifier, alert_id, event_id, msg_type, event.at, cap.xml)
        return identifier

    def _title(self, rule_id: str) -> str:
        try:
            return self.rules.rule(rule_id).title
        except KeyError:
            return rule_id

    def _title_ja(self, rule_id: str) -> str | None:
        try:
            return self.rules.rule(rule_id).title_ja
        except KeyError:
            return None


__all__ = ["AlertBook", "AlertNotFoundError", "Outcome", "to_record"]
