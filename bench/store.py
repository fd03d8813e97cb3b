"""The store at scale: bytes per reading, a month-long chart over rollups vs raw rows,
and how long the upkeep takes (plain PostgreSQL path).

    python -m bench.store                  # 30 days x 500 sensors, 1/min: 21.6 M readings
    python -m bench.store --quick          # 7 days x 40 sensors, under a minute
    python -m bench.store --days 10 --sensors 200 --json

It creates a database of its own on ``--database-url`` (default: the local PostgreSQL),
migrates it, loads the readings with binary COPY one day per transaction, runs
``store.maintenance.run_maintenance`` (the first run builds every rollup), then times:

* a chart: ``--chart-days`` days of hourly buckets for ``--chart-sensors`` sensors,
  through ``store.queries.series`` — once as the API reads it (from ``readings_1h``) and
  once forced onto raw rows; the ratio is the headline, and the two must agree;
* the latest value of every sensor (``store.queries.latest``);
* maintenance in steady state (one more minute from every sensor), then after 1000 late
  readings scattered over the past days and a redelivered batch (duplicates).

Goals (issue 5): the chart over rollups under 50 ms and at least 50 x faster than over
raw rows. Latencies are medians of ``--repeat`` runs after one warm-up run. The database
is dropped at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from core.retention import MaintenanceSettings
from store.embedded import create_database
from store.maintenance import run_maintenance
from store.migrate import migrate
from store.queries import _RAW_SERIES, _SAME_WIDTH, Resolution, Series, floor_bucket, latest, series
from store.readings import ReadingRow, insert_readings

METRICS = ("water_level_m", "rain_mm", "tilt_deg", "strain_ue", "accel_rms_g")
Conn = psycopg.Connection[tuple[object, ...]]
COPY_TYPES = ["timestamptz", "text", "text", "float8", "int8", "timestamptz"]


def _sensor(i: int) -> tuple[str, str]:
    """A device id of realistic length and the one metric it reports."""
    return f"yamaguchi-dev-{i:04d}", METRICS[i % len(METRICS)]


def _day_rows(
    day_start: datetime, sensors: int, interval: timedelta, until: datetime, rng: random.Random
) -> Iterator[tuple[datetime, str, str, float, int, datetime]]:
    steps = int(timedelta(days=1) / interval)
    times = [day_start + i * interval for i in range(steps)]
    times = [t for t in times if t < until]
    first_seq = int((day_start - datetime(2000, 1, 1, tzinfo=UTC)) / interval)
    delay = timedelta(seconds=2)
    for s in range(sensors):
        device, metric = _sensor(s)
        base = 1.0 + (s % 17)
        phase = s / 7.0
        for i, ts in enumerate(times):
            wave = math.sin(phase + (first_seq + i) / 240.0)
            value = round(base + wave + rng.random() * 0.05, 4)
            yield ts, device, metric, value, first_seq + i, ts + delay


def _load(
    url: str, start: datetime, end: datetime, sensors: int, interval: timedelta, quiet: bool
) -> int:
    rng = random.Random(5)
    loaded = 0
    days = (end - start).days + 1
    with psycopg.connect(url) as conn, Progress(disable=quiet, console=Console(stderr=True)) as bar:
        task = bar.add_task("loading readings (binary COPY)", total=days)
        day = start
        while day < end:
            with (
                conn.cursor() as cur,
                cur.copy(
                    "COPY readings (ts, device_id, metric, value, seq, received_at) "
                    "FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(COPY_TYPES)
                for row in _day_rows(day, sensors, interval, end, rng):
                    copy.write_row(row)
                    loaded += 1
            conn.commit()
            bar.advance(task)
            day += timedelta(days=1)
    return loaded


def _make_partitions(url: str, start: datetime, end: datetime) -> None:
    with psycopg.connect(url) as conn:
        day = start.date()
        while day <= end.date():
            conn.execute("SELECT mamori_ensure_readings_partition(%s)", (day,))
            conn.execute("SELECT mamori_ensure_rollup_partition(%s)", (day,))
            day += timedelta(days=1)
        conn.commit()


def _vacuum(url: str, *tables: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for table in tables:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(table)))


def _sizes(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            """SELECT sum(pg_total_relation_size(relid)), sum(pg_relation_size(relid)),
                      sum(pg_indexes_size(relid))
               FROM pg_partition_tree('readings') WHERE isleaf"""
        ).fetchone()
        m = conn.execute(
            "SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree('readings_1m') "
            "WHERE isleaf"
        ).fetchone()
        h = conn.execute("SELECT pg_total_relation_size('readings_1h')").fetchone()
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM readings_1m), (SELECT count(*) FROM readings_1h)"
        ).fetchone()
    assert row is not None
    assert m is not None
    assert h is not None
    assert counts is not None
    return {
        "raw_total": int(str(row[0])),
        "raw_heap": int(str(row[1])),
        "raw_indexes": int(str(row[2])),
        "rollup_1m_total": int(str(m[0])),
        "rollup_1h_total": int(str(h[0])),
        "rollup_1m_rows": int(str(counts[0])),
        "rollup_1h_rows": int(str(counts[1])),
    }


def _median_ms(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    fn()  # warm-up: plans cached, pages in shared buffers / the OS cache
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), times


def _one_more_minute(url: str, now: datetime, sensors: int) -> int:
    """What every maintenance run sees in steady state: the newest minute of each sensor."""
    rows: list[ReadingRow] = []
    for s in range(sensors):
        device, metric = _sensor(s)
        rows.append((now, device, metric, 1.0, 10**9 + s))
    with psycopg.connect(url) as conn:
        inserted = insert_readings(conn, rows).inserted
        conn.commit()
    return inserted


def _late_and_redelivered(url: str, now: datetime, sensors: int, start: datetime) -> int:
    """1000 late readings scattered over the past days, then a redelivered batch."""
    rng = random.Random(9)
    span = int((now - start).total_seconds()) - 120
    late: list[ReadingRow] = []
    for n in range(1000):
        device, metric = _sensor(rng.randrange(sensors))
        ts = start + timedelta(seconds=rng.randrange(span) // 60 * 60 + 30)
        late.append((ts, device, metric, rng.random(), 2 * 10**9 + n))
    with psycopg.connect(url) as conn:
        inserted = insert_readings(conn, late).inserted
        inserted += insert_readings(conn, late[:500]).inserted  # all duplicates: adds 0
        conn.commit()
    return inserted


def _chart_figures(url: str, args: argparse.Namespace, now: datetime) -> dict[str, object]:
    chart_sensors = [_sensor(s) for s in range(0, args.sensors, len(METRICS))]
    chart_sensors = chart_sensors[: args.chart_sensors]
    devices = [d for d, _ in chart_sensors]
    metric = chart_sensors[0][1]
    days = min(args.chart_days, args.days)
    chart_start = now - timedelta(days=days)
    figures: dict[str, object] = {
        "chart_sensors": len(devices),
        "chart_days": days,
        "chart_bucket": "1 hour",
    }
    # Sessions in UTC: psycopg then builds datetimes with datetime.timezone.utc, about
    # twice as fast as with a zoneinfo zone ("Etc/UTC", "Asia/Tokyo"), which matters for a
    # chart of 14 400 buckets. Both are measured; see docs/storage.md.
    for session_tz, suffix in (("UTC", ""), (None, "_server_default_timezone")):
        options = "-c TimeZone=UTC" if session_tz else ""
        with psycopg.connect(url, autocommit=True, options=options) as conn:

            def chart(resolution: Resolution | None, conn: Conn = conn) -> Series:
                return series(
                    conn,
                    device_ids=devices,
                    metric=metric,
                    start=chart_start,
                    end=now,
                    bucket=timedelta(hours=1),
                    resolution=resolution,
                )

            rollup_ms, rollup_runs = _median_ms(lambda: chart(None), args.repeat)
            figures[f"chart_over_rollups_ms{suffix}"] = round(rollup_ms, 2)
            if session_tz is None:
                continue
            rolled, raw = chart(None), chart(Resolution.RAW)
            raw_ms, raw_runs = _median_ms(lambda: chart(Resolution.RAW), max(3, args.repeat // 4))
            latest_ms, _ = _median_ms(lambda: latest(conn, within=timedelta(hours=2)), args.repeat)
            figures |= {
                "chart_resolution_chosen": rolled.resolution.value,
                "chart_points": len(rolled.points),
                "chart_over_raw_ms": round(raw_ms, 1),
                "chart_raw_over_rollups_speedup": round(raw_ms / rollup_ms, 1),
                "chart_levels_agree": _agree(rolled, raw),
                "chart_over_rollups_runs_ms": [round(t, 2) for t in rollup_runs],
                "chart_over_raw_runs_ms": [round(t, 1) for t in raw_runs],
                "latest_all_sensors_ms": round(latest_ms, 2),
                "latest_all_sensors_rows": len(latest(conn, within=timedelta(hours=2))),
                "goal_chart_under_50_ms": rollup_ms < 50,
                "goal_speedup_at_least_50x": raw_ms / rollup_ms >= 50,
            }
            figures |= _server_figures(conn, devices, metric, chart_start, now, args.repeat)
    return figures


def _server_ms(conn: Conn, query: sql.Composed | sql.SQL, params: dict[str, object]) -> float:
    """Planning plus execution time inside PostgreSQL: no transfer, no Python."""
    row = conn.execute(
        sql.SQL("EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) ") + query, params
    ).fetchone()
    assert row is not None
    plan = row[0][0]  # type: ignore[index]
    return float(plan["Planning Time"]) + float(plan["Execution Time"])


def _server_figures(
    conn: Conn, devices: list[str], metric: str, start: datetime, end: datetime, repeat: int
) -> dict[str, object]:
    """The same chart as statements inside the server, from readings_1h and from raw rows.

    The statements are the query layer's own (private, imported here on purpose), over
    the whole range, without the raw tail past the rollups.
    """
    width = timedelta(hours=1)
    params: dict[str, object] = {
        "width": width,
        "devices": devices,
        "metric": metric,
        "lo": floor_bucket(start, width),
        "hi": floor_bucket(end, width),
    }
    rollup = _SAME_WIDTH.format(rollup=sql.Identifier("readings_1h"))
    rollup_ms = statistics.median(_server_ms(conn, rollup, params) for _ in range(repeat))
    raw_ms = statistics.median(
        _server_ms(conn, _RAW_SERIES, params) for _ in range(max(3, repeat // 4))
    )
    return {
        "chart_in_server_over_rollups_ms": round(rollup_ms, 2),
        "chart_in_server_over_raw_ms": round(raw_ms, 1),
        "chart_in_server_raw_over_rollups_speedup": round(raw_ms / rollup_ms, 1),
    }


def _agree(a: Series, b: Series) -> bool:
    return len(a.points) == len(b.points) and all(
        (x.device_id, x.bucket, x.count, x.min, x.max, x.last)
        == (y.device_id, y.bucket, y.count, y.min, y.max, y.last)
        and math.isclose(x.avg, y.avg, rel_tol=1e-9)
        for x, y in zip(a.points, b.points, strict=True)
    )


def _size_figures(url: str, readings: int) -> dict[str, object]:
    sizes = _sizes(url)
    every_level = sizes["raw_total"] + sizes["rollup_1m_total"] + sizes["rollup_1h_total"]
    return {
        "raw_bytes_total": sizes["raw_total"],
        "raw_bytes_per_reading": round(sizes["raw_total"] / readings, 1),
        "raw_heap_bytes_per_reading": round(sizes["raw_heap"] / readings, 1),
        "raw_index_bytes_per_reading": round(sizes["raw_indexes"] / readings, 1),
        "rollup_1m_bytes_total": sizes["rollup_1m_total"],
        "rollup_1m_rows": sizes["rollup_1m_rows"],
        "rollup_1h_bytes_total": sizes["rollup_1h_total"],
        "rollup_1h_rows": sizes["rollup_1h_rows"],
        "all_levels_bytes_per_reading": round(every_level / readings, 1),
    }


def _timed_maintenance(url: str, label: str) -> tuple[dict[str, object], str]:
    started = time.perf_counter()
    report = run_maintenance(url, MaintenanceSettings())
    seconds = time.perf_counter() - started
    rollups = report.rollups
    return {
        f"maintenance_{label}_seconds": round(seconds, 3),
        f"maintenance_{label}_buckets_1m": rollups.buckets_1m if rollups else 0,
        f"maintenance_{label}_buckets_1h": rollups.buckets_1h if rollups else 0,
    }, report.summary()


def run(args: argparse.Namespace) -> dict[str, object]:
    say = Console(stderr=True, quiet=args.json)
    interval = timedelta(seconds=args.interval_s)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start = (now - timedelta(days=args.days)).replace(minute=0)
    name = f"mamori_bench_{uuid.uuid4().hex[:8]}"
    url = create_database(args.database_url, name)
    figures: dict[str, object] = {
        "days": args.days,
        "sensors": args.sensors,
        "interval_s": args.interval_s,
        "cpu_count": os.cpu_count(),
    }
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
            version = conn.execute("SHOW server_version").fetchone()
        figures["postgres_version"] = str(version[0]) if version else "?"
        _make_partitions(url, start, now + timedelta(days=8))

        started = time.perf_counter()
        readings = _load(url, start, now, args.sensors, interval, args.json)
        load_s = time.perf_counter() - started
        figures |= {
            "readings": readings,
            "load_seconds": round(load_s, 2),
            "load_readings_per_second": round(readings / load_s),
        }
        say.print(f"loaded {readings:,} readings in {load_s:.1f} s")
        started = time.perf_counter()
        _vacuum(url, "readings")
        figures["vacuum_analyze_raw_seconds"] = round(time.perf_counter() - started, 2)

        done, summary = _timed_maintenance(url, "initial")
        figures |= done
        say.print(f"first maintenance (builds every rollup): {summary}")
        _vacuum(url, "readings_1m", "readings_1h")
        figures |= _size_figures(url, readings)
        figures |= _chart_figures(url, args, now)

        figures["maintenance_steady_new_readings"] = _one_more_minute(url, now, args.sensors)
        done, summary = _timed_maintenance(url, "steady")
        figures |= done
        say.print(f"maintenance after one more minute: {summary}")
        figures["maintenance_late_new_readings"] = _late_and_redelivered(
            url, now, args.sensors, start
        )
        done, summary = _timed_maintenance(url, "late")
        figures |= done
        say.print(f"maintenance after late and redelivered readings: {summary}")
    finally:
        if not args.keep:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sensors", type=int, default=500)
    parser.add_argument("--interval-s", type=int, default=60)
    parser.add_argument("--chart-days", type=int, default=30)
    parser.add_argument("--chart-sensors", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--quick", action="store_true", help="7 days x 40 sensors")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args(argv)
    if args.quick:
        args.days, args.sensors = 7, 40
    figures = run(args)
    if args.json:
        print(json.dumps(figures))
        return 0
    table = Table("figure", "value", title="bench.store")
    for key, value in figures.items():
        if not key.endswith("_runs_ms"):
            table.add_row(key, str(value))
    Console().print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
