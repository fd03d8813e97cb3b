"""``mamori demo``: the whole walking skeleton on one machine.

Embedded PostgreSQL (or the URL given), a broker (Mosquitto if installed, else amqtt),
migrations, the ingest service and the simulated Yamaguchi fleet replaying a heavy-rain
event; then a summary checked against the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg import conninfo
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.settings import DatabaseSettings, DemoSettings, IngestSettings, MqttSettings
from core.topics import Topics
from edge_agent.fleet import Fleet, FleetRunner, yamaguchi_fleet
from ingest.service import IngestService
from mamori.broker import BrokerInfo, EmbeddedBroker, MosquittoBroker
from mamori.broker_auth import PasswordFile, mosquitto_auth_config, new_password, render_acl
from mamori.stack import database_url, migrate_url, register
from store.db import connect

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    devices: int
    messages_published: int
    readings_published: int
    readings_stored: int
    dead_letters: int
    faults_injected: int
    broker: str
    database: str
    data_dir: str | None
    duration_s: float

    @property
    def lost(self) -> int:
        return self.readings_published - self.readings_stored


def run_demo(settings: DemoSettings, *, duration_s: float, console: Console) -> DemoSummary:
    work_dir = settings.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    database = settings.database
    if database.url is None:
        database = database.model_copy(update={"embedded_dir": work_dir / "pgdata"})
    started_at = datetime.now(UTC)
    console.print("[bold]Mamori demo[/]: 山口県 椹野川 heavy rain, replayed")
    with database_url(database) as url:
        console.print(f"  database  {_safe(url)}  ({migrate_url(url)} migrations applied)")
        fleet = yamaguchi_fleet()
        register(url, fleet.site, fleet.assets, [d.spec for d in fleet.devices])
        broker_proc: MosquittoBroker | EmbeddedBroker | None = None
        passwords: dict[str, str] = {}
        if settings.mqtt_host:
            info = BrokerInfo("external", settings.mqtt_host, settings.mqtt_port, "5")
        elif MosquittoBroker.available():
            # Per-device credentials and ACLs, as in production.
            passwords, auth = _provision(work_dir / "mosquitto", fleet)
            broker_proc = MosquittoBroker(work_dir / "mosquitto", auth=auth)
            info = broker_proc.start()
        else:
            broker_proc = EmbeddedBroker()
            info = broker_proc.start()
        secured = "per-device credentials and ACLs" if passwords else "no authentication"
        console.print(
            f"  broker    {info.kind} on {info.host}:{info.port} (MQTT {info.protocol}, {secured})"
        )
        mqtt = MqttSettings(host=info.host, port=info.port, protocol=info.protocol)
        ingest_mqtt = mqtt
        if passwords:
            ingest_mqtt = mqtt.model_copy(
                update={
                    "username": "mamori-ingest",
                    "password": SecretStr(passwords["mamori-ingest"]),
                }
            )
        ingest = IngestService(
            IngestSettings(
                mqtt=ingest_mqtt,
                client_id="mamori-demo-ingest",
                database=DatabaseSettings(url=SecretStr(url)),
            ),
            url,
        )
        # Replay the 18-hour event within the run, whatever its length.
        runner = FleetRunner(
            fleet, mqtt, speed=18 * 3600 / max(duration_s, 1.0), passwords=passwords
        )
        try:
            ingest.start()
            runner.start()
            _show_progress(console, runner, ingest, duration_s)
        finally:
            runner.stop()
            ingest.wait_idle(30)
            ingest.stop()
            if broker_proc is not None:
                broker_proc.stop()
        stored, letters = _count(url, [d.spec.id for d in fleet.devices], started_at)
        return DemoSummary(
            devices=len(fleet.devices),
            messages_published=runner.stats.messages_published,
            readings_published=runner.stats.readings_published,
            readings_stored=stored,
            dead_letters=letters,
            faults_injected=runner.stats.faults_injected,
            broker=f"{info.kind} {info.host}:{info.port}",
            database=_safe(url),
            data_dir=str(database.embedded_dir) if settings.database.url is None else None,
            duration_s=(datetime.now(UTC) - started_at).total_seconds(),
        )


def _provision(directory: Path, fleet: Fleet) -> tuple[dict[str, str], str]:
    """Fresh passwords for every device and for ingest, and the ACL that confines them."""
    directory.mkdir(parents=True, exist_ok=True)
    passwords = {d.spec.id: new_password() for d in fleet.devices}
    passwords["mamori-ingest"] = new_password()
    password_file = PasswordFile(directory / "passwd")
    for user, password in passwords.items():
        password_file.set(user, password)
    password_file.save()
    acl = directory / "acl"
    acl.write_text(render_acl(Topics("mamori"), {d.spec.id: fleet.site.id for d in fleet.devices}))
    return passwords, mosquitto_auth_config(directory / "passwd", acl)


def _show_progress(
    console: Console, runner: FleetRunner, ingest: IngestService, duration_s: float
) -> None:
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    deadline = time.monotonic() + duration_s
    try:
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task("replaying", total=duration_s, status="")
            while (left := deadline - time.monotonic()) > 0:
                progress.update(
                    task,
                    completed=duration_s - left,
                    status=(
                        f"event hour {runner.scenario_hours():4.1f}  "
                        f"published {runner.stats.readings_published}  "
                        f"stored {ingest.stats.rows_inserted}  "
                        f"dead letters {ingest.stats.dead_letters}"
                    ),
                )
                time.sleep(min(0.25, left))
            progress.update(task, completed=duration_s)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping devices, flushing ingest[/]")


def _count(url: str, devices: list[str], since: datetime) -> tuple[int, int]:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE device_id = ANY(%s) AND received_at >= %s",
            (devices, since),
        ).fetchone()
        letters = conn.execute(
            "SELECT count(*) FROM dead_letters WHERE received_at >= %s", (since,)
        ).fetchone()
    return int(str(row[0])) if row else 0, int(str(letters[0])) if letters else 0


def _safe(url: str) -> str:
    info = conninfo.conninfo_to_dict(url)
    info.pop("password", None)
    return conninfo.make_conninfo("", **{k: v for k, v in info.items() if v is not None})


def print_summary(console: Console, summary: DemoSummary) -> None:
    table = Table(title="Mamori demo summary", show_header=False)
    table.add_row("devices", str(summary.devices))
    table.add_row("messages published", str(summary.messages_published))
    table.add_row("readings published", str(summary.readings_published))
    table.add_row("readings stored", str(summary.readings_stored))
    table.add_row("readings lost", str(summary.lost))
    table.add_row(
        "dead letters", f"{summary.dead_letters} ({summary.faults_injected} faults injected)"
    )
    table.add_row("broker", summary.broker)
    table.add_row("database", summary.database)
    if summary.data_dir:
        table.add_row("data directory", summary.data_dir)
    table.add_row("wall time", f"{summary.duration_s:.1f} s")
    console.print(table)
    if summary.data_dir:
        console.print(
            f"The embedded database stopped with the demo; its data stays in {summary.data_dir} "
            "and the next `mamori demo` starts it again."
        )
    else:
        console.print(
            f'Look at the data: psql "{summary.database}" -c '  # noqa: S608  a hint, not a query
            "'SELECT device_id, metric, count(*), max(value) FROM readings GROUP BY 1, 2'"
        )
    # A machine-readable line for scripts and the tests.
    console.print(
        "SUMMARY "
        f"devices={summary.devices} readings_published={summary.readings_published} "
        f"readings_stored={summary.readings_stored} dead_letters={summary.dead_letters}",
        highlight=False,
        soft_wrap=True,
    )


__all__ = ["DemoSummary", "print_summary", "run_demo"]
