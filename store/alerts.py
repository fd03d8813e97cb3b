"""Alerts, their audit log, saved rule state, CAP messages and the outbox: typed queries.

Everything runs in the caller's transaction; the alert engine commits a batch of
transitions with the rule state that caused them and the notifications they owe, so a
crash never leaves one without the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from core.registry import AssetKind, AssetSpec
from store.db import translate_errors

Conn = psycopg.Connection[tuple[object, ...]]

_ALERT_COLUMNS = (
    "id, rule_id, asset_id, site_id, level, state, title, value, opened_at, updated_at, "
    "escalate_from, escalations, acknowledged_at, acknowledged_by, resolved_at, resolved_by"
)


@dataclass(frozen=True, slots=True)
class AlertRow:
    id: int
    rule_id: str
    asset_id: str
    site_id: str | None
    level: int
    state: str
    title: str
    value: float | None
    opened_at: datetime
    updated_at: datetime
    escalate_from: datetime | None
    escalations: int
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None


@dataclass(frozen=True, slots=True)
class AlertEventRow:
    id: int
    alert_id: int
    at: datetime
    actor: str
    transition: str
    from_state: str | None
    to_state: str
    from_level: int | None
    to_level: int
    note: str | None


@dataclass(frozen=True, slots=True)
class NewEvent:
    at: datetime
    actor: str
    transition: str
    from_state: str | None
    to_state: str
    from_level: int | None
    to_level: int
    note: str | None = None


# Alerts --------------------------------------------------------------------------------


def open_alert(conn: Conn, rule_id: str, asset_id: str) -> AlertRow | None:
    """The open (not resolved) alert of a rule on an asset, locked for update."""
    with translate_errors("reading an open alert"):
        cur = conn.cursor(row_factory=class_row(AlertRow))
        return cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts "  # noqa: S608  constant column list
            "WHERE rule_id = %s AND asset_id = %s AND state <> 'resolved' FOR UPDATE",
            (rule_id, asset_id),
        ).fetchone()


def get_alert(conn: Conn, alert_id: int, *, lock: bool = False) -> AlertRow | None:
    with translate_errors("reading an alert"):
        cur = conn.cursor(row_factory=class_row(AlertRow))
        sql = f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE id = %s"  # noqa: S608
        return cur.execute(sql + (" FOR UPDATE" if lock else ""), (alert_id,)).fetchone()


def list_alerts(conn: Conn, *, include_resolved: bool = False, limit: int = 100) -> list[AlertRow]:
    with translate_errors("listing alerts"):
        cur = conn.cursor(row_factory=class_row(AlertRow))
        return cur.execute(
            f"SELECT {_ALERT_COLUMNS} FROM alerts "  # noqa: S608
            "WHERE %s OR state <> 'resolved' ORDER BY updated_at DESC, id DESC LIMIT %s",
            (include_resolved, limit),
        ).fetchall()


def insert_alert(
    conn: Conn,
    *,
    rule_id: str,
    asset_id: str,
    site_id: str | None,
    level: int,
    state: str,
    title: str,
    value: float | None,
    at: datetime,
) -> int:
    with translate_errors("opening an alert"):
        row = conn.execute(
            """INSERT INTO alerts (rule_id, asset_id, site_id, level, state, title, value,
                                   detail, opened_at, updated_at, escalate_from)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (rule_id, asset_id, site_id, level, state, title, value, Jsonb({}), at, at, at),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def update_alert(
    conn: Conn,
    alert_id: int,
    *,
    level: int,
    state: str,
    value: float | None,
    updated_at: datetime,
    escalate_from: datetime,
    escalations: int,
    acknowledged_at: datetime | None,
    acknowledged_by: str | None,
    resolved_at: datetime | None,
    resolved_by: str | None,
) -> None:
    with translate_errors("updating an alert"):
        conn.execute(
            """UPDATE alerts SET level = %s, state = %s, value = %s, updated_at = %s,
                   escalate_from = %s, escalations = %s, acknowledged_at = %s,
                   acknowledged_by = %s, resolved_at = %s, resolved_by = %s
               WHERE id = %s""",
            (
                level,
                state,
                value,
                updated_at,
                escalate_from,
                escalations,
                acknowledged_at,
                acknowledged_by,
                resolved_at,
                resolved_by,
                alert_id,
            ),
        )


def insert_event(conn: Conn, alert_id: int, event: NewEvent) -> int:
    """Append to the audit log (the table refuses updates and deletes)."""
    with translate_errors("recording an alert transition"):
        row = conn.execute(
            """INSERT INTO alert_events (alert_id, at, actor, transition, from_state, to_state,
                                         from_level, to_level, note)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
            (
                alert_id,
                event.at,
                event.actor,
                event.transition,
                event.from_state,
                event.to_state,
                event.from_level,
                event.to_level,
                event.note,
            ),
        ).fetchone()
    assert row is not None
    return int(str(row[0]))


def events_after(conn: Conn, after_id: int, limit: int = 1000) -> list[AlertEventRow]:
    """Audit rows with an id above ``after_id``, oldest first."""
    with translate_errors("reading new alert events"):
        cur = conn.cursor(row_factory=class_row(AlertEventRow))
        return cur.execute(
            """SELECT id, alert_id, at, actor, transition, from_state, to_state, from_level,
                      to_level, note
               FROM alert_events WHERE id > %s ORDER BY id LIMIT %s""",
            (after_id, limit),
        ).fetchall()


def last_event_id(conn: Conn) -> int:
    with translate_errors("reading the last alert event"):
        row = conn.execute("SELECT coalesce(max(id), 0) FROM alert_events").fetchone()
    return 0 if row is None else int(str(row[0]))


def alert_events(conn: Conn, alert_id: int | None = None) -> list[AlertEventRow]:
    with translate_errors("reading alert events"):
        cur = conn.cursor(row_factory=class_row(AlertEventRow))
        return cur.execute(
            """SELECT id, alert_id, at, actor, transition, from_state, to_state, from_level,
                      to_level, note
               FROM alert_events WHERE %(id)s::bigint IS NULL OR alert_id = %(id)s
               ORDER BY id""",
            {"id": alert_id},
        ).fetchall()


# Rule state and cursors ----------------------------------------------------------------


def load_rule_states(conn: Conn) -> dict[tuple[str, str], str]:
    """Saved state per (rule, asset), as JSON text for the engine to validate."""
    with translate_errors("loading rule state"):
        rows = conn.execute(
            "SELECT rule_id, asset_id, state::text FROM alert_rule_state"
        ).fetchall()
    return {(str(r), str(a)): str(s) for r, a, s in rows}


def save_rule_states(conn: Conn, states: Sequence[tuple[str, str, str]], at: datetime) -> None:
    """Upsert (rule, asset, JSON text) rows."""
    if not states:
        return
    with translate_errors("saving rule state"):
        conn.cursor().executemany(
            """INSERT INTO alert_rule_state (rule_id, asset_id, state, updated_at)
               VALUES (%s, %s, %s::jsonb, %s)
               ON CONFLICT (rule_id, asset_id)
               DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at""",
            [(rule, asset, state, at) for rule, asset, state in states],
        )


def take_lease(conn: Conn, name: str, holder: str, ttl_s: float) -> str:
    """Take or renew the engine lease ``name`` for ``holder`` when it is free, expired or
    already ``holder``'s; returns who holds it afterwards (the database's clock rules)."""
    with translate_errors("taking the alert engine lease"):
        row = conn.execute(
            """INSERT INTO alert_engine_lease AS l (name, holder, acquired_at, expires_at)
               VALUES (%(name)s, %(holder)s, now(), now() + make_interval(secs => %(ttl)s))
               ON CONFLICT (name) DO UPDATE
                   SET holder = excluded.holder,
                       acquired_at = CASE WHEN l.holder = excluded.holder THEN l.acquired_at
                                          ELSE excluded.acquired_at END,
                       expires_at = excluded.expires_at
                   WHERE l.holder = excluded.holder OR l.expires_at < now()
               RETURNING holder""",
            {"name": name, "holder": holder, "ttl": ttl_s},
        ).fetchone()
        if row is not None:
            return str(row[0])
        current = conn.execute(
            "SELECT holder FROM alert_engine_lease WHERE name = %s", (name,)
        ).fetchone()
    return "" if current is None else str(current[0])


def release_lease(conn: Conn, name: str, holder: str) -> None:
    """Give the lease up (a clean stop): it expires now, so a standby need not wait, and
    the row still says who held it last (the health dashboard shows the engine down)."""
    with translate_errors("releasing the alert engine lease"):
        conn.execute(
            """UPDATE alert_engine_lease SET expires_at = now() - interval '1 millisecond'
               WHERE name = %s AND holder = %s""",
            (name, holder),
        )


def get_cursor(conn: Conn, name: str) -> int | None:
    with translate_errors("reading a cursor"):
        row = conn.execute("SELECT position FROM alert_cursors WHERE name = %s", (name,)).fetchone()
    return None if row is None else int(str(row[0]))


def set_cursor(conn: Conn, name: str, position: int, at: datetime) -> None:
    with translate_errors("saving a cursor"):
        conn.execute(
            """INSERT INTO alert_cursors (name, position, updated_at) VALUES (%s, %s, %s)
               ON CONFLICT (name) DO UPDATE SET position = excluded.position,
                   updated_at = excluded.updated_at""",
            (name, position, at),
        )


# CAP messages --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapRow:
    identifier: str
    alert_id: int
    event_id: int
    msg_type: str
    sent: datetime
    xml: str


def insert_cap(
    conn: Conn,
    identifier: str,
    alert_id: int,
    event_id: int,
    msg_type: str,
    sent: datetime,
    xml: str,
) -> None:
    with translate_errors("storing a CAP message"):
        conn.execute(
            """INSERT INTO alert_cap_messages (identifier, alert_id, event_id, msg_type, sent, xml)
               VALUES (%s, %s, %s, %s, %s, %s)""",
            (identifier, alert_id, event_id, msg_type, sent, xml),
        )


def cap_messages(conn: Conn, alert_id: int) -> list[CapRow]:
    with translate_errors("reading CAP messages"):
        cur = conn.cursor(row_factory=class_row(CapRow))
        return cur.execute(
            """SELECT identifier, alert_id, event_id, msg_type, sent, xml
               FROM alert_cap_messages WHERE alert_id = %s ORDER BY event_id""",
            (alert_id,),
        ).fetchall()


def current_cap_messages(conn: Conn, *, limit: int = 200) -> list[CapRow]:
    """The latest CAP message of each alert, newest first: what an Atom feed lists."""
    with translate_errors("reading current CAP messages"):
        cur = conn.cursor(row_factory=class_row(CapRow))
        return cur.execute(
            """SELECT identifier, alert_id, event_id, msg_type, sent, xml FROM (
                   SELECT DISTINCT ON (alert_id) identifier, alert_id, event_id, msg_type, sent,
                          xml
                   FROM alert_cap_messages ORDER BY alert_id, event_id DESC
               ) AS latest ORDER BY sent DESC LIMIT %s""",
            (limit,),
        ).fetchall()


# Outbox --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    target: str
    idempotency_key: str
    alert_id: int
    event_id: int
    payload: str
    attempts: int


def enqueue(
    conn: Conn,
    *,
    target: str,
    idempotency_key: str,
    alert_id: int,
    event_id: int,
    payload: str,
    at: datetime,
) -> None:
    with translate_errors("queueing a notification"):
        conn.execute(
            """INSERT INTO alert_outbox (target, idempotency_key, alert_id, event_id, payload,
                                         created_at, next_attempt_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (target, idempotency_key) DO NOTHING""",
            (target, idempotency_key, alert_id, event_id, payload, at, at),
        )


def due_notifications(conn: Conn, now: datetime, limit: int = 50) -> list[OutboxRow]:
    """Undelivered notifications whose time has come, locked (other replicas skip them)."""
    with translate_errors("reading the outbox"):
        cur = conn.cursor(row_factory=class_row(OutboxRow))
        return cur.execute(
            """SELECT id, target, idempotency_key, alert_id, event_id, payload, attempts
               FROM alert_outbox
               WHERE delivered_at IS NULL AND failed_at IS NULL AND next_attempt_at <= %s
               ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED""",
            (now, limit),
        ).fetchall()


def mark_delivered(conn: Conn, outbox_id: int, at: datetime) -> None:
    with translate_errors("marking a notification delivered"):
        conn.execute(
            "UPDATE alert_outbox SET delivered_at = %s, attempts = attempts + 1 WHERE id = %s",
            (at, outbox_id),
        )


def mark_attempt_failed(
    conn: Conn, outbox_id: int, *, error: str, next_at: datetime | None, at: datetime
) -> None:
    """Record a failed attempt; ``next_at=None`` gives up on it."""
    with translate_errors("recording a failed notification"):
        conn.execute(
            """UPDATE alert_outbox SET attempts = attempts + 1, last_error = %s,
                   next_attempt_at = COALESCE(%s, next_attempt_at),
                   failed_at = CASE WHEN %s::timestamptz IS NULL THEN %s END
               WHERE id = %s""",
            (error[:500], next_at, next_at, at, outbox_id),
        )


def outbox_counts(conn: Conn) -> dict[str, int]:
    with translate_errors("counting the outbox"):
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE delivered_at IS NOT NULL),
                      count(*) FILTER (WHERE failed_at IS NOT NULL),
                      count(*) FILTER (WHERE delivered_at IS NULL AND failed_at IS NULL)
               FROM alert_outbox"""
        ).fetchone()
    assert row is not None
    return {
        "delivered": int(str(row[0])),
        "failed": int(str(row[1])),
        "pending": int(str(row[2])),
    }


# Registry as the engine needs it ---------------------------------------------------------


def load_assets(conn: Conn) -> list[AssetSpec]:
    with translate_errors("loading assets"):
        rows = conn.execute(
            "SELECT id, site_id, kind, name, name_ja, lat, lon, thresholds FROM assets ORDER BY id"
        ).fetchall()
    assets = []
    for id_, site, kind, name, name_ja, lat, lon, thresholds in rows:
        assets.append(
            AssetSpec(
                id=str(id_),
                site_id=str(site),
                kind=AssetKind(str(kind)),
                name=str(name),
                name_ja=None if name_ja is None else str(name_ja),
                lat=None if lat is None else float(str(lat)),
                lon=None if lon is None else float(str(lon)),
                thresholds=thresholds if isinstance(thresholds, dict) else {},
            )
        )
    return assets


@dataclass(frozen=True, slots=True)
class DeviceRow:
    id: str
    site_id: str
    asset_id: str | None
    expected_interval_s: int | None


def load_devices(conn: Conn) -> list[DeviceRow]:
    with translate_errors("loading devices"):
        cur = conn.cursor(row_factory=class_row(DeviceRow))
        return cur.execute(
            "SELECT id, site_id, asset_id, expected_interval_s FROM devices ORDER BY id"
        ).fetchall()


@dataclass(frozen=True, slots=True)
class FindingRow:
    id: int
    asset_id: str
    damage_type: str
    max_width_mm: float | None
    confidence: float
    created_at: datetime


def new_findings(conn: Conn, after_id: int, limit: int = 1000) -> list[FindingRow]:
    """Detections on photos of an asset with an id above ``after_id``, oldest first."""
    with translate_errors("reading new detections"):
        cur = conn.cursor(row_factory=class_row(FindingRow))
        return cur.execute(
            """SELECT d.id, i.asset_id, d.damage_type,
                      round(d.max_width_mm::numeric, 3)::float8 AS max_width_mm,
                      round(d.confidence::numeric, 4)::float8 AS confidence, d.created_at
               FROM detections d JOIN images i ON i.id = d.image_id
               WHERE d.id > %s AND i.asset_id IS NOT NULL
               ORDER BY d.id LIMIT %s""",
            (after_id, limit),
        ).fetchall()


@dataclass(frozen=True, slots=True)
class ReviewedDetection:
    """A detection on an asset's photos with what its reviews made of it so far: the
    latest decision wins (``reject``, or a confirmation of some kind), and the class is
    the latest one an inspector set (``reclassify``/``add``), else the model's."""

    id: int
    model_damage_type: str
    damage_type: str
    max_width_mm: float | None
    confidence: float
    created_at: datetime
    rejected: bool
    reviewer: str | None


def reviewed_detections(conn: Conn, asset_id: str, since: datetime) -> list[ReviewedDetection]:
    """Detections on the asset's photos created at or after ``since``, oldest first."""
    with translate_errors("reading reviewed detections"):
        cur = conn.cursor(row_factory=class_row(ReviewedDetection))
        return cur.execute(
            """SELECT d.id, d.damage_type AS model_damage_type,
                      coalesce(kind.damage_type, d.damage_type) AS damage_type,
                      round(d.max_width_mm::numeric, 3)::float8 AS max_width_mm,
                      round(d.confidence::numeric, 4)::float8 AS confidence, d.created_at,
                      coalesce(last.action = 'reject', false) AS rejected,
                      last.reviewer
               FROM detections d JOIN images i ON i.id = d.image_id
               LEFT JOIN LATERAL (
                   SELECT r.action, r.reviewer FROM reviews r
                   WHERE r.detection_id = d.id
                     AND r.action IN ('confirm', 'reject', 'reclassify', 'adjust', 'add')
                   ORDER BY r.created_at DESC, r.id DESC LIMIT 1) last ON true
               LEFT JOIN LATERAL (
                   SELECT r.damage_type FROM reviews r
                   WHERE r.detection_id = d.id AND r.action IN ('reclassify', 'add')
                     AND r.damage_type IS NOT NULL
                   ORDER BY r.created_at DESC, r.id DESC LIMIT 1) kind ON true
               WHERE i.asset_id = %s AND d.created_at >= %s
               ORDER BY d.id""",
            (asset_id, since),
        ).fetchall()


def new_box_measurements(conn: Conn, after_seq: int, limit: int = 1000) -> list[FindingRow]:
    """Crack boxes inspectors set and a worker measured (``review_measurements``) after
    ``after_seq``, as findings: the engineer's box, so confidence 1."""
    with translate_errors("reading new box measurements"):
        cur = conn.cursor(row_factory=class_row(FindingRow))
        return cur.execute(
            """SELECT m.seq AS id, i.asset_id,
                      coalesce(r.damage_type, d.damage_type) AS damage_type,
                      round(m.max_width_mm::numeric, 3)::float8 AS max_width_mm,
                      1.0::float8 AS confidence,
                      m.measured_at AS created_at
               FROM review_measurements m
               JOIN reviews r ON r.id = m.review_id
               JOIN images i ON i.id = r.image_id
               LEFT JOIN detections d ON d.id = r.detection_id
               WHERE m.seq > %s AND m.error IS NULL AND i.asset_id IS NOT NULL
               ORDER BY m.seq LIMIT %s""",
            (after_seq, limit),
        ).fetchall()


def last_detection_id(conn: Conn) -> int:
    with translate_errors("reading the last detection"):
        row = conn.execute("SELECT coalesce(max(id), 0) FROM detections").fetchone()
    return 0 if row is None else int(str(row[0]))


# Summaries (the demo's closing table, dashboards) -----------------------------------------


@dataclass(frozen=True, slots=True)
class AlertSummaryRow:
    asset_id: str
    rule_id: str
    alerts: int
    peak_level: int
    open_level: int | None
    transitions: int


def alert_summary(conn: Conn, since: datetime) -> list[AlertSummaryRow]:
    """Per asset and rule since ``since``: how many alerts, the highest 警戒レベル reached
    (escalations included), the level still open (None: all resolved), and how many
    transitions (re-notifications excluded)."""
    with translate_errors("summarising alerts"):
        cur = conn.cursor(row_factory=class_row(AlertSummaryRow))
        return cur.execute(
            """SELECT a.asset_id, a.rule_id, count(DISTINCT a.id)::int AS alerts,
                      max(e.to_level)::int AS peak_level,
                      max(a.level) FILTER (WHERE a.state <> 'resolved')::int AS open_level,
                      count(e.id) FILTER (WHERE e.transition <> 'renotified')::int
                          AS transitions
               FROM alerts a JOIN alert_events e ON e.alert_id = a.id
               WHERE a.opened_at >= %s
               GROUP BY a.asset_id, a.rule_id ORDER BY a.asset_id, a.rule_id""",
            (since,),
        ).fetchall()
