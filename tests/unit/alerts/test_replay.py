"""``mamori alerts replay``: a heavy-rain CSV through the demo's rules."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from alerts.replay import Replay, parse_csv
from alerts.ruleset import load_rules
from core.errors import ConfigError
from mamori.commands.alerts import register
from tests.unit.alerts.cap_schema import cap_errors

EXAMPLE = Path(__file__).resolve().parents[3] / "alerts" / "rules" / "yamaguchi.yaml"
T0 = datetime(2026, 7, 1, tzinfo=UTC)


def flood_csv(path: Path) -> Path:
    """Ohdoi rises through every standard level to the bank and falls back."""
    lines = ["time,asset,metric,value"]
    profile = [1.0 + 0.05 * i for i in range(75)] + [4.7 - 0.05 * i for i in range(80)]
    for i, level in enumerate(profile):
        at = T0 + timedelta(minutes=2 * i)
        lines.append(f"{at.isoformat()},fushino-ohdoi,water_level_m,{level:.3f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_replay_raises_and_lowers_alert_levels(tmp_path: Path) -> None:
    rules = load_rules(EXAMPLE)
    readings = list(parse_csv(flood_csv(tmp_path / "flood.csv").read_text().splitlines()))
    transitions = Replay(rules, cap_dir=tmp_path / "cap").run(readings)
    river = [(t.transition, t.level) for t in transitions if t.rule == "river-level"]
    changes = [(name, level) for name, level in river if name != "renotified"]
    assert changes == [
        ("opened", 2),
        ("raised", 3),
        ("raised", 4),
        ("raised", 5),
        ("lowered", 4),
        ("lowered", 3),
        ("lowered", 2),
        ("resolved", 2),
    ]
    assert len({t.alert for t in transitions if t.rule == "river-level"}) == 1
    # Nobody acknowledged: the rule's escalation notified again in between.
    assert any(t.transition == "renotified" and t.rule == "river-level" for t in transitions)
    files = sorted((tmp_path / "cap").iterdir())
    assert files
    for file in files:
        assert cap_errors(file.read_bytes()) == [], file.name
    last = files[-1].read_text(encoding="utf-8")
    assert "<msgType>Cancel</msgType>" in last or "<msgType>Update</msgType>" in last


def test_cli_prints_lines_and_json(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    csv = flood_csv(tmp_path / "flood.csv")
    runner = CliRunner()
    result = runner.invoke(app, ["replay", "--rules", str(EXAMPLE), "--readings", str(csv)])
    assert result.exit_code == 0, result.output
    assert "fushino-ohdoi river-level level=2 open (opened, alert" in result.output
    result = runner.invoke(
        app,
        [
            "replay",
            "--rules",
            str(EXAMPLE),
            "--readings",
            str(csv),
            "--json",
            "--cap-dir",
            str(tmp_path / "caps"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {"time", "asset", "rule", "level", "state"} <= set(rows[0])
    assert rows[0]["cap"].endswith(".xml")
    assert len(list((tmp_path / "caps").iterdir())) >= 5


def test_cli_validate_rules(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["validate-rules", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert "12 rules valid" in result.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate-rules", str(bad)])
    assert isinstance(result.exception, ConfigError)


def test_csv_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="missing columns metric"):
        list(parse_csv(["time,asset,value"]))
    with pytest.raises(ConfigError, match="line 2"):
        list(parse_csv(["time,asset,metric,value", "yesterday,a,m,1"]))
    with pytest.raises(ConfigError, match="no UTC offset"):
        list(parse_csv(["time,asset,metric,value", "2026-07-01T00:00:00,a,m,1"]))
    rules = load_rules(EXAMPLE)
    unknown = list(parse_csv(["time,asset,metric,value", "2026-07-01T00:00:00+09:00,zz,m,1"]))
    with pytest.raises(ConfigError, match="not described under 'assets:'"):
        Replay(rules).run(unknown)
