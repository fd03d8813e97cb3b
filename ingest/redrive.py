"""Re-driving dead letters after a fix (a device registered late, a limit raised).

Each open dead letter is validated again with today's registry and settings, as if it
arrived when it first did. What passes is stored exactly as ingest would have stored it
(the natural key makes a second re-drive harmless) and marked re-driven; what still
fails keeps its place with the new reason, so nothing is lost either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from core.errors import PayloadError
from core.topics import Topics
from ingest.validate import Limits, accept
from store.db import translate_errors
from store.readings import DeviceSeen, insert_readings, set_device_state, touch_devices
from store.registry import device_sites

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True, slots=True)
class RedriveResult:
    examined: int
    stored: int
    still_failing: int
    rows: int


def redrive(
    conn: Conn, topics: Topics, limits: Limits, *, reason: str | None = None, limit: int = 1000
) -> RedriveResult:
    """Re-drive up to ``limit`` open dead letters under ``topics``' prefix (optionally of one
    reason), in one transaction."""
    with translate_errors("re-driving dead letters"), conn.transaction():
        devices = device_sites(conn)
        letters = conn.execute(
            """SELECT id, topic, payload, received_at FROM dead_letters
               WHERE redriven_at IS NULL AND (%(reason)s::text IS NULL OR reason = %(reason)s)
                 AND starts_with(topic, %(root)s)
               ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED""",
            {"reason": reason, "limit": limit, "root": f"{topics.root}/"},
        ).fetchall()
        stored = failing = rows = 0
        for letter_id, topic, payload, received_at in letters:
            assert isinstance(received_at, datetime)
            try:
                assert isinstance(payload, bytes)
                accepted = accept(
                    topics, str(topic), payload, devices=devices, limits=limits, now=received_at
                )
            except PayloadError as err:
                failing += 1
                conn.execute(
                    "UPDATE dead_letters SET redrive_result = %s WHERE id = %s",
                    (f"still {err.reason.value}: {err.detail}"[:1000], letter_id),
                )
                continue
            result = insert_readings(conn, accepted.rows)
            if accepted.status is not None:
                status = accepted.status
                set_device_state(
                    conn, status.device, status.state.value, status.ts, status.firmware
                )
            elif accepted.rows:
                touch_devices(conn, [DeviceSeen(accepted.device, received_at, accepted.seq)])
            rows += result.inserted
            stored += 1
            conn.execute(
                "UPDATE dead_letters SET redriven_at = now(), redrive_result = %s WHERE id = %s",
                (f"stored {result.inserted} rows ({result.duplicates} already present)", letter_id),
            )
    return RedriveResult(len(letters), stored, failing, rows)
