"""readings_1m and readings_1h on plain PostgreSQL: correct with late, duplicate and
out-of-order data, idempotent, and never missing a row committed during a refresh.

Writes are committed (as ingest does) through their own connection; the refresh runs in
a second one and commits, exactly as ``mamori db maintain`` would. Each test uses device
ids of its own. ``overlap=timedelta(0)`` shows the watermark alone is exact.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core.retention import RetentionSettings
from store.maintenance import RollupResult, refresh_rollups
from store.readings import ReadingRow, insert_readings

Conn = psycopg.Connection[tuple[object, ...]]
Row = tuple[object, ...]

RETENTION = RetentionSettings()
EXACT = timedelta(0)
#: A whole hour, a few hours back, so every bucket the tests touch is complete and old.
T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)


def _refresh(database_url: str) -> RollupResult:
    with psycopg.connect(database_url) as conn:
        result = refresh_rollups(conn, RETENTION, overlap=EXACT)
        conn.commit()
    assert result is not None
    return result


def _write(conn: Conn, rows: list[ReadingRow]) -> int:
    with conn.transaction():
        return insert_readings(conn, rows).inserted


def _rollup(conn: Conn, table: str, prefix: str) -> list[Row]:
    query = {
        "readings_1m": "SELECT bucket, device_id, metric, min, max, avg, last, count "
        "FROM readings_1m WHERE device_id LIKE %s ORDER BY 2, 3, 1",
        "readings_1h": "SELECT bucket, device_id, metric, min, max, avg, last, count "
        "FROM readings_1h WHERE device_id LIKE %s ORDER BY 2, 3, 1",
    }[table]
    return [tuple(r) for r in conn.execute(query, (prefix + "%",)).fetchall()]


def _from_raw(conn: Conn, width: str, prefix: str) -> list[Row]:
    """What a rollup must hold: the aggregates computed straight from raw rows."""
    rows = conn.execute(
        """SELECT time_bucket(%s::interval, ts) AS b, device_id, metric,
                  min(value), max(value), avg(value),
                  (array_agg(value ORDER BY ts DESC))[1], count(*)
           FROM readings WHERE device_id LIKE %s
           GROUP BY b, device_id, metric ORDER BY 2, 3, 1""",
        (width, prefix + "%"),
    ).fetchall()
    return [tuple(r) for r in rows]


def _assert_same(got: list[Row], want: list[Row], what: str) -> None:
    """Equal, except that averages may differ in the last bits: a float sum depends on
    the order rows are added in, which the planner is free to choose."""
    assert len(got) == len(want), what
    for g, w in zip(got, want, strict=True):
        assert g[:5] == w[:5], what
        assert g[5] == pytest.approx(w[5], rel=1e-12), what
        assert g[6:] == w[6:], what


def _assert_rollups_match_raw(conn: Conn, prefix: str) -> None:
    for table, width in (("readings_1m", "1 minute"), ("readings_1h", "1 hour")):
        _assert_same(_rollup(conn, table, prefix), _from_raw(conn, width, prefix), table)


def _both(conn: Conn, prefix: str) -> list[Row]:
    return _rollup(conn, "readings_1m", prefix) + _rollup(conn, "readings_1h", prefix)


def _rows(prefix: str, devices: int, minutes: int, every_s: int = 20) -> list[ReadingRow]:
    rng = random.Random(7)
    rows: list[ReadingRow] = []
    for d in range(devices):
        for i in range(minutes * 60 // every_s):
            ts = T0 + timedelta(seconds=i * every_s)
            for metric in ("water_level_m", "rain_mm"):
                rows.append((ts, f"{prefix}d{d}", metric, round(rng.uniform(0, 10), 3), i))
    return rows


def test_out_of_order_batches_roll_up_exactly(
    committed: Conn, database_url: str, prefix: str
) -> None:
    rows = _rows(prefix, devices=3, minutes=150)
    random.Random(1).shuffle(rows)
    for start in range(0, len(rows), 500):
        _write(committed, rows[start : start + 500])
    result = _refresh(database_url)
    assert result.buckets_1m >= 3 * 2 * 150
    assert result.buckets_1h >= 3 * 2 * 3
    _assert_rollups_match_raw(committed, prefix)


def test_late_rows_change_min_max_avg_and_last(
    committed: Conn, database_url: str, prefix: str
) -> None:
    device = f"{prefix}d0"
    on_time = [(T0 + timedelta(seconds=s), device, "tilt_deg", 1.0, s) for s in (0, 20, 40)]
    _write(committed, on_time)
    _refresh(database_url)
    before = _rollup(committed, "readings_1m", prefix)
    assert [(r[3], r[4], r[6], r[7]) for r in before] == [(1.0, 1.0, 1.0, 3)]

    # Arrives after the refresh: a new latest value, a new minimum, and one reading in
    # an hour the rollups have never seen (two hours earlier).
    late = [
        (T0 + timedelta(seconds=50), device, "tilt_deg", 9.0, 100),
        (T0 + timedelta(seconds=10), device, "tilt_deg", -2.0, 101),
        (T0 - timedelta(hours=2), device, "tilt_deg", 5.0, 102),
    ]
    _write(committed, late)
    result = _refresh(database_url)
    assert result.buckets_1m >= 2
    after = _rollup(committed, "readings_1m", prefix)
    newest = after[-1]
    assert (newest[3], newest[4], newest[6], newest[7]) == (-2.0, 9.0, 9.0, 5)
    assert newest[5] == pytest.approx((1 + 1 + 1 + 9 - 2) / 5)
    _assert_rollups_match_raw(committed, prefix)


def test_duplicates_are_neither_counted_twice_nor_overwrite(
    committed: Conn, database_url: str, prefix: str
) -> None:
    device = f"{prefix}d0"
    rows: list[ReadingRow] = [
        (T0 + timedelta(seconds=s), device, "strain_ue", float(s), s) for s in range(0, 120, 10)
    ]
    assert _write(committed, rows) == 12
    _refresh(database_url)
    # Redelivery after a crash: the same keys again, one with a different value (the
    # first stored value stands), plus one genuinely new reading.
    redelivered = [*rows[:6], (rows[0][0], device, "strain_ue", 999.0, 0)]
    new = (T0 + timedelta(seconds=125), device, "strain_ue", 7.0, 200)
    assert _write(committed, [*redelivered, new]) == 1
    _refresh(database_url)
    counts = [r[7] for r in _rollup(committed, "readings_1m", prefix)]
    assert counts == [6, 6, 1]
    assert [r[4] for r in _rollup(committed, "readings_1m", prefix)] == [50.0, 110.0, 7.0]
    _assert_rollups_match_raw(committed, prefix)


def test_refresh_is_idempotent(committed: Conn, database_url: str, prefix: str) -> None:
    _write(committed, _rows(prefix, devices=2, minutes=70))
    _refresh(database_url)
    first = _both(committed, prefix)
    _refresh(database_url)
    _assert_same(_both(committed, prefix), first, "second run")
    # Forgetting the watermark entirely recomputes everything, to the same result.
    committed.execute("UPDATE rollup_watermarks SET received_through = '1970-01-01 00:00Z'")
    _refresh(database_url)
    _assert_same(_both(committed, prefix), first, "full recompute")


def test_rows_committed_while_a_refresh_runs_are_not_missed(
    committed: Conn, database_url: str, prefix: str
) -> None:
    device = f"{prefix}d0"
    _write(committed, [(T0, device, "rain_mm", 1.0, 1)])
    with psycopg.connect(database_url) as slow_writer:
        # A batch whose transaction began before the refresh and commits after it.
        slow_writer.execute(
            "INSERT INTO readings (ts, device_id, metric, value, seq) VALUES (%s, %s, %s, %s, %s)",
            (T0 + timedelta(seconds=5), device, "rain_mm", 4.0, 2),
        )
        result = _refresh(database_url)
        slow_writer.commit()
    assert _rollup(committed, "readings_1m", prefix)[0][7] == 1
    received = committed.execute(
        "SELECT max(received_at) FROM readings WHERE device_id = %s", (device,)
    ).fetchone()
    assert received is not None
    assert isinstance(received[0], datetime)
    assert result.received_through <= received[0]
    _refresh(database_url)
    assert _rollup(committed, "readings_1m", prefix)[0][7] == 2
    _assert_rollups_match_raw(committed, prefix)


def test_a_second_maintainer_skips_while_the_first_runs(database_url: str) -> None:
    with psycopg.connect(database_url) as first, psycopg.connect(database_url) as second:
        assert refresh_rollups(first, RETENTION) is not None
        assert refresh_rollups(second, RETENTION) is None
        first.rollback()


def test_late_rows_older_than_raw_retention_are_not_refolded(
    committed: Conn, database_url: str, prefix: str
) -> None:
    device = f"{prefix}d0"
    old = datetime.now(UTC) - timedelta(days=RETENTION.raw_days + 3)
    _write(committed, [(old, device, "rain_mm", 1.0, 1)])
    result = _refresh(database_url)
    assert result.ignored_expired_buckets >= 1
    assert _rollup(committed, "readings_1m", prefix) == []
    committed.execute("DELETE FROM readings WHERE device_id = %s", (device,))


def test_backlog_path_rolls_up_exactly_too(
    committed: Conn, database_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day with many affected buckets is scanned whole instead of probed per bucket."""
    monkeypatch.setattr("store.maintenance._FEW_BUCKETS", 0)
    rows = _rows(prefix, devices=2, minutes=130)
    random.Random(2).shuffle(rows)
    _write(committed, rows[: len(rows) // 2])
    _refresh(database_url)
    _write(committed, rows[len(rows) // 2 :])
    _write(committed, rows[:50])  # redelivered: all duplicates
    _refresh(database_url)
    _assert_rollups_match_raw(committed, prefix)
