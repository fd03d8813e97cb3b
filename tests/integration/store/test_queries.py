"""The query layer: the level a series is read from, agreement between levels (and with
raw aggregates), the raw tail past the rollups, latest values and threshold crossings.

Each test works in the rolled-back ``db`` transaction: rows are inserted, the rollups are
refreshed in the same transaction, and nothing is left behind.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.errors import StoreError
from core.retention import RetentionSettings
from store.maintenance import refresh_rollups
from store.queries import (
    Resolution,
    Series,
    auto_bucket,
    choose_resolution,
    floor_bucket,
    latest,
    series,
    threshold_crossings,
)
from store.readings import ReadingRow, insert_readings

Conn = psycopg.Connection[tuple[object, ...]]

NOW = datetime.now(UTC).replace(second=0, microsecond=0)
START = NOW.replace(minute=0) - timedelta(hours=4)
DEVICES = ("q-river-1", "q-river-2")
MINUTE, HOUR = timedelta(minutes=1), timedelta(hours=1)


def _load(db: Conn) -> None:
    """Four hours of readings every 15 s from two devices: a rising and falling wave."""
    rows: list[ReadingRow] = []
    for d, device in enumerate(DEVICES):
        for i in range(4 * 3600 // 15):
            ts = START + timedelta(seconds=15 * i + 3)
            value = round(2.0 + math.sin(i / 40 + d) + 0.001 * i, 4)
            rows.append((ts, device, "water_level_m", value, i))
    insert_readings(db, rows)
    assert refresh_rollups(db, RetentionSettings()) is not None


def _water(
    db: Conn,
    start: datetime,
    end: datetime,
    bucket: timedelta,
    resolution: Resolution | None = None,
    devices: tuple[str, ...] = DEVICES,
) -> Series:
    return series(
        db,
        device_ids=devices,
        metric="water_level_m",
        start=start,
        end=end,
        bucket=bucket,
        resolution=resolution,
    )


def _assert_agree(a: Series, b: Series) -> None:
    assert [(p.device_id, p.bucket, p.count) for p in a.points] == [
        (p.device_id, p.bucket, p.count) for p in b.points
    ]
    for x, y in zip(a.points, b.points, strict=True):
        assert (x.min, x.max, x.last) == (y.min, y.max, y.last)
        assert x.avg == pytest.approx(y.avg, rel=1e-12)


@pytest.mark.parametrize(
    ("bucket", "expected"),
    [
        (timedelta(seconds=30), Resolution.RAW),
        (timedelta(seconds=90), Resolution.RAW),
        (MINUTE, Resolution.MINUTE),
        (timedelta(minutes=15), Resolution.MINUTE),
        (HOUR, Resolution.HOUR),
        (timedelta(days=1), Resolution.HOUR),
    ],
)
def test_the_coarsest_level_that_divides_the_bucket_is_chosen(
    bucket: timedelta, expected: Resolution
) -> None:
    assert choose_resolution(NOW - timedelta(days=1), bucket, now=NOW) is expected


def test_fine_buckets_older_than_raw_retention_are_refused() -> None:
    with pytest.raises(StoreError, match="kept 90 days"):
        choose_resolution(NOW - timedelta(days=120), timedelta(seconds=30), now=NOW)


def test_auto_bucket_follows_the_range() -> None:
    assert auto_bucket(NOW - timedelta(hours=1), NOW) == timedelta(seconds=5)
    assert auto_bucket(NOW - timedelta(days=1), NOW) == timedelta(minutes=5)
    assert auto_bucket(NOW - timedelta(days=30), NOW) == timedelta(hours=1)
    assert choose_resolution(NOW - timedelta(days=30), timedelta(hours=1)) is Resolution.HOUR


def test_python_bucket_floor_agrees_with_time_bucket(db: Conn) -> None:
    at = datetime(2026, 11, 28, 13, 47, 31, 250000, tzinfo=UTC)
    for width in (timedelta(seconds=5), MINUTE, timedelta(minutes=15), HOUR, timedelta(days=7)):
        row = db.execute("SELECT time_bucket(%s, %s)", (width, at)).fetchone()
        assert row is not None
        assert row[0] == floor_bucket(at, width)


def test_hourly_series_agrees_across_levels_and_with_raw(db: Conn) -> None:
    _load(db)
    hourly = _water(db, START, NOW, HOUR)
    assert hourly.resolution is Resolution.HOUR
    assert len(hourly.for_device(DEVICES[0])) == 4
    assert sum(p.count for p in hourly.points) == 2 * 4 * 240
    _assert_agree(hourly, _water(db, START, NOW, HOUR, Resolution.MINUTE))
    _assert_agree(hourly, _water(db, START, NOW, HOUR, Resolution.RAW))


def test_minute_series_agrees_with_raw_and_widens_to_whole_buckets(db: Conn) -> None:
    _load(db)
    # A range that starts and ends mid-bucket still returns whole buckets.
    start, end = START + timedelta(minutes=7, seconds=20), START + timedelta(minutes=52)
    one = DEVICES[:1]
    for width in (MINUTE, timedelta(minutes=5)):
        rolled = _water(db, start, end, width, devices=one)
        assert rolled.resolution is Resolution.MINUTE
        assert rolled.start == floor_bucket(start, width)
        assert all(p.count == width // timedelta(seconds=15) for p in rolled.points)
        _assert_agree(rolled, _water(db, start, end, width, Resolution.RAW, one))


def test_rows_past_the_rollups_come_from_raw(db: Conn) -> None:
    _load(db)
    # Readings newer than the last refresh: the rollups do not hold them yet.
    fresh = [(NOW + timedelta(minutes=1, seconds=s), DEVICES[0], "water_level_m", 9.5, 10_000 + s)
             for s in range(0, 60, 10)]  # fmt: skip
    insert_readings(db, fresh)
    end = NOW + HOUR
    hourly = _water(db, START, end, HOUR)
    assert hourly.resolution is Resolution.HOUR
    newest = hourly.for_device(DEVICES[0])[-1]
    assert (newest.last, newest.max) == (9.5, 9.5)
    _assert_agree(hourly, _water(db, START, end, HOUR, Resolution.RAW))


def test_series_refuses_bad_requests(db: Conn) -> None:
    with pytest.raises(StoreError, match="start < end"):
        series(db, device_ids=DEVICES, metric="m", start=NOW, end=NOW)
    with pytest.raises(StoreError, match="cannot be read from 1h"):
        series(db, device_ids=DEVICES, metric="m", start=START, end=NOW,
               bucket=MINUTE, resolution=Resolution.HOUR)  # fmt: skip
    with pytest.raises(StoreError, match="too many"):
        series(db, device_ids=DEVICES, metric="m", start=NOW - timedelta(days=30), end=NOW,
               bucket=timedelta(seconds=1))  # fmt: skip


def test_latest_value_per_device_and_metric(db: Conn) -> None:
    rows: list[ReadingRow] = [
        (NOW - timedelta(minutes=m), device, metric, float(m), m)
        for device in ("l-a", "l-b")
        for metric in ("rain_mm", "water_level_m")
        for m in (30, 5, 12)
    ]
    rows.append((NOW - timedelta(days=3), "l-c", "rain_mm", 1.0, 1))  # silent for days
    insert_readings(db, rows)
    found = latest(db, device_ids=["l-a", "l-b", "l-c"], now=NOW)
    assert [(r.device_id, r.metric, r.value) for r in found] == [
        ("l-a", "rain_mm", 5.0),
        ("l-a", "water_level_m", 5.0),
        ("l-b", "rain_mm", 5.0),
        ("l-b", "water_level_m", 5.0),
    ]
    assert all(r.ts == NOW - timedelta(minutes=5) for r in found)
    only = latest(
        db, device_ids=["l-b", "l-c"], metric="rain_mm", within=timedelta(days=7), now=NOW
    )
    assert [(r.device_id, r.value) for r in only] == [("l-b", 5.0), ("l-c", 1.0)]


def test_threshold_crossings_both_ways_on_several_levels(db: Conn) -> None:
    # 氾濫注意水位 2.0 m and 避難判断水位 3.0 m: up through both, back down through one.
    levels = [1.8, 2.5, 3.2, 2.8, 2.9, 1.5, 2.0]
    t0 = NOW - timedelta(hours=1)
    insert_readings(
        db,
        [(t0 + timedelta(minutes=10 * i), "x-river", "water_level_m", v, i)
         for i, v in enumerate(levels)],
    )  # fmt: skip
    found = threshold_crossings(
        db, device_ids=["x-river"], metric="water_level_m", thresholds=[2.0, 3.0],
        start=t0, end=NOW + MINUTE,
    )  # fmt: skip
    assert [(c.ts - t0, c.threshold, c.direction) for c in found] == [
        (timedelta(minutes=10), 2.0, "up"),
        (timedelta(minutes=20), 3.0, "up"),
        (timedelta(minutes=30), 3.0, "down"),
        (timedelta(minutes=50), 2.0, "down"),
        (timedelta(minutes=60), 2.0, "up"),
    ]
    # A range starting mid-way still sees the crossing at its first reading: the reading
    # before the range is the "previous" one.
    later = threshold_crossings(
        db, device_ids=["x-river"], metric="water_level_m", thresholds=[2.0, 3.0],
        start=t0 + timedelta(minutes=20), end=NOW + MINUTE,
    )  # fmt: skip
    assert (later[0].ts - t0, later[0].before, later[0].after) == (timedelta(minutes=20), 2.5, 3.2)
