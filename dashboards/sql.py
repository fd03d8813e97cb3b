"""SQL fragments the panels share: the bucketed series that reads the right rollup level.

Every fragment is built from constants in this package; user input reaches a query only
through Grafana's macros and template variables (``$__timeFilter``, ``$asset``, ...),
which Grafana quotes. Nothing here is formatted with a value from outside.

How a series chooses its level
    Grafana sets ``$__interval_ms`` from the time range and the panel's width. A series
    reads ``readings_1h`` when the bucket is an hour or more, ``readings_1m`` when it is a
    minute or more, and raw ``readings`` only below a minute (short ranges). Each choice
    is a ``UNION ALL`` branch guarded by a comparison of two constants, which PostgreSQL
    folds when it plans the query, so the branches not taken cost nothing.

Plain PostgreSQL versus TimescaleDB
    On plain PostgreSQL the rollup tables are refreshed by ``mamori db maintain``;
    ``mamori_rollups_complete_through(level)`` says how far. Buckets before that point
    (on the panel's own bucket grid) come from the rollup, the rest from raw rows, so a
    chart is current to the last reading. On TimescaleDB the function returns NULL (the
    continuous aggregates are real-time) and the raw tail branch reads nothing.
"""

# S608 flags f-strings that look like SQL. These build Grafana query text from this
# module's constants (never from input) and are never executed by Python.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Sequence

#: The panel's bucket: Grafana's interval, never below a second.
STEP = "(greatest($__interval_ms, 1000) * interval '1 millisecond')"
_STEP_1H = f"date_trunc('hour', {STEP})"
_STEP_1M = f"date_trunc('minute', {STEP})"

#: Columns of :func:`series`'s ``s`` relation.
SERIES_COLUMNS = ("time", "device_id", "metric", "min", "max", "avg", "last", "count", "total")


def devices_of_assets(column: str = "r.device_id") -> str:
    """``column`` names a device on one of the selected assets."""
    return f"{column} IN (SELECT d.id FROM devices AS d WHERE d.asset_id IN ($asset))"


def _metric_list(metrics: Sequence[str]) -> str:
    for name in metrics:
        if not name.replace("_", "").isalnum():
            raise ValueError(f"not a metric name: {name!r}")
    return ", ".join(f"'{name}'" for name in metrics)


def _rollup_branch(table: str, level: str, step: str, guard: str, metrics: str) -> str:
    return f"""
  SELECT time_bucket({step}, r.bucket) AS time, r.device_id, r.metric,
         min(r.min) AS min, max(r.max) AS max,
         sum(r.avg * r.count) / sum(r.count) AS avg,
         (array_agg(r.last ORDER BY r.bucket DESC))[1] AS last,
         sum(r.count)::bigint AS count, sum(r.avg * r.count) AS total,
         {step} AS step
  FROM {table} AS r
  WHERE {guard} AND $__timeFilter(r.bucket)
    AND r.metric IN ({metrics}) AND {devices_of_assets()}
    AND r.bucket < coalesce(
        time_bucket({step}, mamori_rollups_complete_through('{level}')), 'infinity')
  GROUP BY 1, 2, 3"""


def _raw_branch(step: str, guard: str, metrics: str) -> str:
    return f"""
  SELECT time_bucket({step}, r.ts) AS time, r.device_id, r.metric,
         min(r.value) AS min, max(r.value) AS max, avg(r.value) AS avg,
         (array_agg(r.value ORDER BY r.ts DESC))[1] AS last,
         count(*) AS count, sum(r.value) AS total,
         {step} AS step
  FROM readings AS r
  WHERE {guard} AND $__timeFilter(r.ts)
    AND r.metric IN ({metrics}) AND {devices_of_assets()}
  GROUP BY 1, 2, 3"""


def series(metrics: Sequence[str]) -> str:
    """A ``WITH s AS (...)`` clause: one row per bucket, device and metric.

    Columns: ``time`` (bucket start), ``device_id``, ``metric``, ``min``, ``max``,
    ``avg``, ``last`` (value at the latest reading), ``count`` (readings), ``total``
    (sum of values: rainfall per bucket), ``step`` (the bucket width actually used).
    """
    names = _metric_list(metrics)
    hour, minute = "$__interval_ms >= 3600000", "$__interval_ms >= 60000"
    branches = (
        _rollup_branch("readings_1h", "1h", _STEP_1H, hour, names),
        _raw_branch(
            _STEP_1H,
            f"{hour} AND r.ts >= time_bucket({_STEP_1H}, mamori_rollups_complete_through('1h'))",
            names,
        ),
        _rollup_branch("readings_1m", "1m", _STEP_1M, f"{minute} AND NOT {hour}", names),
        _raw_branch(
            _STEP_1M,
            f"{minute} AND NOT {hour} AND r.ts >= time_bucket({_STEP_1M}, "
            "mamori_rollups_complete_through('1m'))",
            names,
        ),
        _raw_branch(STEP, f"NOT {minute}", names),
    )
    return "WITH s AS (" + "\n  UNION ALL".join(branches) + "\n)"


def labelled(value: str, *, label: str | None = None) -> str:
    """A time series query over ``s``: ``time``, ``metric`` (the legend), ``value``."""
    legend = label or "coalesce(a.name_ja, a.name) || ' ' || s.device_id"
    return f"""
SELECT s.time AS "time", {legend} AS metric, {value} AS value
FROM s
JOIN devices AS d ON d.id = s.device_id
JOIN assets AS a ON a.id = d.asset_id"""


def window_total(metric: str, window: str) -> str:
    """Per device, the sum of ``metric`` over ``window`` ending at the range's end.

    Whole minutes before the rollup watermark come from ``readings_1m``, the rest from
    raw rows; a one-hour window reads raw rows only.
    """
    name = _metric_list([metric])
    end = "$__timeTo()::timestamptz"
    cut = (
        "coalesce(time_bucket(interval '1 minute', "
        "mamori_rollups_complete_through('1m')), 'infinity')"
    )
    return f"""
WITH w AS (
  SELECT r.device_id, sum(r.avg * r.count) AS total
  FROM readings_1m AS r
  WHERE r.metric = {name} AND {devices_of_assets()}
    AND r.bucket >= {end} - interval '{window}' AND r.bucket < {end}
    AND r.bucket < {cut}
    AND interval '{window}' > interval '1 hour'
  GROUP BY 1
  UNION ALL
  SELECT r.device_id, sum(r.value) AS total
  FROM readings AS r
  WHERE r.metric = {name} AND {devices_of_assets()}
    AND r.ts > {end} - interval '{window}' AND r.ts <= {end}
    AND (interval '{window}' <= interval '1 hour' OR r.ts >= {cut})
  GROUP BY 1
)"""
