"""A small typed model of the Grafana dashboard JSON that Mamori needs, and its rendering.

Why not grafana-foundation-sdk: its PyPI release is generated for Grafana 10.1 only and
has no query type for the PostgreSQL datasource, which is every query Mamori writes; the
part of the JSON model used here is small and stable (schemaVersion 39, Grafana 10.4 to
12), so a few frozen dataclasses keep the generated JSON exact and reviewable.

Each SQL target carries the columns its panel needs (:attr:`SqlTarget.columns`): they are
not part of Grafana's model, they are what the integration tests check every query
returns against real PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

#: Grafana 11 renamed the core PostgreSQL datasource plugin from ``postgres``.
POSTGRES_TYPE = "grafana-postgresql-datasource"
PROMETHEUS_TYPE = "prometheus"
SCHEMA_VERSION = 39

Json = dict[str, object]
Format = Literal["time_series", "table"]


@dataclass(frozen=True, slots=True)
class DatasourceRef:
    type: str
    uid: str

    def to_json(self) -> Json:
        return {"type": self.type, "uid": self.uid}


@dataclass(frozen=True, slots=True)
class SqlTarget:
    """A raw SQL query; only Grafana macros and template variables are interpolated."""

    ref_id: str
    sql: str
    format: Format
    #: Columns the panel reads. For ``time_series`` a ``time`` column comes first.
    columns: tuple[str, ...]
    #: The demo data must make this query return rows (a chart that is empty on the
    #: demo is usually a wrong join, not missing data).
    expect_rows: bool = True

    def to_json(self, datasource: DatasourceRef) -> Json:
        return {
            "refId": self.ref_id,
            "datasource": datasource.to_json(),
            "editorMode": "code",
            "format": self.format,
            "rawQuery": True,
            "rawSql": self.sql.strip(),
        }


@dataclass(frozen=True, slots=True)
class PromTarget:
    ref_id: str
    expr: str
    legend: str = ""

    def to_json(self, datasource: DatasourceRef) -> Json:
        return {
            "refId": self.ref_id,
            "datasource": datasource.to_json(),
            "editorMode": "code",
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "range": True,
        }


Target = SqlTarget | PromTarget


@dataclass(frozen=True, slots=True)
class Step:
    """One threshold step: from ``value`` upwards (``None`` is the base, -∞)."""

    color: str
    value: float | None = None

    def to_json(self) -> Json:
        return {"color": self.color, "value": self.value}


@dataclass(frozen=True, slots=True)
class Override:
    """Field overrides for the fields whose name matches ``matcher`` (a regex)."""

    matcher: str
    properties: Mapping[str, object]

    def to_json(self) -> Json:
        return {
            "matcher": {"id": "byRegexp", "options": self.matcher},
            "properties": [{"id": k, "value": v} for k, v in self.properties.items()],
        }


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    kind: str
    targets: tuple[Target, ...]
    width: int = 12
    height: int = 8
    description: str = ""
    unit: str | None = None
    decimals: int | None = None
    steps: tuple[Step, ...] = ()
    custom: Mapping[str, object] = field(default_factory=dict)
    options: Mapping[str, object] = field(default_factory=dict)
    overrides: tuple[Override, ...] = ()
    mappings: tuple[Mapping[str, object], ...] = ()
    transformations: tuple[Mapping[str, object], ...] = ()
    #: Repeat the panel for each selected value of this template variable.
    repeat: str | None = None
    #: Grafana's lower limit for ``$__interval`` on this panel (e.g. ``"1m"``).
    min_interval: str | None = None
    #: ``prometheus`` panels read the Prometheus datasource variable, others PostgreSQL.
    source: Literal["postgres", "prometheus"] = "postgres"

    def sql_targets(self) -> tuple[SqlTarget, ...]:
        return tuple(t for t in self.targets if isinstance(t, SqlTarget))


@dataclass(frozen=True, slots=True)
class Row:
    title: str
    panels: tuple[Panel, ...]


@dataclass(frozen=True, slots=True)
class QueryVariable:
    """A template variable filled by a SQL query (``__value`` / ``__text`` columns)."""

    name: str
    label: str
    sql: str
    multi: bool = True
    include_all: bool = True
    #: Columns the query returns, checked like a panel's.
    columns: tuple[str, ...] = ("__value", "__text")


@dataclass(frozen=True, slots=True)
class DatasourceVariable:
    """Lets a panel use whichever datasource of ``plugin`` the Grafana has (or none)."""

    name: str
    label: str
    plugin: str
    regex: str = ""


Variable = QueryVariable | DatasourceVariable


@dataclass(frozen=True, slots=True)
class Link:
    title: str
    tags: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: tuple[Row, ...]
    variables: tuple[Variable, ...]
    tags: tuple[str, ...] = ("mamori",)
    time_from: str = "now-24h"
    refresh: str = "1m"
    links: tuple[Link, ...] = ()

    def panels(self) -> list[Panel]:
        return [panel for row in self.rows for panel in row.panels]


_GRID_WIDTH = 24


def render(dashboard: Dashboard, postgres: DatasourceRef) -> Json:
    """The dashboard JSON Grafana imports. Deterministic: ids and positions follow order."""
    panels: list[Json] = []
    next_id = 1
    y = 0
    for row in dashboard.rows:
        panels.append(
            {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": _GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel in row.panels:
            if x + panel.width > _GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel(panel, next_id, x, y, postgres))
            next_id += 1
            x += panel.width
            row_height = max(row_height, panel.height)
        y += row_height
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": list(dashboard.tags),
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "refresh": dashboard.refresh,
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [_builtin_annotations()]},
        "links": [
            {
                "title": link.title,
                "type": "dashboards",
                "tags": list(link.tags),
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
            }
            for link in dashboard.links
        ],
        "templating": {"list": [_variable(v, postgres) for v in dashboard.variables]},
        "panels": panels,
    }


def _builtin_annotations() -> Json:
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def _datasource_for(panel: Panel, postgres: DatasourceRef) -> DatasourceRef:
    if panel.source == "prometheus":
        return DatasourceRef(PROMETHEUS_TYPE, "${prometheus}")
    return postgres


def _panel(panel: Panel, panel_id: int, x: int, y: int, postgres: DatasourceRef) -> Json:
    datasource = _datasource_for(panel, postgres)
    defaults: Json = {"custom": dict(panel.custom), "mappings": [dict(m) for m in panel.mappings]}
    if panel.unit is not None:
        defaults["unit"] = panel.unit
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    steps = panel.steps or (Step("green"),)
    defaults["thresholds"] = {"mode": "absolute", "steps": [s.to_json() for s in steps]}
    body: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": datasource.to_json(),
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": [o.to_json() for o in panel.overrides]},
        "options": dict(panel.options),
        "targets": [t.to_json(datasource) for t in panel.targets],
        "transformations": [dict(t) for t in panel.transformations],
    }
    if panel.repeat is not None:
        body["repeat"] = panel.repeat
        body["repeatDirection"] = "h"
        body["maxPerRow"] = 2
    if panel.min_interval is not None:
        body["interval"] = panel.min_interval
    return body


def _variable(variable: Variable, postgres: DatasourceRef) -> Json:
    if isinstance(variable, DatasourceVariable):
        return {
            "name": variable.name,
            "label": variable.label,
            "type": "datasource",
            "query": variable.plugin,
            "regex": variable.regex,
            "current": {},
            "hide": 0,
            "includeAll": False,
            "multi": False,
            "options": [],
            "refresh": 1,
            "skipUrlSync": False,
        }
    return {
        "name": variable.name,
        "label": variable.label,
        "type": "query",
        "datasource": postgres.to_json(),
        "definition": variable.sql.strip(),
        "query": variable.sql.strip(),
        # Open on "All": the centre sees everything until someone narrows it down.
        "current": (
            {"selected": True, "text": ["All"], "value": ["$__all"]} if variable.include_all else {}
        ),
        "hide": 0,
        "includeAll": variable.include_all,
        "multi": variable.multi,
        "options": [],
        # 2: refresh when the time range changes, so new assets and devices appear.
        "refresh": 2,
        "regex": "",
        "skipUrlSync": False,
        "sort": 1,
    }
