"""Expands a panel's SQL the way Grafana's PostgreSQL datasource does, so tests can run it.

The order follows Grafana (``public/app/features/templating/template_srv.ts`` in the
browser, then ``pkg/tsdb/grafana-postgresql-datasource``'s ``sqleng`` and ``macros.go``
in the server):

1. Template variables, in the browser. A variable that is multi-value or has "All" is
   quoted as SQL literals (``'a','b'``, a quote doubled); a single-value variable
   without either goes in raw. "All" without a custom all-value means every option.
   ``$name``, ``${name}``, ``${name:format}`` and ``[[name]]`` are understood.
2. ``$__interval_ms``, ``$__interval`` (Grafana's short form: ``30s``, ``1m``, ``2h``,
   ``1d``), ``$__unixEpochFrom()`` and ``$__unixEpochTo()``: plain replacements.
3. Macros ``$__name(args)``, with Grafana's pattern: the arguments end at the first
   ``)``, so an argument may not contain parentheses (Grafana would break too).

``$__timeGroup`` writes ``time_bucket('<seconds>s', col)`` when the datasource has
``timescaledb: true`` (the provisioning sets it: plain PostgreSQL gets a compatible
``time_bucket`` from the migrations), and ``floor(extract(epoch from col)/s)*s``
otherwise, exactly as Grafana.

Only what the dashboards use, and what Grafana would reject, is implemented; an unknown
macro raises :class:`MacroError` rather than passing through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta


class MacroError(ValueError):
    """The SQL uses a macro or variable that Grafana would not expand."""


@dataclass(frozen=True, slots=True)
class VariableValue:
    """What a template variable holds when the query runs.

    ``values`` are the selected values; ``all_values`` the variable's options, used when
    ``selected_all`` is true (Grafana's "All" without a custom all-value).
    """

    values: tuple[str, ...]
    multi: bool = True
    include_all: bool = True
    selected_all: bool = False
    all_values: tuple[str, ...] = ()

    def chosen(self) -> tuple[str, ...]:
        return self.all_values if self.selected_all else self.values


@dataclass(frozen=True, slots=True)
class QueryContext:
    start: datetime
    end: datetime
    interval: timedelta
    variables: Mapping[str, VariableValue] = field(default_factory=dict)
    timescaledb: bool = True

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise MacroError("the time range must be timezone-aware")
        if self.interval <= timedelta(0):
            raise MacroError("the interval must be positive")


def format_interval(interval: timedelta) -> str:
    """Grafana's ``gtime.FormatInterval``: the largest whole unit, truncated."""
    ms = interval // timedelta(milliseconds=1)
    for unit, size in (
        ("y", 365 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


_INTERVAL = re.compile(r"^(\d+)(ms|s|m|h|d|w|y)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def parse_interval(text: str) -> timedelta:
    """Grafana's ``gtime.ParseInterval`` for the forms :func:`format_interval` writes."""
    match = _INTERVAL.match(text.strip())
    if match is None:
        raise MacroError(f"not an interval Grafana understands: {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_S[match.group(2)])


def _rfc3339(at: datetime) -> str:
    """Go's ``time.RFC3339Nano`` of the UTC time (trailing zeros of the fraction dropped)."""
    at = at.astimezone(UTC)
    text = at.strftime("%Y-%m-%dT%H:%M:%S")
    if at.microsecond:
        text += "." + f"{at.microsecond:06d}".rstrip("0")
    return text + "Z"


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_VARIABLE = re.compile(
    r"\$(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<format>[A-Za-z]+))?\}"
    r"|\[\[(?P<old>[A-Za-z_][A-Za-z0-9_]*)\]\]"
)


def _format(variable: VariableValue, fmt: str | None) -> str:
    values = variable.chosen()
    if fmt in {None, ""}:
        if variable.multi or variable.include_all:
            return ",".join(quote_literal(v) for v in values)
        return values[0] if values else ""
    if fmt == "raw":
        return ",".join(values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "singlequote":
        return ",".join(quote_literal(v) for v in values)
    if fmt == "sqlstring":
        return ",".join(quote_literal(v) for v in values)
    raise MacroError(f"variable format {fmt!r} is not supported here")


def interpolate_variables(sql: str, variables: Mapping[str, VariableValue]) -> str:
    """Step 1: template variables. Grafana's own ``$__...`` names are left alone."""

    def replace(match: re.Match[str]) -> str:
        name = match.group("plain") or match.group("braced") or match.group("old")
        if name.startswith("__"):
            return match.group(0)
        if name not in variables:
            raise MacroError(f"template variable ${name} is not defined")
        return _format(variables[name], match.group("format"))

    return _VARIABLE.sub(replace, sql)


def _interpolate_builtins(sql: str, ctx: QueryContext) -> str:
    """Step 2, as ``sqleng.Interpolate``: order matters (``_ms`` before the bare name)."""
    ms = ctx.interval // timedelta(milliseconds=1)
    sql = sql.replace("$__interval_ms", str(ms))
    sql = sql.replace("$__interval", format_interval(ctx.interval))
    sql = sql.replace("$__unixEpochFrom()", str(math.floor(ctx.start.timestamp())))
    return sql.replace("$__unixEpochTo()", str(math.floor(ctx.end.timestamp())))


_MACRO = re.compile(r"\$__([_a-zA-Z0-9]+)\(([^\)]*)\)")


def _args(raw: str) -> list[str]:
    return [a.strip() for a in raw.split(",")] if raw.strip() else []


def _need(name: str, args: Sequence[str], count: int) -> None:
    if len(args) < count:
        raise MacroError(f"macro {name} needs {count} argument(s), got {len(args)}")


def _time_group(args: Sequence[str], ctx: QueryContext) -> str:
    _need("__timeGroup", args, 2)
    seconds = parse_interval(args[1].strip("'\"")).total_seconds()
    if ctx.timescaledb:
        return f"time_bucket('{seconds:.0f}s',{args[0]})"
    return f"floor(extract(epoch from {args[0]})/{seconds:g})*{seconds:g}"


def _expand_macro(name: str, args: list[str], ctx: QueryContext) -> str:  # noqa: PLR0911  one per macro, like Grafana's switch
    start, end = _rfc3339(ctx.start), _rfc3339(ctx.end)
    match name:
        case "time":
            _need(name, args, 1)
            return f'{args[0]} AS "time"'
        case "timeEpoch":
            _need(name, args, 1)
            return f'extract(epoch from {args[0]}) as "time"'
        case "timeFilter":
            _need(name, args, 1)
            return f"{args[0]} BETWEEN '{start}' AND '{end}'"
        case "timeFrom":
            return f"'{start}'"
        case "timeTo":
            return f"'{end}'"
        case "timeGroup":
            return _time_group(args, ctx)
        case "timeGroupAlias":
            return _time_group(args, ctx) + ' AS "time"'
        case "unixEpochFilter":
            _need(name, args, 1)
            return (
                f"{args[0]} >= {math.floor(ctx.start.timestamp())} "
                f"AND {args[0]} <= {math.floor(ctx.end.timestamp())}"
            )
        case _:
            raise MacroError(f"macro $__{name} is not one Mamori's dashboards may use")


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL Grafana would send to PostgreSQL for ``sql`` in ``ctx``."""
    sql = interpolate_variables(sql, ctx.variables)
    sql = _interpolate_builtins(sql, ctx)
    sql = _MACRO.sub(lambda m: _expand_macro(m.group(1), _args(m.group(2)), ctx), sql)
    leftover = re.search(r"\$__\w+", sql)
    if leftover is not None:
        raise MacroError(f"{leftover.group(0)} was left unexpanded")
    return sql
