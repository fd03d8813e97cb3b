"""The disaster centre's dashboards: what each shows and the SQL behind every panel.

Titles are Japanese with English, as the centre's staff and visiting engineers read them.
Colours of 警戒レベル follow the Cabinet Office's convention (Lv1 white, Lv2 yellow,
Lv3 red, Lv4 purple, Lv5 black); Lv1 is drawn grey so that it shows on a map.
"""

from __future__ import annotations

from dashboards import sql
from dashboards.model import (
    Dashboard,
    DatasourceVariable,
    Link,
    Override,
    Panel,
    PromTarget,
    QueryVariable,
    Row,
    SqlTarget,
    Step,
)

_TS = ("time", "metric", "value")

LEVEL_STEPS = (
    Step("green"),
    Step("#b0b0b0", 1),
    Step("#f2cc0c", 2),
    Step("#e02f44", 3),
    Step("#a352cc", 4),
    Step("#000000", 5),
)

_LEVEL_MAPPINGS = (
    {
        "type": "value",
        "options": {
            "0": {"text": "平常 / normal", "index": 0},
            "1": {"text": "Lv1 早期注意", "index": 1},
            "2": {"text": "Lv2 注意", "index": 2},
            "3": {"text": "Lv3 高齢者等避難", "index": 3},
            "4": {"text": "Lv4 避難指示", "index": 4},
            "5": {"text": "Lv5 緊急安全確保", "index": 5},
        },
    },
)

_STATE_MAPPINGS = (
    {
        "type": "value",
        "options": {
            "open": {"text": "発令中 / open", "color": "red", "index": 0},
            "acknowledged": {"text": "確認済 / acknowledged", "color": "orange", "index": 1},
            "none": {"text": "なし / none", "color": "green", "index": 2},
            "online": {"text": "稼働 / online", "color": "green", "index": 3},
            "silent": {"text": "無通信 / silent", "color": "orange", "index": 4},
            "offline": {"text": "停止 / offline", "color": "red", "index": 5},
            "never": {"text": "未接続 / never seen", "color": "text", "index": 6},
        },
    },
)

_TABLE_OPTIONS = {"showHeader": True, "cellHeight": "sm", "footer": {"show": False}}
_LINE = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 0, "spanNulls": True}
_BARS = {"drawStyle": "bars", "fillOpacity": 80, "lineWidth": 1}
_LEGEND = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}}


def _site() -> QueryVariable:
    return QueryVariable(
        "site",
        "地域 / Site",
        "SELECT id AS __value, coalesce(name_ja, name) || ' / ' || name AS __text "
        "FROM sites ORDER BY id",
    )


def _asset(kinds: tuple[str, ...] = ()) -> QueryVariable:
    where = "site_id IN ($site)"
    if kinds:
        where += " AND kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")"
    return QueryVariable(
        "asset",
        "施設 / Asset",
        # Grafana query text from constants, never input.
        f"SELECT id AS __value, coalesce(name_ja, name) AS __text FROM assets WHERE {where} "  # noqa: S608
        "ORDER BY id",
    )


def _stations() -> QueryVariable:
    """The river stations among the selected assets: the water-level chart repeats over
    them (a rain gauge has no water level to chart)."""
    return QueryVariable(
        "station",
        "観測所 / Station",
        "SELECT id AS __value, coalesce(name_ja, name) AS __text FROM assets "
        "WHERE id IN ($asset) AND kind = 'river_station' ORDER BY id",
    )


_LINKS = (Link("Mamori", ("mamori",)),)


def _threshold_mapping(field: str, color: str) -> dict[str, object]:
    return {
        "fieldName": field,
        "handlerKey": "threshold1",
        "handlerArguments": {"threshold": {"color": color}},
    }


# ----------------------------------------------------------------------------- overview

_ASSET_STATE = """
SELECT a.id AS asset_id,
       coalesce(a.name_ja, a.name) AS name,
       a.kind,
       a.lat AS latitude,
       a.lon AS longitude,
       coalesce(max(al.level), 0) AS level,
       CASE WHEN bool_or(al.state = 'open') THEN 'open'
            WHEN bool_or(al.state = 'acknowledged') THEN 'acknowledged'
            ELSE 'none' END AS alert_state,
       count(al.id) AS active_alerts
FROM assets AS a
LEFT JOIN alerts AS al ON al.asset_id = a.id AND al.state <> 'resolved'
WHERE a.id IN ($asset) AND a.lat IS NOT NULL AND a.lon IS NOT NULL
GROUP BY a.id
ORDER BY level DESC, a.id
"""

_ACTIVE_ALERTS = """
SELECT al.level,
       al.state,
       coalesce(a.name_ja, a.name) AS asset,
       al.title,
       al.rule_id,
       al.value,
       al.opened_at,
       al.updated_at,
       al.acknowledged_by
FROM alerts AS al
JOIN assets AS a ON a.id = al.asset_id
WHERE al.state <> 'resolved' AND al.asset_id IN ($asset)
ORDER BY al.level DESC, al.opened_at
"""

_LIVENESS_CTE = """
WITH live AS (
  SELECT d.id AS device,
         coalesce(a.name_ja, a.name, '') AS asset,
         d.kind,
         CASE WHEN d.last_seen_at IS NULL THEN 'never'
              WHEN d.state = 'offline' THEN 'offline'
              WHEN d.expected_interval_s IS NOT NULL
                   AND now() - d.last_seen_at > 3 * d.expected_interval_s * interval '1 second'
                THEN 'silent'
              ELSE 'online' END AS liveness,
         d.last_seen_at,
         extract(epoch FROM now() - d.last_seen_at) AS silent_s,
         d.expected_interval_s
  FROM devices AS d
  LEFT JOIN assets AS a ON a.id = d.asset_id
  WHERE d.site_id IN ($site) AND (d.asset_id IS NULL OR d.asset_id IN ($asset))
)"""

_LIVENESS_TABLE = (
    _LIVENESS_CTE
    + """
SELECT device, asset, kind, liveness, last_seen_at, silent_s, expected_interval_s
FROM live
ORDER BY CASE liveness WHEN 'offline' THEN 0 WHEN 'silent' THEN 1 WHEN 'never' THEN 2 ELSE 3 END,
         device
"""
)

_LIVENESS_COUNTS = (
    _LIVENESS_CTE
    + """
SELECT l.liveness, count(live.device) AS devices
FROM (VALUES ('online'), ('silent'), ('offline'), ('never')) AS l (liveness)
LEFT JOIN live ON live.liveness = l.liveness
GROUP BY l.liveness
ORDER BY l.liveness
"""
)

_ALERTS_OPENED = """
SELECT $__timeGroupAlias(al.opened_at, $__interval), 'Lv' || al.level AS metric, count(*) AS value
FROM alerts AS al
WHERE $__timeFilter(al.opened_at) AND al.asset_id IN ($asset)
GROUP BY 1, 2
ORDER BY 1
"""


def overview() -> Dashboard:
    geomap = Panel(
        "施設と警戒レベル / Assets by alert level",
        "geomap",
        (
            SqlTarget(
                "A",
                _ASSET_STATE,
                "table",
                (
                    "asset_id",
                    "name",
                    "kind",
                    "latitude",
                    "longitude",
                    "level",
                    "alert_state",
                    "active_alerts",
                ),
            ),
        ),
        width=14,
        height=14,
        description="Each asset at its place, coloured by the highest 警戒レベル of its "
        "alerts that are not resolved; larger markers have more active alerts.",
        steps=LEVEL_STEPS,
        mappings=_LEVEL_MAPPINGS + _STATE_MAPPINGS,
        options={
            "view": {"id": "fit", "lat": 34.18, "lon": 131.47, "zoom": 10, "allLayers": True},
            "controls": {"showZoom": True, "mouseWheelZoom": True, "showAttribution": True},
            "basemap": {"type": "default", "name": "Basemap", "config": {}},
            "layers": [
                {
                    "type": "markers",
                    "name": "施設 / Assets",
                    "tooltip": True,
                    "location": {
                        "mode": "coords",
                        "latitude": "latitude",
                        "longitude": "longitude",
                    },
                    "config": {
                        "showLegend": True,
                        "style": {
                            "color": {"field": "level", "fixed": "green"},
                            "size": {"field": "active_alerts", "fixed": 8, "min": 8, "max": 20},
                            "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                            "opacity": 0.9,
                            "text": {"field": "name", "mode": "field", "fixed": ""},
                            "textConfig": {"fontSize": 11, "offsetY": -14, "textAlign": "center"},
                        },
                    },
                }
            ],
            "tooltip": {"mode": "details"},
        },
    )
    state_table = Panel(
        "施設の状態 / Asset state",
        "table",
        (
            SqlTarget(
                "A",
                _ASSET_STATE,
                "table",
                geomap.sql_targets()[0].columns,
            ),
        ),
        width=10,
        height=14,
        options=_TABLE_OPTIONS,
        overrides=(
            Override(
                "^level$",
                {
                    "custom.cellOptions": {"type": "color-background"},
                    "mappings": list(_LEVEL_MAPPINGS),
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [s.to_json() for s in LEVEL_STEPS],
                    },
                },
            ),
            Override("^alert_state$", {"custom.cellOptions": {"type": "color-text"}}),
            Override("^(latitude|longitude|asset_id)$", {"custom.hidden": True}),
        ),
        mappings=_STATE_MAPPINGS,
    )
    alerts = Panel(
        "発令中の警報 / Active alerts",
        "table",
        (
            SqlTarget(
                "A",
                _ACTIVE_ALERTS,
                "table",
                (
                    "level",
                    "state",
                    "asset",
                    "title",
                    "rule_id",
                    "value",
                    "opened_at",
                    "updated_at",
                    "acknowledged_by",
                ),
            ),
        ),
        width=24,
        height=8,
        options={**_TABLE_OPTIONS, "sortBy": [{"displayName": "level", "desc": True}]},
        mappings=_LEVEL_MAPPINGS + _STATE_MAPPINGS,
        overrides=(
            Override(
                "^level$",
                {
                    "custom.cellOptions": {"type": "color-background"},
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [s.to_json() for s in LEVEL_STEPS],
                    },
                },
            ),
        ),
    )
    opened = Panel(
        "警報の発令 / Alerts opened",
        "timeseries",
        (SqlTarget("A", _ALERTS_OPENED, "time_series", _TS),),
        width=8,
        custom=_BARS,
        options=_LEGEND,
    )
    liveness_counts = Panel(
        "機器の稼働 / Device liveness",
        "stat",
        (SqlTarget("A", _LIVENESS_COUNTS, "table", ("liveness", "devices")),),
        width=8,
        description="online: heard within 3 expected intervals; silent: not heard for "
        "longer; offline: its last will said so; never: registered but never heard.",
        options={
            "reduceOptions": {"values": True, "calcs": ["lastNotNull"], "fields": "/^devices$/"},
            "textMode": "value_and_name",
            "colorMode": "background",
            "graphMode": "none",
        },
        overrides=(Override("^devices$", {"displayName": "${__data.fields.liveness}"}),),
    )
    liveness = Panel(
        "機器一覧 / Devices",
        "table",
        (
            SqlTarget(
                "A",
                _LIVENESS_TABLE,
                "table",
                (
                    "device",
                    "asset",
                    "kind",
                    "liveness",
                    "last_seen_at",
                    "silent_s",
                    "expected_interval_s",
                ),
            ),
        ),
        width=8,
        options=_TABLE_OPTIONS,
        mappings=_STATE_MAPPINGS,
        overrides=(
            Override("^liveness$", {"custom.cellOptions": {"type": "color-text"}}),
            Override("^silent_s$", {"unit": "s"}),
        ),
    )
    return Dashboard(
        uid="mamori-overview",
        title="防災センター概況 / Disaster centre overview",
        description="Where the prefecture stands now: assets on the map by 警戒レベル, the "
        "alerts in force, and which devices are heard.",
        rows=(
            Row("現況 / Now", (geomap, state_table, alerts)),
            Row("機器 / Devices", (liveness_counts, liveness, opened)),
        ),
        variables=(_site(), _asset()),
        links=_LINKS,
        refresh="30s",
        time_from="now-24h",
    )


# ------------------------------------------------------------------------------ rivers

_RIVER_THRESHOLDS = """
SELECT min((a.thresholds -> 'river_levels' ->> 'standby_m')::float8) AS standby_m,
       min((a.thresholds -> 'river_levels' ->> 'caution_m')::float8) AS caution_m,
       min((a.thresholds -> 'river_levels' ->> 'evacuation_m')::float8) AS evacuation_m,
       min((a.thresholds -> 'river_levels' ->> 'danger_m')::float8) AS danger_m,
       min((a.thresholds -> 'river_levels' ->> 'bank_m')::float8) AS bank_m
FROM assets AS a
WHERE a.id IN ($station) AND a.thresholds ? 'river_levels'
"""

_RIVER_NOW = """
WITH latest AS (
  SELECT DISTINCT ON (r.device_id) r.device_id, r.ts, r.value
  FROM readings AS r
  WHERE r.metric = 'water_level_m' AND {devices}
    AND r.ts > $__timeTo()::timestamptz - interval '1 day' AND r.ts <= $__timeTo()
  ORDER BY r.device_id, r.ts DESC
), levels AS (
  SELECT a.id, coalesce(a.name_ja, a.name) AS station, d.id AS device_id,
         (a.thresholds -> 'river_levels' ->> 'standby_m')::float8 AS standby_m,
         (a.thresholds -> 'river_levels' ->> 'caution_m')::float8 AS caution_m,
         (a.thresholds -> 'river_levels' ->> 'evacuation_m')::float8 AS evacuation_m,
         (a.thresholds -> 'river_levels' ->> 'danger_m')::float8 AS danger_m,
         (a.thresholds -> 'river_levels' ->> 'bank_m')::float8 AS bank_m
  FROM assets AS a JOIN devices AS d ON d.asset_id = a.id
  WHERE a.id IN ($asset) AND a.kind = 'river_station'
)
SELECT l.station,
       x.value AS level_m,
       CASE WHEN x.value IS NULL THEN NULL
            WHEN x.value >= l.bank_m THEN 5
            WHEN x.value >= l.danger_m THEN 4
            WHEN x.value >= l.evacuation_m THEN 3
            WHEN x.value >= l.caution_m THEN 2
            WHEN x.value >= l.standby_m THEN 1
            ELSE 0 END AS stage,
       l.standby_m, l.caution_m, l.evacuation_m, l.danger_m, l.bank_m,
       x.ts AS reading_at
FROM levels AS l
LEFT JOIN latest AS x ON x.device_id = l.device_id
ORDER BY stage DESC NULLS LAST, l.station
""".replace("{devices}", sql.devices_of_assets())

_RIVER_STAGES = (
    {
        "type": "value",
        "options": {
            "0": {"text": "平常 / normal", "index": 0},
            "1": {"text": "水防団待機水位 / stand-by", "index": 1},
            "2": {"text": "氾濫注意水位 / caution (Lv2)", "index": 2},
            "3": {"text": "避難判断水位 / evacuation (Lv3)", "index": 3},
            "4": {"text": "氾濫危険水位 / danger (Lv4)", "index": 4},
            "5": {"text": "越水 / overtopping (Lv5)", "index": 5},
        },
    },
)

_RAIN_TOTAL = """{cte}
SELECT coalesce(a.name_ja, a.name) AS gauge, sum(w.total) AS rainfall_mm
FROM w
JOIN devices AS d ON d.id = w.device_id
JOIN assets AS a ON a.id = d.asset_id
GROUP BY 1
ORDER BY 1
"""


def rivers() -> Dashboard:
    level = Panel(
        "水位 / Water level — $station",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(["water_level_m"])
                + sql.labelled("s.max")
                + "\nWHERE a.id IN ($station)\nORDER BY 1",
                "time_series",
                _TS,
            ),
            SqlTarget(
                "B",
                _RIVER_THRESHOLDS,
                "table",
                ("standby_m", "caution_m", "evacuation_m", "danger_m", "bank_m"),
            ),
        ),
        width=12,
        height=9,
        unit="lengthm",
        decimals=2,
        description="Highest level in each bucket, over the station's standard levels: "
        "水防団待機水位 (stand-by), 氾濫注意水位 (Lv2), 避難判断水位 (Lv3), 氾濫危険水位 "
        "(Lv4) and the bank (Lv5). One panel per selected station.",
        custom={**_LINE, "thresholdsStyle": {"mode": "line+area"}},
        options=_LEGEND,
        repeat="station",
        transformations=(
            {
                "id": "configFromData",
                "options": {
                    "configRefId": "B",
                    "mappings": [
                        _threshold_mapping("standby_m", "#5794f2"),
                        _threshold_mapping("caution_m", "#f2cc0c"),
                        _threshold_mapping("evacuation_m", "#e02f44"),
                        _threshold_mapping("danger_m", "#a352cc"),
                        _threshold_mapping("bank_m", "#000000"),
                    ],
                    "applyTo": {"id": "byFrameRefID", "options": "A"},
                },
            },
        ),
        steps=(Step("transparent"),),
    )
    now_table = Panel(
        "現在の水位 / Water level now",
        "table",
        (
            SqlTarget(
                "A",
                _RIVER_NOW,
                "table",
                (
                    "station",
                    "level_m",
                    "stage",
                    "standby_m",
                    "caution_m",
                    "evacuation_m",
                    "danger_m",
                    "bank_m",
                    "reading_at",
                ),
            ),
        ),
        width=24,
        height=6,
        options=_TABLE_OPTIONS,
        overrides=(
            Override(
                "^stage$",
                {
                    "custom.cellOptions": {"type": "color-background"},
                    "mappings": list(_RIVER_STAGES),
                    "thresholds": {
                        "mode": "absolute",
                        "steps": [
                            Step("green").to_json(),
                            Step("#5794f2", 1).to_json(),
                            Step("#f2cc0c", 2).to_json(),
                            Step("#e02f44", 3).to_json(),
                            Step("#a352cc", 4).to_json(),
                            Step("#000000", 5).to_json(),
                        ],
                    },
                },
            ),
            Override("_m$", {"unit": "lengthm", "decimals": 2}),
        ),
    )
    rain_1h = Panel(
        "1時間雨量 / Rainfall, last 1 h",
        "stat",
        (
            SqlTarget(
                "A",
                _RAIN_TOTAL.replace("{cte}", sql.window_total("rainfall_mm", "1 hour")),
                "table",
                ("gauge", "rainfall_mm"),
            ),
        ),
        width=6,
        unit="lengthmm",
        decimals=1,
        description="Rain fallen in the hour before the end of the time range.",
        steps=(Step("green"), Step("#f2cc0c", 20), Step("#e02f44", 50), Step("#a352cc", 80)),
        options={
            "reduceOptions": {
                "values": True,
                "calcs": ["lastNotNull"],
                "fields": "/^rainfall_mm$/",
            },
            "textMode": "value_and_name",
            "colorMode": "background",
            "graphMode": "none",
        },
        overrides=(Override("^rainfall_mm$", {"displayName": "${__data.fields.gauge}"}),),
    )
    rain_24h = Panel(
        "24時間雨量 / Rainfall, last 24 h",
        "stat",
        (
            SqlTarget(
                "A",
                _RAIN_TOTAL.replace("{cte}", sql.window_total("rainfall_mm", "24 hours")),
                "table",
                ("gauge", "rainfall_mm"),
            ),
        ),
        width=6,
        unit="lengthmm",
        decimals=1,
        description="Rain fallen in the 24 hours before the end of the time range "
        "(one-minute rollups, raw readings for the part not yet rolled up).",
        steps=(Step("green"), Step("#f2cc0c", 100), Step("#e02f44", 200), Step("#a352cc", 300)),
        options=rain_1h.options,
        overrides=rain_1h.overrides,
    )
    rain_bars = Panel(
        "雨量 (区間合計) / Rainfall per interval",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(["rainfall_mm"]) + sql.labelled("s.total") + "\nORDER BY 1",
                "time_series",
                _TS,
            ),
        ),
        width=12,
        unit="lengthmm",
        description="Rain fallen in each bucket (at least an hour: read from the rollups).",
        custom=_BARS,
        options=_LEGEND,
        min_interval="1h",
    )
    rain_cumulative = Panel(
        "累加雨量 / Cumulative rainfall",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(["rainfall_mm"])
                + sql.labelled("sum(s.total) OVER (PARTITION BY s.device_id ORDER BY s.time)")
                + "\nORDER BY 1",
                "time_series",
                _TS,
            ),
        ),
        width=12,
        unit="lengthmm",
        description="Rain fallen since the start of the time range.",
        custom={**_LINE, "fillOpacity": 10},
        options=_LEGEND,
    )
    rate = Panel(
        "雨量強度 / Rain rate",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(["rain_rate_mm_h"]) + sql.labelled("s.max") + "\nORDER BY 1",
                "time_series",
                _TS,
            ),
        ),
        width=24,
        unit="mm/h",
        custom=_LINE,
        options=_LEGEND,
        steps=(Step("green"), Step("#f2cc0c", 30), Step("#e02f44", 50), Step("#a352cc", 80)),
    )
    return Dashboard(
        uid="mamori-rivers",
        title="河川と雨量 / Rivers and rainfall",
        description="Water level at each river station against its four standard levels, "
        "and the rain that drives it.",
        rows=(
            Row("水位 / Water level", (now_table, level)),
            Row("雨量 / Rainfall", (rain_1h, rain_24h, rain_bars, rain_cumulative, rate)),
        ),
        variables=(_site(), _asset(("river_station", "rain_gauge")), _stations()),
        links=_LINKS,
    )


# ------------------------------------------------------------------------------ slopes

_SLOPE_RATE_THRESHOLDS = """
SELECT min((a.thresholds -> 'displacement_rate_mm_h' ->> 'caution')::float8) AS caution,
       min((a.thresholds -> 'displacement_rate_mm_h' ->> 'danger')::float8) AS danger
FROM assets AS a
WHERE a.id IN ($asset) AND a.kind = 'slope'
"""

_RATE = (
    "(s.last - lag(s.last) OVER (PARTITION BY s.device_id, s.metric ORDER BY s.time))"
    " / nullif(extract(epoch FROM s.time - lag(s.time) OVER "
    "(PARTITION BY s.device_id, s.metric ORDER BY s.time)) / 3600, 0)"
)


def slopes() -> Dashboard:
    def measured(metric: str, title: str, unit: str) -> Panel:
        return Panel(
            title,
            "timeseries",
            (
                SqlTarget(
                    "A",
                    sql.series([metric]) + sql.labelled("s.last") + "\nORDER BY 1",
                    "time_series",
                    _TS,
                ),
            ),
            unit=unit,
            custom=_LINE,
            options=_LEGEND,
        )

    def rate(metric: str, title: str, unit: str, thresholds: bool) -> Panel:
        targets: tuple[SqlTarget, ...] = (
            SqlTarget(
                "A",
                sql.series([metric]) + sql.labelled(_RATE) + "\nORDER BY 1",
                "time_series",
                _TS,
            ),
        )
        transformations: tuple[dict[str, object], ...] = ()
        if thresholds:
            targets += (SqlTarget("B", _SLOPE_RATE_THRESHOLDS, "table", ("caution", "danger")),)
            transformations = (
                {
                    "id": "configFromData",
                    "options": {
                        "configRefId": "B",
                        "mappings": [
                            _threshold_mapping("caution", "#f2cc0c"),
                            _threshold_mapping("danger", "#e02f44"),
                        ],
                        "applyTo": {"id": "byFrameRefID", "options": "A"},
                    },
                },
            )
        return Panel(
            title,
            "timeseries",
            targets,
            unit=unit,
            description="Change of the last value between consecutive buckets, per hour. "
            "A rate that keeps rising after the rain stopped is the warning sign.",
            custom={**_LINE, "thresholdsStyle": {"mode": "line" if thresholds else "off"}},
            options=_LEGEND,
            transformations=transformations,
            steps=(Step("transparent"),) if thresholds else (),
        )

    return Dashboard(
        uid="mamori-slopes",
        title="斜面 / Slopes",
        description="Tilt and extensometer displacement on cut slopes, with their rates.",
        rows=(
            Row(
                "変位 / Displacement",
                (
                    measured("displacement_mm", "変位量 / Displacement", "lengthmm"),
                    rate("displacement_mm", "変位速度 / Displacement rate", "mm/h", True),
                ),
            ),
            Row(
                "傾斜 / Tilt",
                (
                    measured("tilt_deg", "傾斜 / Tilt", "degree"),
                    rate("tilt_deg", "傾斜速度 / Tilt rate", "deg/h", False),
                ),
            ),
        ),
        variables=(_site(), _asset(("slope",))),
        links=_LINKS,
    )


# ----------------------------------------------------------------------------- bridges

_BRIDGE_ACCEL_THRESHOLDS = """
SELECT min((a.thresholds -> 'accel_rms_g' ->> 'caution')::float8) AS caution,
       min((a.thresholds -> 'accel_rms_g' ->> 'danger')::float8) AS danger
FROM assets AS a
WHERE a.id IN ($asset) AND a.kind = 'bridge'
"""

_FINDINGS = """
WITH graded AS (
  SELECT DISTINCT ON (i.asset_id) i.asset_id, rv.grade, rv.created_at, rv.reviewer
  FROM reviews AS rv
  JOIN images AS i ON i.id = rv.image_id
  WHERE rv.grade IS NOT NULL
  ORDER BY i.asset_id, rv.created_at DESC
), found AS (
  SELECT i.asset_id,
         count(DISTINCT i.id) AS photos,
         count(dt.id) AS findings,
         count(dt.id) FILTER (WHERE dt.damage_type = 'crack') AS cracks,
         count(dt.id) FILTER (WHERE dt.damage_type = 'spalling') AS spalling,
         count(dt.id) FILTER (WHERE dt.damage_type = 'corrosion') AS corrosion,
         count(dt.id) FILTER (WHERE dt.damage_type = 'efflorescence') AS efflorescence,
         max(dt.max_width_mm) AS max_crack_width_mm,
         max(i.captured_at) AS last_photo_at
  FROM images AS i
  LEFT JOIN detections AS dt ON dt.image_id = i.id
  GROUP BY i.asset_id
)
SELECT coalesce(a.name_ja, a.name) AS bridge,
       g.grade AS latest_grade,
       g.created_at AS graded_at,
       g.reviewer AS graded_by,
       coalesce(f.photos, 0) AS photos,
       coalesce(f.findings, 0) AS findings,
       coalesce(f.cracks, 0) AS cracks,
       coalesce(f.spalling, 0) AS spalling,
       coalesce(f.corrosion, 0) AS corrosion,
       coalesce(f.efflorescence, 0) AS efflorescence,
       f.max_crack_width_mm,
       f.last_photo_at
FROM assets AS a
LEFT JOIN graded AS g ON g.asset_id = a.id
LEFT JOIN found AS f ON f.asset_id = a.id
WHERE a.kind = 'bridge' AND a.id IN ($asset)
ORDER BY CASE g.grade WHEN 'IV' THEN 0 WHEN 'III' THEN 1 WHEN 'II' THEN 2 WHEN 'I' THEN 3
         ELSE 4 END, bridge
"""

_FINDINGS_BY_TYPE = """
SELECT $__timeGroupAlias(i.received_at, $__interval), dt.damage_type AS metric, count(*) AS value
FROM detections AS dt
JOIN images AS i ON i.id = dt.image_id
WHERE $__timeFilter(i.received_at) AND i.asset_id IN ($asset)
GROUP BY 1, 2
ORDER BY 1
"""

_GRADES = (
    {
        "type": "value",
        "options": {
            "I": {"text": "Ⅰ 健全", "color": "green", "index": 0},
            "II": {"text": "Ⅱ 予防保全段階", "color": "#f2cc0c", "index": 1},
            "III": {"text": "Ⅲ 早期措置段階", "color": "orange", "index": 2},
            "IV": {"text": "Ⅳ 緊急措置段階", "color": "red", "index": 3},
        },
    },
)


def bridges() -> Dashboard:
    vibration = Panel(
        "振動 (RMS・最大) / Vibration RMS and peak",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(["accel_rms_g", "accel_peak_g"])
                + sql.labelled(
                    "s.max",
                    label="coalesce(a.name_ja, a.name) || ' ' || s.device_id || ' ' || s.metric",
                )
                + "\nORDER BY 1",
                "time_series",
                _TS,
            ),
            SqlTarget("B", _BRIDGE_ACCEL_THRESHOLDS, "table", ("caution", "danger")),
        ),
        unit="accG",
        description="Highest window RMS and peak acceleration in each bucket. Threshold "
        "lines are the bridge's RMS limits.",
        custom={**_LINE, "thresholdsStyle": {"mode": "line"}},
        options=_LEGEND,
        overrides=(
            Override("accel_peak_g$", {"custom.lineStyle": {"fill": "dash", "dash": [6, 4]}}),
        ),
        transformations=(
            {
                "id": "configFromData",
                "options": {
                    "configRefId": "B",
                    "mappings": [
                        _threshold_mapping("caution", "#f2cc0c"),
                        _threshold_mapping("danger", "#e02f44"),
                    ],
                    "applyTo": {"id": "byFrameRefID", "options": "A"},
                },
            },
        ),
        steps=(Step("transparent"),),
    )
    strain = Panel(
        "ひずみ / Strain",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(["strain_ue"]) + sql.labelled("s.avg") + "\nORDER BY 1",
                "time_series",
                _TS,
            ),
        ),
        unit="none",
        description="Mean strain per bucket, in micro-strain (µε).",
        custom=_LINE,
        options=_LEGEND,
    )
    findings = Panel(
        "橋ごとの損傷と健全性 / Findings and latest grade per bridge",
        "table",
        (
            SqlTarget(
                "A",
                _FINDINGS,
                "table",
                (
                    "bridge",
                    "latest_grade",
                    "graded_at",
                    "graded_by",
                    "photos",
                    "findings",
                    "cracks",
                    "spalling",
                    "corrosion",
                    "efflorescence",
                    "max_crack_width_mm",
                    "last_photo_at",
                ),
            ),
        ),
        width=24,
        height=7,
        description="Soundness grades (Ⅰ–Ⅳ, MLIT 道路橋定期点検要領) are an engineer's "
        "decision on the review page; findings are what the models flagged on every photo.",
        options=_TABLE_OPTIONS,
        mappings=_GRADES,
        overrides=(
            Override("^latest_grade$", {"custom.cellOptions": {"type": "color-background"}}),
            Override("^max_crack_width_mm$", {"unit": "lengthmm", "decimals": 2}),
        ),
    )
    by_type = Panel(
        "損傷の検出 / Findings by damage type",
        "timeseries",
        (SqlTarget("A", _FINDINGS_BY_TYPE, "time_series", _TS),),
        width=24,
        custom=_BARS,
        options=_LEGEND,
        description="Detections on photos received in each bucket, by damage type.",
    )
    return Dashboard(
        uid="mamori-bridges",
        title="橋梁 / Bridges",
        description="Vibration and strain from the bridges' sensors, and what inspections "
        "found with the latest soundness grade.",
        rows=(
            Row("モニタリング / Monitoring", (vibration, strain)),
            Row("点検 / Inspection", (findings, by_type)),
        ),
        variables=(_site(), _asset(("bridge",))),
        links=_LINKS,
        time_from="now-6h",
    )


# ------------------------------------------------------------------------------ health

_DEAD_LETTERS = """
SELECT $__timeGroupAlias(received_at, $__interval), reason AS metric, count(*) AS value
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1
"""

_DEAD_LETTERS_OPEN = """
SELECT reason,
       count(*) FILTER (WHERE redriven_at IS NULL) AS open,
       count(*) FILTER (WHERE redrive_result = 'stored') AS redriven,
       count(*) AS total,
       max(received_at) AS last_at
FROM dead_letters
WHERE $__timeFilter(received_at)
GROUP BY reason
ORDER BY open DESC, reason
"""

_QUEUE = """
SELECT s.status, count(i.id) AS images,
       extract(epoch FROM now() - min(i.status_changed_at)) AS oldest_s
FROM (VALUES ('pending'), ('processing'), ('flagged'), ('failed'), ('clear'), ('done'))
     AS s (status)
LEFT JOIN images AS i ON i.status = s.status
GROUP BY s.status
ORDER BY array_position(
    ARRAY['pending', 'processing', 'flagged', 'failed', 'clear', 'done'], s.status)
"""

_QUEUE_IN = """
SELECT $__timeGroupAlias(received_at, $__interval), status AS metric, count(*) AS value
FROM images
WHERE $__timeFilter(received_at)
GROUP BY 1, 2
ORDER BY 1
"""

_ROLLUP_LAG = """
SELECT l.level,
       mamori_rollups_complete_through(l.level) AS complete_through,
       extract(epoch FROM now() - mamori_rollups_complete_through(l.level)) AS lag_s
FROM (VALUES ('1m'), ('1h')) AS l (level)
"""

_ALERT_ENGINE = """
SELECT l.name AS engine, l.holder AS instance, l.acquired_at AS active_since,
       extract(epoch FROM l.expires_at - now()) AS lease_left_s,
       CASE WHEN l.expires_at > now() THEN 'active' ELSE 'down' END AS state
FROM alert_engine_lease AS l
ORDER BY l.name
"""

_ENGINE_MAPPINGS = (
    {
        "type": "value",
        "options": {
            "active": {"text": "稼働 / active", "color": "green", "index": 0},
            "down": {"text": "停止 / down", "color": "red", "index": 1},
        },
    },
)


def health() -> Dashboard:
    per_minute = Panel(
        "受信データ数 / Readings per minute",
        "timeseries",
        (
            SqlTarget(
                "A",
                sql.series(
                    [
                        "water_level_m",
                        "rainfall_mm",
                        "rain_rate_mm_h",
                        "tilt_deg",
                        "displacement_mm",
                        "accel_rms_g",
                        "accel_peak_g",
                        "strain_ue",
                        "battery_v",
                        "temperature_c",
                    ]
                )
                + """
SELECT s.time AS "time", s.metric AS metric,
       sum(s.count) / (extract(epoch FROM min(s.step)) / 60) AS value
FROM s
GROUP BY 1, 2
ORDER BY 1""",
                "time_series",
                _TS,
            ),
        ),
        width=12,
        unit="short",
        description="Readings stored per minute by measurement time, from the rollups for "
        "long ranges.",
        custom={**_LINE, "stacking": {"mode": "normal", "group": "A"}, "fillOpacity": 30},
        options=_LEGEND,
    )
    dead = Panel(
        "デッドレター (理由別) / Dead letters per reason",
        "timeseries",
        (SqlTarget("A", _DEAD_LETTERS, "time_series", _TS),),
        width=12,
        custom=_BARS,
        options=_LEGEND,
        description="Messages that failed validation, by reason. `mamori ingest "
        "dead-letters --redrive` stores those that pass after a fix.",
    )
    dead_table = Panel(
        "未処理のデッドレター / Open dead letters",
        "table",
        (
            SqlTarget(
                "A", _DEAD_LETTERS_OPEN, "table", ("reason", "open", "redriven", "total", "last_at")
            ),
        ),
        width=12,
        height=6,
        options=_TABLE_OPTIONS,
    )
    rollups = Panel(
        "集計の遅れ / Rollup lag",
        "table",
        (SqlTarget("A", _ROLLUP_LAG, "table", ("level", "complete_through", "lag_s")),),
        width=12,
        height=6,
        description="How far the plain-PostgreSQL rollups trail the clock (`mamori db "
        "maintain` refreshes them); empty on TimescaleDB, whose aggregates are real-time.",
        options=_TABLE_OPTIONS,
        overrides=(Override("^lag_s$", {"unit": "s"}),),
    )
    engine = Panel(
        "警報エンジン / Alert engine",
        "table",
        (
            SqlTarget(
                "A",
                _ALERT_ENGINE,
                "table",
                ("engine", "instance", "active_since", "lease_left_s", "state"),
            ),
        ),
        width=12,
        height=6,
        description="Which instance evaluates the rules, and for how much longer its lease "
        "holds. 'down': no instance renewed it (stopped, crashed, or cut off from the "
        "database); a standby takes over within the lease time. No alert can be raised "
        "while every engine is down.",
        options=_TABLE_OPTIONS,
        overrides=(
            Override("^lease_left_s$", {"unit": "s", "decimals": 0}),
            Override(
                "^state$",
                {
                    "mappings": list(_ENGINE_MAPPINGS),
                    "custom.cellOptions": {"type": "color-background"},
                },
            ),
        ),
    )
    queue = Panel(
        "点検キュー / Inspection queue",
        "table",
        (SqlTarget("A", _QUEUE, "table", ("status", "images", "oldest_s")),),
        width=12,
        options=_TABLE_OPTIONS,
        overrides=(Override("^oldest_s$", {"unit": "s"}),),
        description="Photos by status; oldest_s is how long the oldest has been in it.",
    )
    queue_in = Panel(
        "写真の受信 / Photos received by status",
        "timeseries",
        (SqlTarget("A", _QUEUE_IN, "time_series", _TS),),
        width=12,
        custom={**_BARS, "stacking": {"mode": "normal", "group": "A"}},
        options=_LEGEND,
    )

    def prom(title: str, expr: str, legend: str, unit: str) -> Panel:
        return Panel(
            title,
            "timeseries",
            (PromTarget("A", expr, legend),),
            width=8,
            unit=unit,
            custom=_LINE,
            options=_LEGEND,
            source="prometheus",
            description="From Prometheus scraping each ingest replica's metrics port; "
            "empty when no Prometheus datasource is configured.",
        )

    prometheus = (
        prom(
            "取込メッセージ / Ingest messages",
            "sum by (instance) (rate(mamori_ingest_messages_total[$__rate_interval]))",
            "{{instance}}",
            "reqps",
        ),
        prom(
            "保存行数 / Rows stored",
            "sum by (instance) (rate(mamori_ingest_rows_inserted_total[$__rate_interval]))",
            "{{instance}}",
            "rowsps",
        ),
        prom(
            "デッドレター / Dead letters (Prometheus)",
            "sum by (reason) (rate(mamori_ingest_dead_letters_total[$__rate_interval]))",
            "{{reason}}",
            "reqps",
        ),
        prom(
            "未確認メッセージ / In flight",
            "sum by (instance) (mamori_ingest_in_flight)",
            "{{instance}}",
            "short",
        ),
        prom(
            "コミット時間 / Last commit latency",
            "max by (instance) (mamori_ingest_last_flush_seconds)",
            "{{instance}}",
            "s",
        ),
        prom(
            "重複 / Duplicates dropped",
            "sum by (instance) (rate(mamori_ingest_rows_duplicate_total[$__rate_interval]))",
            "{{instance}}",
            "rowsps",
        ),
    )
    return Dashboard(
        uid="mamori-health",
        title="システム稼働状況 / System health",
        description="Is Mamori itself healthy: ingest throughput and dead letters, rollup "
        "lag, the alert engine, and the inspection queue.",
        rows=(
            Row("取込 / Ingest (database)", (per_minute, dead, dead_table, rollups)),
            Row("警報 / Alerting", (engine,)),
            Row("点検 / Inspection queue", (queue, queue_in)),
            Row("取込 / Ingest (Prometheus)", prometheus),
        ),
        variables=(
            _site(),
            _asset(),
            DatasourceVariable("prometheus", "Prometheus", "prometheus"),
        ),
        links=_LINKS,
        time_from="now-6h",
    )


def all_dashboards() -> tuple[Dashboard, ...]:
    return (overview(), rivers(), slopes(), bridges(), health())
