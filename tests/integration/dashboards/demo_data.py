"""Demo data for the dashboards' SQL: the Yamaguchi fleet, two days of its readings, and
alerts, photos, findings, grades and dead letters, so that every panel has rows to show.

Readings come from the fleet's own drivers (the heavy-rain event compressed into the two
days); bridges also get strain, which no simulated driver reports. The rollups are then
refreshed by the store's own job, as ``mamori db maintain`` would.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg

from core.registry import AssetKind
from core.retention import RetentionSettings
from edge_agent.drivers import BridgeAccelDriver, Driver
from edge_agent.fleet import yamaguchi_fleet
from store.maintenance import refresh_rollups
from store.readings import ReadingRow, insert_readings
from store.registry import upsert_asset, upsert_device, upsert_site

Conn = psycopg.Connection[tuple[object, ...]]

SPAN = timedelta(hours=48)
#: The event's 18 hours are replayed over the two days.
_SCENARIO_H_PER_H = 18 / 48


@dataclass(frozen=True, slots=True)
class Demo:
    site_id: str
    now: datetime
    asset_ids: tuple[str, ...]
    device_ids: tuple[str, ...]
    readings: int

    @property
    def site_ids(self) -> tuple[str, ...]:
        return (self.site_id,)


def _driver(driver: Driver, index: int) -> Driver:
    # The real accelerometer integrates 6000 samples a window; 2 Hz keeps seeding fast
    # and the values the same kind of numbers.
    if isinstance(driver, BridgeAccelDriver):
        return BridgeAccelDriver(rate_hz=2.0, rng=random.Random(index))
    return driver


def _readings(now: datetime) -> list[ReadingRow]:
    fleet = yamaguchi_fleet(seed=7)
    start = now - SPAN
    rows: list[ReadingRow] = []
    for index, device in enumerate(fleet.devices):
        driver = _driver(device.driver, index)
        at, seq = start, 0
        bridge = device.spec.kind == "accelerometer"
        while at <= now:
            scenario_h = (at - start) / timedelta(hours=1) * _SCENARIO_H_PER_H
            for reading in driver.sample(at, scenario_h):
                rows.append((at, device.spec.id, reading.metric, reading.value, seq))
            if bridge:
                # Strain follows the day's temperature cycle.
                hours = (at - start) / timedelta(hours=1)
                strain = 120 + 35 * math.sin(hours / 24 * 2 * math.pi) + index
                rows.append((at, device.spec.id, "strain_ue", round(strain, 1), seq))
            seq += 1
            at += timedelta(seconds=driver.interval_s(scenario_h))
    return rows


def _image(conn: Conn, image_id: str, asset_id: str, status: str, at: datetime) -> None:
    conn.execute(
        """INSERT INTO images (id, asset_id, captured_at, received_at, blob_key, sha256,
                               size_bytes, content_type, width, height, status,
                               status_changed_at)
           VALUES (%s, %s, %s, %s, %s, %s, 1024, 'image/jpeg', 4000, 3000, %s, %s)""",
        (
            image_id,
            asset_id,
            at,
            at,
            f"photos/{image_id}.jpg",
            hashlib.sha256(image_id.encode()).hexdigest(),
            status,
            at,
        ),
    )


def seed(conn: Conn) -> Demo:
    """Write the demo into ``conn``'s transaction (the caller rolls it back)."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    assert isinstance(row[0], datetime)
    now: datetime = row[0]
    fleet = yamaguchi_fleet(seed=7)
    upsert_site(conn, fleet.site)
    for asset in fleet.assets:
        upsert_asset(conn, asset)
    for device in fleet.devices:
        upsert_device(conn, device.spec)
    rows = _readings(now)
    insert_readings(conn, rows)

    devices = [d.spec.id for d in fleet.devices]
    # Liveness: most heard just now, one river gauge silent for two hours (it should
    # report every 10 minutes), one accelerometer offline (its last will arrived).
    conn.execute(
        "UPDATE devices SET state = 'online', last_seen_at = %s WHERE id = ANY(%s)",
        (now - timedelta(seconds=30), devices),
    )
    conn.execute(
        "UPDATE devices SET last_seen_at = %s WHERE id = 'wl-kozuka-1'",
        (now - timedelta(hours=2),),
    )
    conn.execute(
        "UPDATE devices SET state = 'offline', state_changed_at = %s WHERE id = 'br-fushino-acc-2'",
        (now - timedelta(minutes=5),),
    )

    tag = uuid.uuid4().hex[:8]
    for rule, asset_id, level, state, opened in (
        ("river-level", "fushino-ohdoi", 3, "open", now - timedelta(minutes=20)),
        ("slope-rate", "slope-r9-k12", 2, "acknowledged", now - timedelta(minutes=40)),
        ("bridge-vibration", "bridge-fushino", 2, "resolved", now - timedelta(hours=3)),
    ):
        conn.execute(
            """INSERT INTO alerts (rule_id, asset_id, site_id, level, state, title, value,
                                   opened_at, updated_at, acknowledged_by)
               VALUES (%s, %s, %s, %s, %s, %s, 3.1, %s, %s, %s)""",
            (
                f"{rule}-{tag}",
                asset_id,
                fleet.site.id,
                level,
                state,
                f"{asset_id}: 警戒レベル{level}",
                opened,
                opened,
                "duty-officer" if state == "acknowledged" else None,
            ),
        )

    # The active engine and a second engine group whose last instance stopped.
    for name, holder, expires in (
        (f"mamori-alerts-{tag}", "alerts-a", now + timedelta(seconds=20)),
        (f"mamori-alerts-old-{tag}", "alerts-b", now - timedelta(minutes=3)),
    ):
        conn.execute(
            """INSERT INTO alert_engine_lease (name, holder, acquired_at, expires_at)
               VALUES (%s, %s, %s, %s)""",
            (name, holder, now - timedelta(hours=1), expires),
        )

    bridge = next(a.id for a in fleet.assets if a.kind is AssetKind.BRIDGE)
    statuses = ("pending", "pending", "processing", "flagged", "clear", "failed", "done")
    for n, status in enumerate(statuses):
        _image(conn, f"img-{tag}-{n}", bridge, status, now - timedelta(minutes=10 * (n + 1)))
    flagged = f"img-{tag}-3"
    for damage, width in (("crack", 0.32), ("crack", 0.18), ("spalling", None)):
        found = conn.execute(
            """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2, y2,
                                       max_width_mm, model_name, model_version)
               VALUES (%s, %s, 0.8, 10, 10, 200, 40, %s, 'classical', '1') RETURNING id""",
            (flagged, damage, width),
        ).fetchone()
        assert found is not None
    conn.execute(
        """INSERT INTO reviews (image_id, reviewer, action, grade, member, created_at)
           VALUES (%s, 'engineer-sato', 'grade', 'III', 'main girder', %s)""",
        (flagged, now - timedelta(minutes=5)),
    )
    for n, reason in enumerate(("invalid", "invalid", "unknown_device", "out_of_range")):
        conn.execute(
            """INSERT INTO dead_letters (received_at, topic, payload, reason, detail)
               VALUES (%s, 'mamori/yamaguchi/x/readings', '\\x00', %s, 'seeded')""",
            (now - timedelta(minutes=5 * (n + 1)), reason),
        )

    result = refresh_rollups(conn, RetentionSettings(), now=now)
    assert result is not None, "another maintainer held the rollup lock"
    return Demo(
        site_id=fleet.site.id,
        now=now,
        asset_ids=tuple(a.id for a in fleet.assets),
        device_ids=tuple(devices),
        readings=len(rows),
    )
