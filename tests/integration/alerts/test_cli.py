"""``mamori alerts list / ack / resolve / history`` against a real PostgreSQL."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from alerts.book import AlertBook
from alerts.evaluator import Decision
from alerts.ruleset import parse_rules
from mamori.commands.alerts import register
from store import alerts as q
from tests.integration.alerts.helpers import RULES, T0, register_fleet


def test_list_ack_resolve_history(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = register_fleet(database_url)
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(RULES, encoding="utf-8")
    with psycopg.connect(database_url) as conn:
        book = AlertBook(parse_rules(RULES), {a.id: a for a in q.load_assets(conn)})
        outcome = book.apply(conn, Decision("river-level", fleet.station, T0, 0, 3, 3.0, True))
        book.apply(
            conn, Decision("river-level", fleet.station, T0 + timedelta(minutes=1), 3, 4, 3.5, True)
        )
        conn.commit()
    assert outcome is not None
    alert_id = outcome.message.alert_id
    monkeypatch.setenv("MAMORI_ALERTS_DATABASE__URL", database_url)
    monkeypatch.setenv("MAMORI_ALERTS_RULES_FILE", str(rules_file))
    app = typer.Typer()
    register(app)
    runner = CliRunner()

    listed = runner.invoke(app, ["list", "--json", "--limit", "1000"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    mine = [r for r in rows if r["asset_id"] == fleet.station]
    assert [(r["id"], r["level"], r["state"]) for r in mine] == [(alert_id, 4, "open")]

    acked = runner.invoke(app, ["ack", str(alert_id), "--by", "tanaka", "--note", "on it"])
    assert acked.exit_code == 0, acked.output
    assert "acknowledged by tanaka" in acked.output
    again = runner.invoke(app, ["ack", str(alert_id), "--by", "tanaka"])
    assert again.exit_code != 0  # only open alerts can be acknowledged

    resolved = runner.invoke(app, ["resolve", str(alert_id), "--by", "suzuki"])
    assert resolved.exit_code == 0, resolved.output

    history = runner.invoke(app, ["history", str(alert_id)])
    assert history.exit_code == 0, history.output
    for word in ("opened", "raised", "acknowledged", "tanaka", "resolved", "suzuki"):
        assert word in history.output
    with psycopg.connect(database_url) as conn:
        caps = q.cap_messages(conn, alert_id)
    assert [c.msg_type for c in caps] == ["Alert", "Update", "Cancel"]
