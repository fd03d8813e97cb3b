"""``mamori alerts``: run the engine, list, acknowledge and resolve alerts, replay rules.

``mamori.cli`` wires it with ``register(alerts_app)``; the group already has
``validate-config``.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from core.errors import ConfigError
from core.logs import setup_logging
from core.settings import AlertsSettings, load_settings

_console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; environment variables win over it."),
]
RulesOption = Annotated[
    Path | None,
    typer.Option("--rules", "-r", help="Rules file (default: rules_file from the settings)."),
]


def _settings(config: Path | None) -> AlertsSettings:
    settings = load_settings(AlertsSettings, config)
    setup_logging(settings.log.level, settings.log.format)
    return settings


def _rules_path(settings: AlertsSettings, rules: Path | None) -> Path:
    path = rules or settings.rules_file
    if path is None:
        raise ConfigError("no rules file: pass --rules or set MAMORI_ALERTS_RULES_FILE")
    return path


def _operator(by: str | None) -> str:
    name = by or os.environ.get("USER") or "operator"
    if not name.strip() or len(name) > 100:
        raise ConfigError("--by must name who acts (1-100 characters)")
    return name


def validate_rules(
    rules: Annotated[Path, typer.Argument(help="Rules file to check.")],
) -> None:
    """Check a rules file (and bind it to the assets it describes) without starting."""
    from alerts.evaluator import Evaluator
    from alerts.ruleset import load_rules

    rule_file = load_rules(rules)
    evaluator = Evaluator(rule_file, rule_file.assets)
    for problem in evaluator.problems:
        _console.print(f"[yellow]warning:[/] {problem}")
    _console.print(
        f"[green]{rules}: {len(rule_file.rules)} rules valid[/]"
        f" ({len(evaluator.bindings)} bindings on {len(rule_file.assets)} described assets)"
    )


def run(config: ConfigOption = None, rules: RulesOption = None) -> None:
    """Evaluate rules on live readings until interrupted."""
    import signal
    import threading

    from alerts.engine import AlertEngine
    from alerts.ruleset import load_rules
    from mamori.stack import database_url, migrate_url

    settings = _settings(config)
    rule_file = load_rules(_rules_path(settings, rules))
    stop = threading.Event()
    with database_url(settings.database) as url:
        migrate_url(url)
        engine = AlertEngine(settings, url, rule_file)

        def on_term(*_: object) -> None:
            stop.set()
            engine.request_stop()

        signal.signal(signal.SIGTERM, on_term)
        try:
            # Blocks while another instance holds the engine lease (a standby).
            if engine.start():
                while not stop.wait(1.0) and not engine.lost_lease:
                    pass
        except KeyboardInterrupt:
            pass
        finally:
            engine.stop()
    _console.print(f"alert engine stopped: {engine.stats}")
    if engine.lost_lease:
        # Another instance took over: exit non-zero so a supervisor restarts this one,
        # which then stands by.
        raise typer.Exit(code=3)


def list_alerts(
    config: ConfigOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved alerts.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List open (or all) alerts, most recently changed first."""
    from dataclasses import asdict

    from mamori.stack import database_url
    from store import alerts as q
    from store.db import connect

    settings = _settings(config)
    with database_url(settings.database) as url, connect(url) as conn:
        rows = q.list_alerts(conn, include_resolved=all_, limit=limit)
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(asdict(row), default=str, ensure_ascii=False) + "\n")
        return
    table = Table("id", "rule", "asset", "level", "state", "opened", "updated", "by")
    for row in rows:
        table.add_row(
            str(row.id),
            row.rule_id,
            row.asset_id,
            str(row.level),
            row.state,
            f"{row.opened_at:%Y-%m-%d %H:%M}",
            f"{row.updated_at:%Y-%m-%d %H:%M}",
            row.resolved_by or row.acknowledged_by or "",
        )
    _console.print(table)


def history(
    alert_id: Annotated[int, typer.Argument(min=1)],
    config: ConfigOption = None,
) -> None:
    """Every transition of one alert: who, when, from what to what."""
    from mamori.stack import database_url
    from store import alerts as q
    from store.db import connect

    settings = _settings(config)
    with database_url(settings.database) as url, connect(url) as conn:
        events = q.alert_events(conn, alert_id)
    table = Table("at", "transition", "actor", "state", "level", "note")
    for e in events:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            e.transition,
            e.actor,
            f"{e.from_state or '-'} → {e.to_state}",
            f"{e.from_level or '-'} → {e.to_level}",
            e.note or "",
        )
    _console.print(table)


def _operator_action(
    action: str,
    alert_id: int,
    by: str | None,
    note: str | None,
    config: Path | None,
    rules: Path | None,
) -> None:
    from alerts.book import AlertBook
    from alerts.ruleset import RuleFile, load_rules
    from mamori.stack import database_url
    from store import alerts as q
    from store.db import connect, translate_errors

    settings = _settings(config)
    # With the rules, a resolve also issues its CAP Cancel and webhooks.
    path = rules or settings.rules_file
    rule_file = load_rules(path) if path else None
    actor = _operator(by)
    with database_url(settings.database) as url, connect(url) as conn:
        assets = {a.id: a for a in q.load_assets(conn)}
        empty = RuleFile.model_construct(rules=[], webhooks=[])
        book = AlertBook(rule_file or empty, assets)
        with translate_errors(f"{action} alert {alert_id}"), conn.transaction():
            now = datetime.now(UTC)
            if action == "acknowledge":
                outcome = book.acknowledge(conn, alert_id, actor, now, note)
            else:
                outcome = book.resolve(conn, alert_id, actor, now, note)
    message = outcome.message
    _console.print(
        f"alert {message.alert_id} ({message.rule} on {message.asset}, level {message.level})"
        f" {message.state.value} by {actor}"
    )


def ack(
    alert_id: Annotated[int, typer.Argument(min=1)],
    by: Annotated[str | None, typer.Option(help="Who acknowledges (default $USER).")] = None,
    note: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
    config: ConfigOption = None,
    rules: RulesOption = None,
) -> None:
    """Acknowledge an open alert (stops its escalation)."""
    _operator_action("acknowledge", alert_id, by, note, config, rules)


def resolve_alert(
    alert_id: Annotated[int, typer.Argument(min=1)],
    by: Annotated[str | None, typer.Option(help="Who resolves (default $USER).")] = None,
    note: Annotated[str | None, typer.Option(help="Why, for the audit log.")] = None,
    config: ConfigOption = None,
    rules: RulesOption = None,
) -> None:
    """Resolve an alert by hand (a finding once repaired, a false alarm)."""
    _operator_action("resolve", alert_id, by, note, config, rules)


def replay(
    rules: Annotated[Path, typer.Option("--rules", "-r", help="Rules file.")],
    readings: Annotated[Path, typer.Option(help="CSV with columns time, asset, metric, value.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    cap_dir: Annotated[
        Path | None, typer.Option(help="Also write each transition's CAP 1.2 XML here.")
    ] = None,
    tick_s: Annotated[
        float, typer.Option(min=0.1, help="Clock step between readings, seconds.")
    ] = 60.0,
    tail_s: Annotated[
        float, typer.Option(min=0, help="Keep the clock running this long after the data.")
    ] = 0.0,
) -> None:
    """Run rules over a CSV of readings and print every transition."""
    from alerts.replay import Replay, format_line, read_csv
    from alerts.ruleset import load_rules

    rule_file = load_rules(rules)
    runner = Replay(rule_file, tick_s=tick_s, cap_dir=cap_dir)
    for problem in runner.problems:
        typer.echo(f"warning: {problem}", err=True)
    transitions = runner.run(read_csv(readings), tail_s=tail_s)
    for t in transitions:
        if as_json:
            sys.stdout.write(t.model_dump_json(exclude_none=True) + "\n")
        else:
            sys.stdout.write(format_line(t) + "\n")


def register(app: typer.Typer) -> None:
    """Add the alert commands to the ``mamori alerts`` group."""
    app.command("validate-rules")(validate_rules)
    app.command("run")(run)
    app.command("list")(list_alerts)
    app.command("history")(history)
    app.command("ack")(ack)
    app.command("resolve")(resolve_alert)
    app.command("replay")(replay)


__all__ = ["register"]
