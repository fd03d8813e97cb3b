"""Partitions made ahead and expired partitions dropped whole (plain PostgreSQL).

These run in the rolled-back ``db`` transaction with a clock set years ahead, so the
days they create and drop never touch the partitions other tests use.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest
from pydantic import ValidationError

from core.retention import MaintenanceSettings, RetentionSettings
from store.maintenance import drop_expired, ensure_partitions
from store.readings import insert_readings

Conn = psycopg.Connection[tuple[object, ...]]

NOW = datetime(2031, 6, 1, 12, 0, tzinfo=UTC)


def _exists(db: Conn, name: str) -> bool:
    row = db.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
    return bool(row and row[0])


def _count(db: Conn, table: str, device: str) -> int:
    row = db.execute(
        f"SELECT count(*) FROM {table} WHERE device_id = %s",
        (device,),
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


def _make_days(db: Conn, first: date, days: int) -> None:
    for d in range(days):
        db.execute("SELECT mamori_ensure_readings_partition(%s)", (first + timedelta(days=d),))


def test_partitions_are_made_ahead(db: Conn) -> None:
    created = ensure_partitions(db, MaintenanceSettings(partitions_ahead_days=3), now=NOW)
    days = [f"readings_p{d:%Y%m%d}" for d in (date(2031, 5, 31) + timedelta(n) for n in range(5))]
    assert [c for c in created if c.startswith("readings_p")] == days
    assert {"readings_1m_p203105", "readings_1m_p203106", "readings_1m_p203107"} <= set(created)
    assert ensure_partitions(db, MaintenanceSettings(partitions_ahead_days=3), now=NOW) == []


def test_rows_parked_in_the_default_partition_get_their_day(db: Conn) -> None:
    parked = datetime(2031, 5, 20, 8, 30, tzinfo=UTC)
    insert_readings(db, [(parked, "parked-dev", "rain_mm", 1.0, 1)])
    assert _count(db, "readings_default", "parked-dev") == 1
    created = ensure_partitions(db, MaintenanceSettings(), now=NOW)
    assert "readings_p20310520" in created
    assert _count(db, "readings_default", "parked-dev") == 0
    assert _count(db, "readings_p20310520", "parked-dev") == 1


def test_expired_raw_partitions_are_dropped_whole(db: Conn) -> None:
    # Raw kept 90 days from 2031-06-01 12:00: days up to 2031-03-02 are wholly expired,
    # 2031-03-03 is partly inside the window and stays.
    _make_days(db, date(2031, 2, 27), 6)
    for d in range(6):
        ts = datetime(2031, 2, 27, 12, tzinfo=UTC) + timedelta(days=d)
        insert_readings(db, [(ts, "exp-dev", "rain_mm", float(d), d)])
    insert_readings(db, [(datetime(2031, 1, 5, tzinfo=UTC), "exp-dev", "rain_mm", 0.0, 99)])
    assert _count(db, "readings_default", "exp-dev") == 1

    result = drop_expired(db, RetentionSettings(raw_days=90), now=NOW)

    assert result is not None
    expected = ["readings_p20310227", "readings_p20310228", "readings_p20310301",
                "readings_p20310302"]  # fmt: skip
    assert [n for n in result.dropped if n in expected] == expected
    assert not any(_exists(db, name) for name in expected)
    assert _exists(db, "readings_p20310303")
    assert _exists(db, "readings_p20310304")
    assert _count(db, "readings", "exp-dev") == 2  # the two kept days, nothing else
    assert _count(db, "readings_default", "exp-dev") == 0
    assert result.deleted_rows >= 1


def test_rollup_levels_expire_on_their_own_clocks(db: Conn) -> None:
    for month in (date(2030, 12, 1), date(2031, 1, 1), date(2031, 2, 1)):
        db.execute("SELECT mamori_ensure_rollup_partition(%s)", (month,))
    for bucket in (datetime(2030, 12, 15, tzinfo=UTC), datetime(2031, 2, 15, tzinfo=UTC)):
        for table in ("readings_1m", "readings_1h"):
            db.execute(
                f"INSERT INTO {table} VALUES (%s, 'roll-dev', 'm', 1, 1, 1, 1, 1)",
                (bucket,),
            )
    # One-minute rollups kept 150 days: before 2031-01-02 is expired, so December goes
    # whole and January (partly inside) stays. One-hour rollups are kept forever.
    retention = RetentionSettings(raw_days=90, rollup_1m_days=150, rollup_1h_days=None)
    result = drop_expired(db, retention, now=NOW)
    assert result is not None
    assert "readings_1m_p203012" in result.dropped
    assert not _exists(db, "readings_1m_p203012")
    assert _exists(db, "readings_1m_p203101")
    assert _count(db, "readings_1m", "roll-dev") == 1
    assert _count(db, "readings_1h", "roll-dev") == 2

    drop_expired(db, RetentionSettings(rollup_1m_days=150, rollup_1h_days=160), now=NOW)
    assert _count(db, "readings_1h", "roll-dev") == 1


@pytest.mark.parametrize(
    "bad",
    [{"raw_days": 100, "rollup_1m_days": 50}, {"rollup_1m_days": None, "rollup_1h_days": 800}],
)
def test_retention_levels_must_nest(bad: dict[str, int | None]) -> None:
    with pytest.raises(ValidationError, match="must be at least"):
        RetentionSettings.model_validate(bad)
