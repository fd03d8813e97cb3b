"""Every panel's SQL, expanded as Grafana expands it, runs against real PostgreSQL holding
the Yamaguchi demo and returns the columns its panel reads.

Each dashboard runs over five time ranges whose intervals (as Grafana would pick them)
send the series to raw readings, the one-minute and the one-hour rollups, and with the
template variables at "All" and at a single site and asset.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from dashboards import sql
from dashboards.catalog import all_dashboards
from dashboards.macros import QueryContext, VariableValue, expand
from dashboards.model import Dashboard, DatasourceVariable, QueryVariable
from tests.integration.dashboards.demo_data import Demo, seed
from tests.support import migrated_database

Conn = psycopg.Connection[tuple[object, ...]]


@dataclass(frozen=True)
class Seeded:
    conn: Conn
    demo: Demo


@pytest.fixture(scope="module")
def dashboards_url(pg_admin_url: str) -> Iterator[str]:
    """A database of this module's own: the panels count every reading in it, so rows
    that other test modules leave in the session database must not be there."""
    with migrated_database(pg_admin_url, "mamori_dash") as url:
        yield url


@pytest.fixture(scope="module")
def seeded(dashboards_url: str) -> Iterator[Seeded]:
    conn = psycopg.connect(dashboards_url)
    try:
        demo = seed(conn)
        yield Seeded(conn, demo)
    finally:
        conn.rollback()
        conn.close()


#: (name, range, interval as Grafana would choose it for a ~1000 px panel)
RANGES = {
    "1h-raw": (timedelta(hours=1), timedelta(seconds=5)),
    "24h-1m": (timedelta(hours=24), timedelta(minutes=1)),
    "7d-1m": (timedelta(days=7), timedelta(minutes=10)),
    "30d-1h": (timedelta(days=30), timedelta(hours=1)),
    "1y-1h": (timedelta(days=365), timedelta(days=1)),
}

DASHBOARDS = {d.uid: d for d in all_dashboards()}


def _run(conn: Conn, text: str) -> tuple[list[str], list[tuple[object, ...]]]:
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(text.encode())
        names = [c.name for c in cur.description or []]
        return names, cur.fetchall()


def resolve_variables(
    conn: Conn, dashboard: Dashboard, base: QueryContext, mode: str, demo: Demo
) -> dict[str, VariableValue]:
    """Fill the variables in order, each from its own query, as Grafana does."""
    values: dict[str, VariableValue] = {}
    for variable in dashboard.variables:
        if isinstance(variable, DatasourceVariable):
            continue
        assert isinstance(variable, QueryVariable)
        ctx = QueryContext(base.start, base.end, base.interval, values)
        names, rows = _run(conn, expand(variable.sql, ctx))
        assert tuple(names) == variable.columns, f"variable {variable.name}: {names}"
        options = tuple(str(r[0]) for r in rows)
        assert options, f"variable {variable.name} has no options on the demo"
        if mode == "all":
            values[variable.name] = VariableValue(
                (), variable.multi, variable.include_all, selected_all=True, all_values=options
            )
        else:
            # The demo's own site and first asset, whatever other tests left behind.
            mine = demo.site_ids if variable.name == "site" else demo.asset_ids
            pick = next((o for o in options if o in mine), options[0])
            assert pick in options
            values[variable.name] = VariableValue((pick,), variable.multi, variable.include_all)
    return values


def _check_time_series(names: list[str], rows: list[tuple[object, ...]]) -> None:
    assert names[0] == "time"
    times = [r[0] for r in rows]
    assert all(isinstance(t, datetime) for t in times), "time must be a timestamptz"
    # Grafana turns long frames into wide ones only when time ascends.
    assert times == sorted(times), "rows must be ordered by time"  # type: ignore[type-var]
    for row in rows:
        assert isinstance(row[1], str), f"metric must be text, got {row[1]!r}"
        assert row[2] is None or isinstance(row[2], int | float | Decimal)


@pytest.mark.parametrize("mode", ["all", "one"])
@pytest.mark.parametrize("range_name", list(RANGES))
@pytest.mark.parametrize("uid", list(DASHBOARDS))
def test_every_panel_query_runs_and_returns_its_columns(
    seeded: Seeded, uid: str, range_name: str, mode: str
) -> None:
    dashboard = DASHBOARDS[uid]
    span, interval = RANGES[range_name]
    end = seeded.demo.now + timedelta(seconds=1)
    base = QueryContext(end - span, end, interval)
    variables = resolve_variables(seeded.conn, dashboard, base, mode, seeded.demo)
    failures: list[str] = []
    checked = 0
    for panel in dashboard.panels():
        for target in panel.sql_targets():
            interval_here = max(interval, _min_interval(panel.min_interval))
            ctx = QueryContext(base.start, base.end, interval_here, variables)
            text = expand(target.sql, ctx)
            where = f"{panel.title} [{target.ref_id}]"
            try:
                names, rows = _run(seeded.conn, text)
            except psycopg.Error as exc:
                failures.append(f"{where}: {exc}\n{text}")
                continue
            checked += 1
            if tuple(names) != target.columns:
                failures.append(f"{where}: columns {names}, expected {list(target.columns)}")
                continue
            if target.format == "time_series":
                try:
                    _check_time_series(names, rows)
                except AssertionError as exc:
                    failures.append(f"{where}: {exc}")
            if mode == "all" and target.expect_rows and not rows:
                failures.append(f"{where}: no rows on the demo data")
    assert not failures, "\n\n".join(failures)
    assert checked == sum(len(p.sql_targets()) for p in dashboard.panels())


def _min_interval(text: str | None) -> timedelta:
    if text is None:
        return timedelta(0)
    from dashboards.macros import parse_interval

    return parse_interval(text)


def _count_through_series(conn: Conn, ctx: QueryContext) -> int:
    metrics = ["water_level_m", "rainfall_mm", "rain_rate_mm_h", "tilt_deg", "displacement_mm"]
    metrics += ["accel_rms_g", "accel_peak_g", "strain_ue"]
    text = expand(sql.series(metrics) + "\nSELECT coalesce(sum(count), 0)::bigint FROM s", ctx)
    _, rows = _run(conn, text)
    value = rows[0][0]
    assert isinstance(value, int)
    return value


@pytest.mark.parametrize(
    "interval",
    [timedelta(seconds=10), timedelta(minutes=5), timedelta(hours=1), timedelta(hours=6)],
    ids=["raw", "1m", "1h", "6h"],
)
def test_each_level_counts_every_reading_once(seeded: Seeded, interval: timedelta) -> None:
    """The rollups, and raw rows past the rollup watermark, add up to the raw readings."""
    conn, demo = seeded.conn, seeded.demo
    # Whole hours, so every level's buckets start inside the range.
    start = demo.now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=47)
    end = demo.now + timedelta(seconds=1)
    with conn.transaction(force_rollback=True):
        # As if maintenance last ran 10 minutes ago: the newest buckets come from raw rows.
        conn.execute(
            "UPDATE rollup_watermarks SET received_through = %s",
            (demo.now - timedelta(minutes=10),),
        )
        base = QueryContext(start, end, interval)
        ctx = QueryContext(
            start,
            end,
            interval,
            resolve_variables(conn, DASHBOARDS["mamori-health"], base, "all", demo),
        )
        raw = conn.execute(
            "SELECT count(*) FROM readings WHERE ts BETWEEN %s AND %s AND device_id = ANY(%s)",
            (start, end, list(demo.device_ids)),
        ).fetchone()
        assert raw is not None
        assert _count_through_series(conn, ctx) == raw[0]
