"""The alert book on a real PostgreSQL: one alert per rule and asset, audit, CAP chain."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from alerts.book import AlertBook
from alerts.evaluator import Decision
from alerts.ruleset import parse_rules
from core.alerting import AlertState
from core.errors import StoreError
from store import alerts as q
from store.db import translate_errors
from tests.integration.alerts.helpers import RULES, T0, register_fleet
from tests.unit.alerts.cap_schema import cap_errors

Conn = psycopg.Connection[tuple[object, ...]]


def decision(asset: str, old: int, new: int, minutes: float, value: float = 3.0) -> Decision:
    return Decision("river-level", asset, T0 + timedelta(minutes=minutes), old, new, value, True)


@pytest.fixture
def book(database_url: str, db: Conn) -> tuple[AlertBook, str]:
    fleet = register_fleet(database_url)
    rules = parse_rules(RULES)
    return AlertBook(rules, {a.id: a for a in q.load_assets(db)}), fleet.station


def test_a_level_change_updates_the_one_open_alert(db: Conn, book: tuple[AlertBook, str]) -> None:
    alerts, station = book
    outcomes = [
        alerts.apply(db, decision(station, 0, 2, 0)),
        alerts.apply(db, decision(station, 2, 4, 5)),
        alerts.apply(db, decision(station, 4, 3, 30)),
        alerts.apply(db, decision(station, 3, 0, 60)),
    ]
    ids = {o.message.alert_id for o in outcomes if o}
    assert len(ids) == 1
    (alert_id,) = ids
    row = q.get_alert(db, alert_id)
    assert row is not None
    assert (row.state, row.level, row.resolved_by) == ("resolved", 3, "rule")
    events = q.alert_events(db, alert_id)
    assert [(e.transition, e.from_level, e.to_level) for e in events] == [
        ("opened", None, 2),
        ("raised", 2, 4),
        ("lowered", 4, 3),
        ("resolved", 3, 3),
    ]
    assert [e.at for e in events] == [T0 + timedelta(minutes=m) for m in (0, 5, 30, 60)]
    caps = q.cap_messages(db, alert_id)
    assert [c.msg_type for c in caps] == ["Alert", "Update", "Update", "Cancel"]
    for index, cap in enumerate(caps):
        assert cap_errors(cap.xml) == []
        for earlier in caps[:index]:
            assert earlier.identifier in cap.xml  # references every earlier message
    # A new rise after the resolve is a new alert.
    again = alerts.apply(db, decision(station, 0, 2, 120))
    assert again is not None
    assert again.message.alert_id != alert_id


def test_operator_ack_and_resolve_are_audited(db: Conn, book: tuple[AlertBook, str]) -> None:
    alerts, station = book
    opened = alerts.apply(db, decision(station, 0, 3, 0))
    assert opened is not None
    alert_id = opened.message.alert_id
    acked = alerts.acknowledge(db, alert_id, "tanaka", T0 + timedelta(minutes=2), "watching")
    assert acked.message.state is AlertState.ACKNOWLEDGED
    assert acked.cap_identifier is None  # an acknowledgement is internal
    resolved = alerts.resolve(db, alert_id, "suzuki", T0 + timedelta(minutes=9), "false alarm")
    assert resolved.message.state is AlertState.RESOLVED
    events = q.alert_events(db, alert_id)
    assert [(e.transition, e.actor, e.note) for e in events] == [
        ("opened", "rule", None),
        ("acknowledged", "tanaka", "watching"),
        ("resolved", "suzuki", "false alarm"),
    ]
    assert [c.msg_type for c in q.cap_messages(db, alert_id)] == ["Alert", "Cancel"]


def test_escalation_when_nobody_acknowledges(db: Conn, book: tuple[AlertBook, str]) -> None:
    alerts, station = book
    opened = alerts.apply(db, decision(station, 0, 2, 0))
    assert opened is not None
    assert alerts.escalate_due(db, T0 + timedelta(minutes=9)) == []
    escalated = alerts.escalate_due(db, T0 + timedelta(minutes=10))
    assert [(o.message.transition.value, o.message.level) for o in escalated] == [("escalated", 3)]
    alerts.acknowledge(db, opened.message.alert_id, "tanaka", T0 + timedelta(minutes=11))
    assert alerts.escalate_due(db, T0 + timedelta(hours=5)) == []


def test_the_database_keeps_one_open_alert_per_rule_and_asset(
    db: Conn, book: tuple[AlertBook, str]
) -> None:
    alerts, station = book
    alerts.apply(db, decision(station, 0, 2, 0))
    with pytest.raises(StoreError, match="opening an alert"), db.transaction():
        q.insert_alert(
            db,
            rule_id="river-level",
            asset_id=station,
            site_id=None,
            level=2,
            state="open",
            title="again",
            value=None,
            at=T0,
        )


def test_the_audit_log_is_append_only(db: Conn, book: tuple[AlertBook, str]) -> None:
    alerts, station = book
    alerts.apply(db, decision(station, 0, 2, 0))
    with (
        pytest.raises(StoreError, match="append-only"),
        translate_errors("editing history"),
        db.transaction(),
    ):
        db.execute("UPDATE alert_events SET actor = 'someone else'")


def test_current_cap_messages_for_a_feed(db: Conn, book: tuple[AlertBook, str]) -> None:
    alerts, station = book
    alerts.apply(db, decision(station, 0, 2, 0))
    alerts.apply(db, decision(station, 2, 3, 1))
    current = [c for c in q.current_cap_messages(db) if station in c.xml]
    assert [c.msg_type for c in current] == ["Update"]


def test_summary_for_the_demo(db: Conn, book: tuple[AlertBook, str]) -> None:
    alerts, station = book
    alerts.apply(db, decision(station, 0, 2, 0))
    alerts.apply(db, decision(station, 2, 4, 1))
    alerts.apply(db, decision(station, 4, 3, 2))
    rows = [r for r in q.alert_summary(db, T0) if r.asset_id == station]
    assert [(r.rule_id, r.alerts, r.peak_level, r.open_level, r.transitions) for r in rows] == [
        ("river-level", 1, 4, 3, 3)
    ]
