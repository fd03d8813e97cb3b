"""Typed, parameterised reads for the API and the dashboards.

* :func:`latest` — the newest reading of each (device, metric).
* :func:`series` — a time-bucketed series (min, max, avg, last, count per bucket) read
  from the coarsest level that can answer it: ``readings_1h`` for whole hours,
  ``readings_1m`` for whole minutes, raw ``readings`` otherwise (:func:`choose_resolution`).
  On plain PostgreSQL the part of the range the rollups have not reached yet is read from
  raw rows, so a chart is exact up to the last committed reading on both flavours.
* :func:`threshold_crossings` — when a series went above or below given levels.

Buckets follow ``time_bucket`` (aligned to 2000-01-03 00:00 UTC, a Monday). A series
covers every bucket that overlaps ``[start, end)``, each bucket whole, whichever level it
was read from, so the levels give the same answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import groupby, starmap
from operator import attrgetter
from typing import Literal

import psycopg
from psycopg import sql

from core.errors import StoreError
from core.retention import RetentionSettings
from store.db import translate_errors

Conn = psycopg.Connection[tuple[object, ...]]

#: TimescaleDB's default bucket origin, which the plain time_bucket() shim shares.
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
#: Widths offered by :func:`auto_bucket`, finest first.
NICE_BUCKETS: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s)
    for s in (
        1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400,
        7 * 86400,
    )
)  # fmt: skip
#: Refuse series larger than this many buckets per device: a chart cannot show them.
MAX_BUCKETS = 20_000


class Resolution(StrEnum):
    """Where a series is read from."""

    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"


_WIDTH = {Resolution.MINUTE: timedelta(minutes=1), Resolution.HOUR: timedelta(hours=1)}
_TABLE = {Resolution.MINUTE: "readings_1m", Resolution.HOUR: "readings_1h"}


@dataclass(frozen=True, slots=True)
class LatestReading:
    device_id: str
    metric: str
    ts: datetime
    value: float


@dataclass(slots=True)
class SeriesPoint:
    """One bucket of one device. Not frozen: a month-long chart has tens of thousands of
    them, and a frozen dataclass costs five times more to build."""

    device_id: str
    bucket: datetime
    min: float
    max: float
    avg: float
    #: The value at the latest ts in the bucket.
    last: float
    count: int


@dataclass(frozen=True, slots=True)
class Series:
    metric: str
    bucket: timedelta
    resolution: Resolution
    start: datetime
    end: datetime
    points: list[SeriesPoint]

    def for_device(self, device_id: str) -> list[SeriesPoint]:
        return [p for p in self.points if p.device_id == device_id]


@dataclass(frozen=True, slots=True)
class Crossing:
    device_id: str
    ts: datetime
    threshold: float
    direction: Literal["up", "down"]
    before: float
    after: float


def floor_bucket(at: datetime, width: timedelta) -> datetime:
    """The start of the ``time_bucket`` of ``width`` holding ``at``."""
    return ORIGIN + ((at - ORIGIN) // width) * width


def ceil_bucket(at: datetime, width: timedelta) -> datetime:
    start = floor_bucket(at, width)
    return start if start == at else start + width


def auto_bucket(start: datetime, end: datetime, max_points: int = 1000) -> timedelta:
    """The finest width in :data:`NICE_BUCKETS` giving at most ``max_points`` buckets."""
    span = end - start
    for width in NICE_BUCKETS:
        if span / width <= max_points:
            return width
    return NICE_BUCKETS[-1]


def choose_resolution(
    start: datetime,
    bucket: timedelta,
    retention: RetentionSettings | None = None,
    *,
    now: datetime | None = None,
) -> Resolution:
    """The coarsest level whose width divides ``bucket`` (fewest rows to read).

    A coarser level is kept at least as long as a finer one, so it also reaches furthest
    back. Raises :class:`StoreError` when the only level that divides ``bucket`` no longer
    holds data as old as ``start`` (for example 30-second buckets from a year ago).
    """
    if bucket <= timedelta(0):
        raise StoreError("a bucket must be a positive interval")
    for level in (Resolution.HOUR, Resolution.MINUTE):
        if bucket % _WIDTH[level] == timedelta(0):
            return level
    retention = retention or RetentionSettings()
    if start < (now or datetime.now(UTC)) - retention.raw:
        raise StoreError(
            f"raw readings are kept {retention.raw_days} days; a series from "
            f"{start.isoformat()} needs whole-minute buckets"
        )
    return Resolution.RAW


def latest(
    conn: Conn,
    *,
    device_ids: Sequence[str] | None = None,
    metric: str | None = None,
    within: timedelta = timedelta(days=1),
    now: datetime | None = None,
) -> list[LatestReading]:
    """The newest reading of each (device, metric) seen in the last ``within``.

    A skip scan over the primary key (device_id, metric, ts): one index probe per series
    and recent partition instead of reading every recent row. Devices silent for longer
    than ``within`` are absent; ``devices.last_seen_at`` tells how long they have been.
    """
    since = (now or datetime.now(UTC)) - within
    params: dict[str, object] = {"since": since}
    # Filters are added only when given: a generic "param IS NULL OR ..." would defeat
    # both the index and partition pruning.
    conditions = [sql.SQL("ts >= %(since)s")]
    if device_ids:
        params["devices"] = list(device_ids)
        conditions.append(sql.SQL("device_id = ANY(%(devices)s::text[])"))
    if metric is not None:
        params["metric"] = metric
        conditions.append(sql.SQL("metric = %(metric)s"))
    filters = sql.SQL(" AND ").join(conditions)
    query = sql.SQL(
        """WITH RECURSIVE series AS (
               (SELECT device_id, metric FROM readings WHERE {f}
                ORDER BY device_id, metric LIMIT 1)
               UNION ALL
               SELECT n.device_id, n.metric FROM series s CROSS JOIN LATERAL (
                   SELECT device_id, metric FROM readings
                   WHERE {f} AND (device_id, metric) > (s.device_id, s.metric)
                   ORDER BY device_id, metric LIMIT 1) n
           )
           SELECT s.device_id, s.metric, r.ts, r.value FROM series s CROSS JOIN LATERAL (
               SELECT ts, value FROM readings
               WHERE device_id = s.device_id AND metric = s.metric AND ts >= %(since)s
               ORDER BY ts DESC LIMIT 1) r
           ORDER BY s.device_id, s.metric"""
    ).format(f=filters)
    with translate_errors("reading the latest values"):
        rows = conn.execute(query, params).fetchall()
    return [LatestReading(str(d), str(m), _ts(t), _float(v)) for d, m, t, v in rows]


def series(
    conn: Conn,
    *,
    device_ids: Sequence[str],
    metric: str,
    start: datetime,
    end: datetime,
    bucket: timedelta | None = None,
    resolution: Resolution | None = None,
    retention: RetentionSettings | None = None,
    now: datetime | None = None,
) -> Series:
    """Bucketed min/max/avg/last/count of ``metric`` for ``device_ids`` over ``[start, end)``.

    ``bucket`` defaults to :func:`auto_bucket`; ``resolution`` defaults to
    :func:`choose_resolution` (pass one to force a level, e.g. to compare them). Points
    come grouped by device in the order of ``device_ids``, buckets ascending.
    """
    if end <= start:
        raise StoreError("a series needs start < end")
    if not device_ids:
        raise StoreError("a series needs at least one device")
    width = bucket or auto_bucket(start, end)
    level = resolution or choose_resolution(start, width, retention, now=now)
    if level is not Resolution.RAW and width % _WIDTH[level]:
        raise StoreError(f"{width} buckets cannot be read from {level.value} rollups")
    lo, hi = floor_bucket(start, width), ceil_bucket(end, width)
    if (hi - lo) / width > MAX_BUCKETS:
        raise StoreError(
            f"{math.ceil((hi - lo) / width)} buckets of {width} are too many; "
            "widen the bucket or narrow the range"
        )
    params: dict[str, object] = {
        "width": width,
        "devices": list(device_ids),
        "metric": metric,
        "lo": lo,
        "hi": hi,
    }
    with translate_errors("reading a series"):
        # Buckets before the cut come whole from the rollup, the rest whole from raw rows;
        # the cut sits on a bucket boundary, so no bucket takes from both.
        cut = lo if level is Resolution.RAW else _rollups_end(conn, level, width, lo, hi)
        points: list[SeriesPoint] = []
        if cut > lo:
            query = (_SAME_WIDTH if width == _WIDTH[level] else _COARSER).format(
                rollup=sql.Identifier(_TABLE[level])
            )
            points += _fetch_points(conn, query, params | {"hi": cut})
        if hi > cut:
            points += _fetch_points(conn, _RAW_SERIES, params | {"lo": cut})
    return Series(metric, width, level, lo, hi, _in_device_order(points, device_ids))


def _in_device_order(points: list[SeriesPoint], device_ids: Sequence[str]) -> list[SeriesPoint]:
    """Points grouped by device in the order asked for, buckets ascending in each.

    Each part arrives grouped by device with buckets ascending, and the rollup part ends
    before the raw part begins, so concatenating the runs per device keeps buckets in
    order. Linear, unlike a sort; the database's collation order is never relied on.
    """
    runs: dict[str, list[SeriesPoint]] = {}
    for device, run in groupby(points, key=attrgetter("device_id")):
        runs.setdefault(device, []).extend(run)
    ordered: list[SeriesPoint] = []
    for device in dict.fromkeys(device_ids):
        ordered += runs.get(device, [])
    return ordered


def _fetch_points(
    conn: Conn, query: sql.Composed | sql.SQL, params: dict[str, object]
) -> list[SeriesPoint]:
    # Binary results: parsing timestamps and floats from text was a good part of the
    # time a month-long chart took.
    with conn.cursor(binary=True) as cur:
        return list(starmap(SeriesPoint, cur.execute(query, params).fetchall()))


def _rollups_end(
    conn: Conn, level: Resolution, width: timedelta, lo: datetime, hi: datetime
) -> datetime:
    """The first requested bucket the rollups may not hold whole: raw rows from there."""
    row = conn.execute("SELECT mamori_rollups_complete_through(%s)", (level.value,)).fetchone()
    through = row[0] if row else None
    if not isinstance(through, datetime):
        return hi  # TimescaleDB: real-time aggregates are complete
    return min(max(floor_bucket(through, width), lo), hi)


_RAW_SERIES = sql.SQL(
    """SELECT device_id, time_bucket(%(width)s::interval, ts) AS bucket,
              min(value) AS min, max(value) AS max, avg(value) AS avg,
              (array_agg(value ORDER BY ts DESC))[1] AS last, count(*) AS count
       FROM readings
       WHERE device_id = ANY(%(devices)s::text[]) AND metric = %(metric)s
         AND ts >= %(lo)s AND ts < %(hi)s
       GROUP BY device_id, 2
       ORDER BY device_id, 2"""
)

# The rollup's own width: its rows are the answer. ORDER BY follows the primary key
# (which covers every column of readings_1h), so there is no sort and no heap access.
_SAME_WIDTH = sql.SQL(
    """SELECT device_id, bucket, min, max, avg, last, count
       FROM {rollup}
       WHERE device_id = ANY(%(devices)s::text[]) AND metric = %(metric)s
         AND bucket >= %(lo)s AND bucket < %(hi)s
       ORDER BY device_id, bucket"""
)

# A multiple of it: merge the rollup rows, the average weighted by counts and `last`
# from the latest source bucket.
_COARSER = sql.SQL(
    """SELECT device_id, time_bucket(%(width)s::interval, bucket) AS bucket,
              min(min) AS min, max(max) AS max, sum(avg * count) / sum(count) AS avg,
              (array_agg(last ORDER BY bucket DESC))[1] AS last, sum(count)::bigint AS count
       FROM {rollup}
       WHERE device_id = ANY(%(devices)s::text[]) AND metric = %(metric)s
         AND bucket >= %(lo)s AND bucket < %(hi)s
       GROUP BY device_id, 2
       ORDER BY device_id, 2"""
)


def threshold_crossings(
    conn: Conn,
    *,
    device_ids: Sequence[str],
    metric: str,
    thresholds: Sequence[float],
    start: datetime,
    end: datetime,
) -> list[Crossing]:
    """Every time a reading in ``[start, end)`` went up to or past, or back below, a level.

    "Up" means the previous reading was below the threshold and this one is at or above
    it; "down" the reverse. The reading just before ``start`` counts as the previous one,
    so a crossing at the first reading of the range is found. Read from raw readings
    (crossings need every value, which the rollups do not keep).
    """
    if not device_ids or not thresholds:
        return []
    params = {
        "devices": list(device_ids),
        "metric": metric,
        "thresholds": [float(t) for t in thresholds],
        "start": start,
        "end": end,
    }
    query = """
        WITH ordered AS (
            SELECT device_id, ts, value,
                   lag(value) OVER (PARTITION BY device_id ORDER BY ts) AS prev
            FROM (
                SELECT r.device_id, r.ts, r.value
                FROM unnest(%(devices)s::text[]) AS d(id)
                CROSS JOIN LATERAL (
                    SELECT device_id, ts, value FROM readings
                    WHERE device_id = d.id AND metric = %(metric)s AND ts < %(start)s
                    ORDER BY ts DESC LIMIT 1) r
                UNION ALL
                SELECT device_id, ts, value FROM readings
                WHERE device_id = ANY(%(devices)s::text[]) AND metric = %(metric)s
                  AND ts >= %(start)s AND ts < %(end)s
            ) window_rows
        )
        SELECT o.device_id, o.ts, t.level,
               CASE WHEN o.value >= t.level THEN 'up' ELSE 'down' END, o.prev, o.value
        FROM ordered o CROSS JOIN unnest(%(thresholds)s::float8[]) AS t(level)
        WHERE o.ts >= %(start)s AND o.prev IS NOT NULL
          AND ((o.prev < t.level AND o.value >= t.level)
               OR (o.prev >= t.level AND o.value < t.level))
        ORDER BY o.device_id, o.ts, t.level"""
    with translate_errors("reading threshold crossings"):
        rows = conn.execute(query, params).fetchall()
    return [
        Crossing(
            device_id=str(d),
            ts=_ts(t),
            threshold=_float(level),
            direction="up" if direction == "up" else "down",
            before=_float(before),
            after=_float(after),
        )
        for d, t, level, direction, before, after in rows
    ]


def _ts(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise StoreError(f"expected a timestamp from the database, got {value!r}")
    return value


def _float(value: object) -> float:
    if isinstance(value, int | float):
        return float(value)
    raise StoreError(f"expected a number from the database, got {value!r}")


def _int(value: object) -> int:
    if isinstance(value, int):
        return value
    raise StoreError(f"expected an integer from the database, got {value!r}")
