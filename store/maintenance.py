"""The store's upkeep: rollups refreshed, partitions made ahead, expired data dropped.

On plain PostgreSQL three jobs run, each in its own transaction (:func:`run_maintenance`):

1. :func:`ensure_partitions` creates the daily ``readings`` partitions (and monthly
   ``readings_1m`` partitions) ahead of time, and gives a partition to any retained day
   whose rows were parked in a default partition.
2. :func:`refresh_rollups` brings ``readings_1m`` and ``readings_1h`` up to date. It finds
   the (device, metric, bucket) triples touched by rows *received* since the watermark
   and recomputes those buckets whole, so late, duplicate and out-of-order readings are
   merged exactly, and running it twice changes nothing.
3. :func:`drop_expired` drops whole partitions older than the retention of each level.

On TimescaleDB, policies do all three inside the server; :func:`run_maintenance` only
makes the policies match the settings (:mod:`store.timescale`).

Every job takes a transaction-scoped advisory lock, so many replicas may run the
:class:`MaintenanceScheduler` and at most one does the work at a time; the others skip.
The functions taking a connection run in the caller's transaction and never commit.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import psycopg
from psycopg import sql

from core.errors import MamoriError, StoreError
from core.retention import MaintenanceSettings, RetentionSettings
from store import timescale
from store.db import Flavour, connect, detect_flavour, translate_errors

_log = logging.getLogger(__name__)

Conn = psycopg.Connection[tuple[object, ...]]

#: Taken by every job (transaction-scoped); distinct from the migration lock.
_LOCK_KEY = 0x6D616D6F726A
#: Rows received this long before the watermark are scanned again. The watermark is
#: already safe for rows whose received_at is their transaction's start (the default);
#: the overlap covers writers that set received_at themselves. Re-scanning is harmless.
_OVERLAP = timedelta(minutes=1)
#: How long a job waits for a lock on a table before giving up until its next run, so
#: upkeep never stalls ingest.
_LOCK_TIMEOUT = "5s"
_DAY_PARTITION = re.compile(r"^readings_p(\d{8})$")
_MONTH_PARTITION = re.compile(r"^readings_1m_p(\d{6})$")


@dataclass(frozen=True, slots=True)
class RollupResult:
    """What one refresh did: buckets recomputed per level and the new watermark."""

    buckets_1m: int
    buckets_1h: int
    received_through: datetime
    #: Late rows for days already past raw retention: not folded in (their buckets'
    #: other raw rows are gone, recomputing would shrink them).
    ignored_expired_buckets: int = 0


@dataclass(frozen=True, slots=True)
class ExpiryResult:
    dropped: tuple[str, ...]
    deleted_rows: int


@dataclass(slots=True)
class MaintenanceReport:
    """What :func:`run_maintenance` did, for ``mamori db maintain`` and the logs."""

    flavour: Flavour
    partitions_created: list[str] = field(default_factory=list)
    rollups: RollupResult | None = None
    expiry: ExpiryResult | None = None
    #: True when another process held the maintenance lock, so a job was skipped.
    skipped_busy: bool = False
    timescale_policies: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        if self.flavour is Flavour.TIMESCALE:
            return "TimescaleDB policies in place: " + ", ".join(self.timescale_policies)
        parts = [f"{len(self.partitions_created)} partitions created"]
        if self.rollups is not None:
            parts.append(
                f"{self.rollups.buckets_1m} one-minute and {self.rollups.buckets_1h} one-hour "
                f"buckets recomputed (through {self.rollups.received_through.isoformat()})"
            )
        if self.expiry is not None:
            parts.append(
                f"{len(self.expiry.dropped)} expired partitions dropped, "
                f"{self.expiry.deleted_rows} expired rows deleted"
            )
        if self.skipped_busy:
            parts.append("some jobs skipped: another maintainer was running")
        total = sum(self.seconds.values())
        return "; ".join(parts) + f" in {total:.2f} s"

    def as_dict(self) -> dict[str, object]:
        return {
            "flavour": self.flavour.value,
            "partitions_created": list(self.partitions_created),
            "buckets_1m": self.rollups.buckets_1m if self.rollups else 0,
            "buckets_1h": self.rollups.buckets_1h if self.rollups else 0,
            "received_through": self.rollups.received_through.isoformat() if self.rollups else None,
            "ignored_expired_buckets": self.rollups.ignored_expired_buckets if self.rollups else 0,
            "partitions_dropped": list(self.expiry.dropped) if self.expiry else [],
            "expired_rows_deleted": self.expiry.deleted_rows if self.expiry else 0,
            "skipped_busy": self.skipped_busy,
            "timescale_policies": list(self.timescale_policies),
            "seconds": dict(self.seconds),
        }


def _utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date()


def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _expire_before(now: datetime, keep: timedelta) -> datetime:
    """Rows older than this are expired. Whole UTC days, so a bucket never straddles it."""
    return _day_start(_utc_day(now - keep))


def _try_lock(conn: Conn) -> bool:
    row = conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_LOCK_KEY,)).fetchone()
    return bool(row and row[0])


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def ensure_partitions(
    conn: Conn, settings: MaintenanceSettings, *, now: datetime | None = None
) -> list[str]:
    """Create daily ``readings`` and monthly ``readings_1m`` partitions ahead; return names.

    Also gives a partition to every retained day with rows in ``readings_default`` (they
    move out of it), so the default partition stays small and retention can drop them.
    """
    now = now or datetime.now(UTC)
    today = _utc_day(now)
    oldest_kept = _utc_day(_expire_before(now, settings.retention.raw))
    created: list[str] = []
    with translate_errors("creating partitions"):
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_LOCK_TIMEOUT)))
        parked = conn.execute(
            "SELECT DISTINCT (ts AT TIME ZONE 'UTC')::date FROM readings_default WHERE ts >= %s",
            (_day_start(oldest_kept),),
        ).fetchall()
        days = {today + timedelta(days=d) for d in range(-1, settings.partitions_ahead_days + 1)}
        days |= {d for (d,) in parked if isinstance(d, date)}
        for day in sorted(days):
            row = conn.execute("SELECT mamori_ensure_readings_partition(%s)", (day,)).fetchone()
            if row and row[0]:
                created.append(f"readings_p{day:%Y%m%d}")
        months = {_month_start(d) for d in days}
        months.add(_next_month(_month_start(today)))
        parked_months = conn.execute(
            "SELECT DISTINCT date_trunc('month', bucket AT TIME ZONE 'UTC')::date "
            "FROM readings_1m_default"
        ).fetchall()
        months |= {m for (m,) in parked_months if isinstance(m, date)}
        for month in sorted(months):
            row = conn.execute("SELECT mamori_ensure_rollup_partition(%s)", (month,)).fetchone()
            if row and row[0]:
                created.append(f"readings_1m_p{month:%Y%m}")
    if created:
        _log.info("created partitions %s", ", ".join(created))
    return created


def _new_watermark(conn: Conn) -> datetime:
    """A received_at below which every row is already visible to our next statement.

    A row's received_at defaults to its transaction's start, so a transaction still open
    now can only add rows at or after its own ``xact_start``. The minimum over open
    transactions (and the clock) is therefore safe; rows from transactions that start
    later are newer than the clock reading.
    """
    conn.execute("SELECT pg_stat_clear_snapshot()")
    row = conn.execute(
        """SELECT least(clock_timestamp(), min(xact_start))
           FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND xact_start IS NOT NULL"""
    ).fetchone()
    if row is None or not isinstance(row[0], datetime):
        raise StoreError("the server did not report a time")  # pragma: no cover
    return row[0]


def refresh_rollups(
    conn: Conn,
    retention: RetentionSettings,
    *,
    now: datetime | None = None,
    overlap: timedelta = _OVERLAP,
) -> RollupResult | None:
    """Recompute every 1m and 1h bucket touched since the watermark; ``None`` if busy.

    ``overlap`` re-scans rows received that long before the watermark (tests pass zero
    to show the watermark alone is exact).
    """
    now = now or datetime.now(UTC)
    horizon = _expire_before(now, retention.raw)
    with translate_errors("refreshing rollups"):
        if not _try_lock(conn):
            _log.info("rollup refresh skipped: another maintainer holds the lock")
            return None
        conn.execute("SET LOCAL work_mem = '64MB'")
        marks = [
            mark
            for (mark,) in conn.execute(
                "SELECT received_through FROM rollup_watermarks FOR UPDATE"
            ).fetchall()
            if isinstance(mark, datetime)
        ]
        since = min(marks, default=datetime(1970, 1, 1, tzinfo=UTC)) - overlap
        new_mark = _new_watermark(conn)

        conn.execute("DROP TABLE IF EXISTS _mamori_affected_1m")
        conn.execute(
            """CREATE TEMP TABLE _mamori_affected_1m ON COMMIT DROP AS
               SELECT DISTINCT device_id, metric, time_bucket(INTERVAL '1 minute', ts) AS bucket
               FROM readings WHERE received_at >= %s""",
            (since,),
        )
        gone = conn.execute(
            "DELETE FROM _mamori_affected_1m WHERE bucket < %s", (horizon,)
        ).rowcount
        if gone:
            _log.warning(
                "%s late one-minute buckets are older than raw retention (%s); not refolded",
                gone,
                horizon.isoformat(),
            )
        buckets_1m, buckets_1h = _recompute(conn)
        conn.execute(
            "UPDATE rollup_watermarks SET received_through = %s, refreshed_at = now()",
            (new_mark,),
        )
    _log.info(
        "rollups refreshed: %s 1m and %s 1h buckets, through %s",
        buckets_1m,
        buckets_1h,
        new_mark.isoformat(),
    )
    return RollupResult(buckets_1m, buckets_1h, new_mark, gone)


def _recompute(conn: Conn) -> tuple[int, int]:
    """Recompute the affected buckets one UTC day at a time.

    A day is one raw partition and a slice of one ``readings_1m`` partition. A day with
    few affected buckets (late rows, the newest minute) probes the primary key once per
    bucket; a day with many (a backlog) scans the day once and keeps the affected buckets
    with a hash semi-join. The choice is made here, not by the planner, because it
    underestimates three-column joins badly enough to pick per-row probes for a backlog.
    """
    conn.execute("CREATE INDEX ON _mamori_affected_1m (bucket)")
    conn.execute("ANALYZE _mamori_affected_1m")
    days = conn.execute(
        "SELECT time_bucket(INTERVAL '1 day', bucket), count(*) FROM _mamori_affected_1m "
        "GROUP BY 1 ORDER BY 1"
    ).fetchall()
    total_1m = total_1h = 0
    for day, affected in days:
        if not isinstance(day, datetime) or not isinstance(affected, int):
            continue
        window = {"lo": day, "hi": day + timedelta(days=1)}
        few = affected <= _FEW_BUCKETS
        total_1m += conn.execute(_PROBE_1M if few else _SCAN_1M, window).rowcount
        total_1h += conn.execute(_PROBE_1H if few else _SCAN_1H, window).rowcount
    return total_1m, total_1h


#: Up to this many affected minutes in a day, probe per bucket; above, scan the day.
_FEW_BUCKETS = 10_000

_PROBE_1M = """
    INSERT INTO readings_1m AS t (device_id, metric, bucket, min, max, avg, last, count)
    SELECT a.device_id, a.metric, a.bucket, s.min, s.max, s.avg, s.last, s.count
    FROM _mamori_affected_1m a
    CROSS JOIN LATERAL (
        SELECT min(r.value) AS min, max(r.value) AS max, avg(r.value) AS avg,
               (array_agg(r.value ORDER BY r.ts DESC))[1] AS last, count(*) AS count
        FROM readings r
        WHERE r.device_id = a.device_id AND r.metric = a.metric
          AND r.ts >= a.bucket AND r.ts < a.bucket + INTERVAL '1 minute'
          AND r.ts >= %(lo)s AND r.ts < %(hi)s
    ) s
    WHERE a.bucket >= %(lo)s AND a.bucket < %(hi)s AND s.count > 0
    ORDER BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        min = excluded.min, max = excluded.max, avg = excluded.avg,
        last = excluded.last, count = excluded.count"""

_SCAN_1M = """
    INSERT INTO readings_1m AS t (device_id, metric, bucket, min, max, avg, last, count)
    SELECT r.device_id, r.metric, time_bucket(INTERVAL '1 minute', r.ts), min(r.value),
           max(r.value), avg(r.value), (array_agg(r.value ORDER BY r.ts DESC))[1], count(*)
    FROM readings r
    WHERE r.ts >= %(lo)s AND r.ts < %(hi)s
      AND (r.device_id, r.metric, time_bucket(INTERVAL '1 minute', r.ts)) IN (
          SELECT device_id, metric, bucket FROM _mamori_affected_1m
          WHERE bucket >= %(lo)s AND bucket < %(hi)s)
    GROUP BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        min = excluded.min, max = excluded.max, avg = excluded.avg,
        last = excluded.last, count = excluded.count"""

# An hour is rebuilt from its minutes (brought up to date just before): the average
# weighted by counts, the last value from the latest minute.
_PROBE_1H = """
    INSERT INTO readings_1h AS t (device_id, metric, bucket, min, max, avg, last, count)
    SELECT h.device_id, h.metric, h.bucket, s.min, s.max, s.avg, s.last, s.count
    FROM (SELECT DISTINCT device_id, metric, time_bucket(INTERVAL '1 hour', bucket) AS bucket
          FROM _mamori_affected_1m WHERE bucket >= %(lo)s AND bucket < %(hi)s) h
    CROSS JOIN LATERAL (
        SELECT min(m.min) AS min, max(m.max) AS max,
               sum(m.avg * m.count) / sum(m.count) AS avg,
               (array_agg(m.last ORDER BY m.bucket DESC))[1] AS last,
               sum(m.count)::bigint AS count
        FROM readings_1m m
        WHERE m.device_id = h.device_id AND m.metric = h.metric
          AND m.bucket >= h.bucket AND m.bucket < h.bucket + INTERVAL '1 hour'
          AND m.bucket >= %(lo)s AND m.bucket < %(hi)s
    ) s
    WHERE s.count > 0
    ORDER BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        min = excluded.min, max = excluded.max, avg = excluded.avg,
        last = excluded.last, count = excluded.count"""

_SCAN_1H = """
    INSERT INTO readings_1h AS t (device_id, metric, bucket, min, max, avg, last, count)
    SELECT m.device_id, m.metric, time_bucket(INTERVAL '1 hour', m.bucket), min(m.min),
           max(m.max), sum(m.avg * m.count) / sum(m.count),
           (array_agg(m.last ORDER BY m.bucket DESC))[1], sum(m.count)::bigint
    FROM readings_1m m
    WHERE m.bucket >= %(lo)s AND m.bucket < %(hi)s
      AND (m.device_id, m.metric, time_bucket(INTERVAL '1 hour', m.bucket)) IN (
          SELECT device_id, metric, time_bucket(INTERVAL '1 hour', bucket)
          FROM _mamori_affected_1m WHERE bucket >= %(lo)s AND bucket < %(hi)s)
    GROUP BY 1, 2, 3
    ON CONFLICT (device_id, metric, bucket) DO UPDATE SET
        min = excluded.min, max = excluded.max, avg = excluded.avg,
        last = excluded.last, count = excluded.count"""


def _children(conn: Conn, parent: str) -> list[str]:
    rows = conn.execute(
        """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent = to_regclass(%s) ORDER BY c.relname""",
        (parent,),
    ).fetchall()
    return [str(name) for (name,) in rows]


def drop_expired(
    conn: Conn, retention: RetentionSettings, *, now: datetime | None = None
) -> ExpiryResult | None:
    """Drop whole partitions past retention; delete expired rows from default partitions.

    A daily ``readings`` partition goes when its whole day is older than ``raw_days``; a
    monthly ``readings_1m`` partition when its whole month is older than
    ``rollup_1m_days``. ``readings_1h`` is not partitioned; expired hours are deleted.
    Returns ``None`` when another maintainer holds the lock.
    """
    now = now or datetime.now(UTC)
    dropped: list[str] = []
    deleted = 0
    with translate_errors("dropping expired partitions"):
        if not _try_lock(conn):
            return None
        conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_LOCK_TIMEOUT)))
        raw_before = _expire_before(now, retention.raw)
        for name in _children(conn, "readings"):
            match = _DAY_PARTITION.match(name)
            if match is None:
                continue
            day = datetime.strptime(match[1], "%Y%m%d").replace(tzinfo=UTC)
            if day + timedelta(days=1) <= raw_before:
                conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                dropped.append(name)
        deleted += conn.execute(
            "DELETE FROM readings_default WHERE ts < %s", (raw_before,)
        ).rowcount
        if retention.rollup_1m is not None:
            minute_before = _expire_before(now, retention.rollup_1m)
            for name in _children(conn, "readings_1m"):
                match = _MONTH_PARTITION.match(name)
                if match is None:
                    continue
                month = datetime.strptime(match[1], "%Y%m").replace(tzinfo=UTC)
                if _day_start(_next_month(month.date())) <= minute_before:
                    conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(name)))
                    dropped.append(name)
            deleted += conn.execute(
                "DELETE FROM readings_1m_default WHERE bucket < %s", (minute_before,)
            ).rowcount
        if retention.rollup_1h is not None:
            deleted += conn.execute(
                "DELETE FROM readings_1h WHERE bucket < %s",
                (_expire_before(now, retention.rollup_1h),),
            ).rowcount
    if dropped or deleted:
        _log.info("expired: dropped %s, deleted %s rows", ", ".join(dropped) or "-", deleted)
    return ExpiryResult(tuple(dropped), deleted)


def installed_flavour(conn: Conn) -> Flavour:
    """The flavour the schema was migrated with (what the server could do is secondary)."""
    with translate_errors("reading the schema flavour"):
        row = conn.execute(
            "SELECT flavour FROM schema_migrations ORDER BY version DESC LIMIT 1"
        ).fetchone()
    return Flavour(str(row[0])) if row else detect_flavour(conn)


def run_maintenance(
    url: str, settings: MaintenanceSettings, *, now: datetime | None = None
) -> MaintenanceReport:
    """Run every job once, each in its own transaction, and say what was done."""
    with connect(url, application_name="mamori-maintenance") as conn:
        flavour = installed_flavour(conn)
        conn.commit()
        report = MaintenanceReport(flavour)
        if flavour is Flavour.TIMESCALE:
            started = time.perf_counter()
            report.timescale_policies = timescale.sync_policies(conn, settings.retention)
            conn.commit()
            report.seconds["policies"] = time.perf_counter() - started
            return report

        started = time.perf_counter()
        report.partitions_created = ensure_partitions(conn, settings, now=now)
        conn.commit()
        report.seconds["partitions"] = time.perf_counter() - started

        started = time.perf_counter()
        report.rollups = refresh_rollups(conn, settings.retention, now=now)
        conn.commit()
        report.seconds["rollups"] = time.perf_counter() - started

        # Expiry runs after the refresh, so rows received just before a partition
        # expires are folded into the rollups before it goes.
        started = time.perf_counter()
        report.expiry = drop_expired(conn, settings.retention, now=now)
        conn.commit()
        report.seconds["expiry"] = time.perf_counter() - started

        report.skipped_busy = report.rollups is None or report.expiry is None
    return report


class MaintenanceScheduler:
    """Runs :func:`run_maintenance` every ``interval_s`` on a daemon thread.

    A failed run is logged and retried at the next tick; it never stops the thread or
    the service that owns it. ``stop()`` waits for a run in progress to finish.
    """

    def __init__(self, url: str, settings: MaintenanceSettings) -> None:
        self._url = url
        self._settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0
        self.failures = 0
        self.last_report: MaintenanceReport | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mamori-maintenance", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def run_once(self) -> MaintenanceReport | None:
        try:
            report = run_maintenance(self._url, self._settings)
        except MamoriError as exc:
            self.failures += 1
            _log.warning(
                "store maintenance failed, retrying in %.0f s: %s", self._settings.interval_s, exc
            )
            return None
        self.runs += 1
        self.last_report = report
        _log.debug("store maintenance: %s", report.summary())
        return report

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            self._stop.wait(self._settings.interval_s)
