"""The committed dashboards are what the generator makes, and hold together."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from dashboards.build import JSON_DIR, differing, generated_files
from dashboards.catalog import all_dashboards
from dashboards.macros import (
    MacroError,
    QueryContext,
    VariableValue,
    expand,
    format_interval,
    parse_interval,
)
from dashboards.model import PromTarget, QueryVariable
from ingest.metrics import IngestCollector
from ingest.service import IngestStats
from mamori.commands.dashboards import register


def test_committed_files_equal_the_generator() -> None:
    assert differing() == [], "run `mamori dashboards build` and commit the result"


def test_build_check_command_agrees() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["build", "--check"])
    assert result.exit_code == 0, result.output


def test_build_check_fails_for_another_datasource_uid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAMORI_DASHBOARDS_DATASOURCE_UID", "other-postgres")
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["build", "--check"])
    assert result.exit_code == 1


def _panels(document: dict[str, object]) -> Iterator[dict[str, object]]:
    panels = document["panels"]
    assert isinstance(panels, list)
    for panel in panels:
        yield panel
        yield from panel.get("panels", [])


def _documents() -> list[dict[str, object]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(JSON_DIR.glob("*.json"))]


def test_every_committed_sql_query_is_one_the_tests_know() -> None:
    """The integration tests run the model's targets; none may hide only in the JSON."""
    known = {
        (d.uid, t.ref_id, t.sql.strip())
        for d in all_dashboards()
        for p in d.panels()
        for t in p.sql_targets()
    }
    seen = set()
    for document in _documents():
        for panel in _panels(document):
            for target in panel.get("targets", []):  # type: ignore[attr-defined]
                if "rawSql" in target:
                    key = (document["uid"], target["refId"], target["rawSql"])
                    assert key in known, f"{document['uid']} {panel['title']}"
                    seen.add(key)
    assert seen == known


def test_dashboards_are_well_formed() -> None:
    documents = _documents()
    assert len(documents) == 5
    assert len({d["uid"] for d in documents}) == 5
    for document in documents:
        title = document["title"]
        assert isinstance(title, str)
        assert " / " in title
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", title), "a Japanese title"
        ids = [p["id"] for p in _panels(document)]
        assert len(ids) == len(set(ids))
        names = [v["name"] for v in document["templating"]["list"]]  # type: ignore[index]
        assert names[:2] == ["site", "asset"]
        for panel in _panels(document):
            grid = panel["gridPos"]
            assert isinstance(grid, dict)
            assert grid["x"] + grid["w"] <= 24
            if panel["type"] != "row":
                title = panel["title"]
                assert isinstance(title, str), title
                assert " / " in title, title


def test_long_range_series_read_the_rollups() -> None:
    for dashboard in all_dashboards():
        for panel in dashboard.panels():
            for target in panel.sql_targets():
                text = target.sql
                raw = "FROM readings AS r" in text and "$__timeFilter(r.ts)" in text
                if raw and "readings_1m" not in text:
                    # Only windows of at most an hour or "the latest value" read raw.
                    assert "interval '1 hour'" in target.sql or "DISTINCT ON" in target.sql, (
                        panel.title
                    )


def test_prometheus_panels_name_metrics_ingest_exports() -> None:
    class _Service:
        stats = IngestStats(dead_letters_by_reason={"invalid": 1})

        def in_flight(self) -> int:
            return 0

    exported: set[str] = set()
    for family in IngestCollector(_Service()).collect():  # type: ignore[arg-type]
        exported.update(sample.name for sample in family.samples)
    queried = set()
    for dashboard in all_dashboards():
        for panel in dashboard.panels():
            for target in panel.targets:
                if isinstance(target, PromTarget):
                    queried.update(re.findall(r"\bmamori_[a-z_]+", target.expr))
    assert queried, "the health dashboard shows ingest's Prometheus metrics"
    assert queried <= exported, queried - exported


# ----------------------------------------------------------------- the macro expander

_START = datetime(2026, 7, 1, 0, 0, tzinfo=UTC)
_END = datetime(2026, 7, 1, 6, 30, 15, 250000, tzinfo=UTC)


def _ctx(**variables: VariableValue) -> QueryContext:
    return QueryContext(_START, _END, timedelta(minutes=1), variables)


def test_time_macros_as_grafana_writes_them() -> None:
    text = expand(
        "SELECT $__timeGroupAlias(ts, $__interval), v FROM t "
        "WHERE $__timeFilter(ts) AND ts < $__timeTo() AND ts > $__timeFrom() "
        "AND $__interval_ms > 0 AND $__unixEpochFrom() < $__unixEpochTo()",
        _ctx(),
    )
    assert text == (
        "SELECT time_bucket('60s',ts) AS \"time\", v FROM t "
        "WHERE ts BETWEEN '2026-07-01T00:00:00Z' AND '2026-07-01T06:30:15.25Z' "
        "AND ts < '2026-07-01T06:30:15.25Z' AND ts > '2026-07-01T00:00:00Z' "
        "AND 60000 > 0 AND 1782864000 < 1782887415"
    )


def test_time_group_without_timescaledb_is_epoch_arithmetic() -> None:
    ctx = QueryContext(_START, _END, timedelta(hours=1), timescaledb=False)
    assert expand("$__timeGroup(ts, $__interval)", ctx) == "floor(extract(epoch from ts)/3600)*3600"
    assert expand("$__timeGroup(ts, '5m')", ctx) == "floor(extract(epoch from ts)/300)*300"


@pytest.mark.parametrize(
    ("interval", "text"),
    [
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=30), "30s"),
        (timedelta(seconds=90), "1m"),
        (timedelta(hours=2), "2h"),
        (timedelta(days=1), "1d"),
        (timedelta(days=400), "1y"),
    ],
)
def test_interval_format_matches_grafana(interval: timedelta, text: str) -> None:
    assert format_interval(interval) == text
    assert parse_interval(text) <= interval


def test_variables_quote_like_grafana_sql_datasources() -> None:
    multi = VariableValue(("a", "o'brien"))
    every = VariableValue((), selected_all=True, all_values=("x", "y"))
    single = VariableValue(("raw",), multi=False, include_all=False)
    text = expand(
        "IN ($site) IN (${asset}) IN ([[site]]) $one ${site:csv}",
        _ctx(site=multi, asset=every, one=single),
    )
    assert text == "IN ('a','o''brien') IN ('x','y') IN ('a','o''brien') raw a,o'brien"


def test_unknown_variables_and_macros_are_errors() -> None:
    with pytest.raises(MacroError, match="not defined"):
        expand("WHERE a IN ($nobody)", _ctx())
    with pytest.raises(MacroError, match="timeFilterX"):
        expand("WHERE $__timeFilterX(ts)", _ctx())
    # Grafana's pattern stops at the first ")": nested parentheses break the macro.
    with pytest.raises(MacroError):
        expand("WHERE $__timeGroup(date_trunc('hour', ts), 1h)", _ctx())


def test_every_variable_query_and_panel_expands() -> None:
    for dashboard in all_dashboards():
        variables = {
            v.name: VariableValue(("x",))
            for v in dashboard.variables
            if isinstance(v, QueryVariable)
        }
        for v in dashboard.variables:
            if isinstance(v, QueryVariable):
                expand(v.sql, _ctx(**variables))
        for panel in dashboard.panels():
            for target in panel.sql_targets():
                assert "$" not in expand(target.sql, _ctx(**variables)).replace("$__", "")


def test_generated_files_live_in_the_package() -> None:
    here = Path(__file__).resolve().parents[3] / "dashboards"
    for generated in generated_files():
        assert generated.path.is_relative_to(here)
