"""Dead letters re-driven after a fix are stored once; the rest keep their place."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from core.messages import Reading, ReadingBatch, encode
from core.registry import DeviceSpec, SiteSpec
from core.topics import Topics
from ingest.redrive import redrive
from ingest.validate import Limits
from store.readings import DeadLetter, insert_dead_letters
from store.registry import upsert_device, upsert_site

Conn = psycopg.Connection[tuple[object, ...]]
LIMITS = Limits(100_000, timedelta(minutes=5), timedelta(days=30))


def test_late_registered_device_is_redriven_once(db: Conn) -> None:
    topics = Topics(f"rd{uuid.uuid4().hex[:8]}")
    now = datetime.now(UTC).replace(microsecond=0)
    batch = ReadingBatch(
        device="late-dev",
        seq=0,
        sent_at=now,
        readings=[
            Reading(metric="tilt_deg", ts=now - timedelta(minutes=i), value=0.1) for i in range(3)
        ],
    )
    insert_dead_letters(
        db,
        [
            DeadLetter(
                topics.readings("rd-site", "late-dev"),
                encode(batch),
                "unknown_device",
                "not registered",
                now,
            ),
            DeadLetter(
                topics.readings("rd-site", "late-dev"), b"garbage", "undecodable", "bad", now
            ),
        ],
    )
    upsert_site(db, SiteSpec(id="rd-site", name="S"))
    upsert_device(db, DeviceSpec(id="late-dev", site_id="rd-site", kind="slope"))

    first = redrive(db, topics, LIMITS)
    assert (first.examined, first.stored, first.still_failing, first.rows) == (2, 1, 1, 3)
    again = redrive(db, topics, LIMITS)
    assert (again.examined, again.stored, again.still_failing) == (1, 0, 1)
    rows = db.execute("SELECT count(*) FROM readings WHERE device_id = 'late-dev'").fetchone()
    garbage = db.execute(
        "SELECT redriven_at IS NULL, redrive_result FROM dead_letters "
        "WHERE payload = 'garbage'::bytea"
    ).fetchone()
    assert rows == (3,)
    assert garbage is not None
    assert garbage[0] is True
    assert str(garbage[1]).startswith("still undecodable")
