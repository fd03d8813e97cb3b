"""``mamori db maintain`` and the scheduler services run: the jobs end to end, committed."""

from __future__ import annotations

import json
import time

import pytest
import typer
from typer.testing import CliRunner

from core.retention import MaintenanceSettings
from mamori.commands import db as db_commands
from store.db import Flavour
from store.maintenance import MaintenanceScheduler, run_maintenance


def test_run_maintenance_reports_every_job(database_url: str) -> None:
    report = run_maintenance(database_url, MaintenanceSettings())
    assert report.flavour is Flavour.PLAIN
    assert report.rollups is not None
    assert report.expiry is not None
    assert not report.skipped_busy
    assert set(report.seconds) == {"partitions", "rollups", "expiry"}
    assert "buckets recomputed" in report.summary()
    json.dumps(report.as_dict())


def test_maintain_command_prints_a_json_report(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = typer.Typer()
    db_commands.register(group)

    @group.callback()
    def _db() -> None:
        """Stands for the `mamori db` group."""

    monkeypatch.setenv("MAMORI_DB_DATABASE__URL", database_url)
    result = CliRunner().invoke(group, ["maintain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["flavour"] == "plain"
    assert {"buckets_1m", "buckets_1h", "partitions_dropped", "seconds"} <= set(report)


def test_scheduler_runs_until_stopped(database_url: str) -> None:
    scheduler = MaintenanceScheduler(database_url, MaintenanceSettings(interval_s=3600))
    scheduler.start()
    deadline = time.monotonic() + 60
    while scheduler.runs == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.stop(timeout=60)
    assert (scheduler.runs, scheduler.failures) == (1, 0)
    assert scheduler.last_report is not None


def test_a_failed_run_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    scheduler = MaintenanceScheduler(
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", MaintenanceSettings()
    )
    assert scheduler.run_once() is None
    assert scheduler.failures == 1
    assert "store maintenance failed" in caplog.text
