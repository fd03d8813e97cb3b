"""The store against a real PostgreSQL: migrations, time_bucket, the reading writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.errors import MigrationError
from core.registry import AssetKind, AssetSpec, DeviceSpec, SiteSpec
from store.db import Flavour
from store.migrate import Migration, available, current_version, migrate
from store.readings import insert_readings
from store.registry import upsert_asset, upsert_device, upsert_site

Conn = psycopg.Connection[tuple[object, ...]]


def _register(db: Conn, device: str = "dev-a") -> None:
    upsert_site(db, SiteSpec(id="s1", name="Site"))
    upsert_asset(db, AssetSpec(id="a1", site_id="s1", kind=AssetKind.BRIDGE, name="Bridge"))
    upsert_device(db, DeviceSpec(id=device, site_id="s1", asset_id="a1", kind="strain"))


def test_migrate_again_applies_nothing(db: Conn) -> None:
    assert migrate(db) == []
    assert current_version(db) == available(Flavour.PLAIN)[-1].version


def test_both_flavours_ship_the_same_versions() -> None:
    plain = [m.version for m in available(Flavour.PLAIN)]
    timescale = [m.version for m in available(Flavour.TIMESCALE)]
    assert plain == timescale
    assert plain == sorted(set(plain))


def test_edited_migration_is_refused(db: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    shipped = available(Flavour.PLAIN)
    edited = [Migration(m.version, m.name, m.sql + "\n-- edited") for m in shipped]
    monkeypatch.setattr("store.migrate.available", lambda _flavour: edited)
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(db)


@pytest.mark.parametrize("width", ["1 minute", "5 minutes", "1 hour", "6 hours", "1 day", "7 days"])
def test_time_bucket_shim_agrees_with_date_bin(db: Conn, width: str) -> None:
    row = db.execute(
        """SELECT count(*) FILTER (
                      WHERE time_bucket(%(w)s::interval, t)
                         <> date_bin(%(w)s::interval, t, TIMESTAMPTZ '2000-01-03 00:00+00')),
                  count(*)
           FROM generate_series(TIMESTAMPTZ '2026-07-01 00:00+00',
                                TIMESTAMPTZ '2026-07-20 00:00+00',
                                INTERVAL '17 minutes 13 seconds') AS t""",
        {"w": width},
    ).fetchone()
    assert row is not None
    assert row[0] == 0
    assert int(str(row[1])) > 1500


def test_weekly_buckets_start_on_monday_like_timescaledb(db: Conn) -> None:
    row = db.execute(
        "SELECT extract(isodow FROM time_bucket('7 days', TIMESTAMPTZ '2026-11-28 12:00+00'))"
    ).fetchone()
    assert row is not None
    assert int(str(row[0])) == 1


def test_duplicate_readings_are_dropped_not_doubled(db: Conn) -> None:
    _register(db)
    t0 = datetime.now(UTC).replace(microsecond=0)
    rows = [(t0 + timedelta(seconds=i), "dev-a", "strain_ue", float(i), 1) for i in range(10)]
    first = insert_readings(db, rows)
    assert (first.inserted, first.staged) == (10, False)
    late = (t0 + timedelta(seconds=10), "dev-a", "strain_ue", 10.0, 2)
    again = insert_readings(db, [*rows[5:], late])
    assert (again.inserted, again.duplicates, again.staged) == (1, 5, True)
    count = db.execute("SELECT count(*) FROM readings WHERE device_id = 'dev-a'").fetchone()
    assert count is not None
    assert count[0] == 11


def test_rows_for_a_day_without_partition_move_when_it_is_created(db: Conn) -> None:
    _register(db, "dev-b")
    far = datetime(2031, 3, 4, 5, 6, tzinfo=UTC)
    insert_readings(db, [(far, "dev-b", "strain_ue", 1.0, 1)])
    in_default = db.execute(
        "SELECT count(*) FROM readings_default WHERE device_id = 'dev-b'"
    ).fetchone()
    assert in_default is not None
    assert in_default[0] == 1
    created = db.execute("SELECT mamori_ensure_readings_partition(%s)", (far.date(),)).fetchone()
    assert created is not None
    assert created[0] is True
    moved = db.execute(
        "SELECT count(*) FROM readings_p20310304 WHERE device_id = 'dev-b'"
    ).fetchone()
    left = db.execute("SELECT count(*) FROM readings_default WHERE device_id = 'dev-b'").fetchone()
    assert moved is not None
    assert left is not None
    assert (moved[0], left[0]) == (1, 0)


def test_alert_audit_log_is_append_only(db: Conn) -> None:
    _register(db)
    alert = db.execute(
        "INSERT INTO alerts (rule_id, asset_id, level, state, title) "
        "VALUES ('r', 'a1', 2, 'open', 't') RETURNING id"
    ).fetchone()
    assert alert is not None
    db.execute(
        "INSERT INTO alert_events (alert_id, actor, transition, to_state, to_level) "
        "VALUES (%s, 'test', 'open', 'open', 2)",
        (alert[0],),
    )
    with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
        db.execute("UPDATE alert_events SET note = 'rewritten'")
