"""The ``mamori`` command. Settings are built here, in ``main()``, and passed down."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import SecretStr
from rich.console import Console

from core.errors import ConfigError, MamoriError
from core.logs import setup_logging
from core.settings import (
    AlertsSettings,
    ApiSettings,
    DashboardsSettings,
    DbSettings,
    DemoSettings,
    EdgeSettings,
    IngestSettings,
    MamoriSettings,
    load_settings,
)
from inspection_models.settings import InspectionSettings
from mamori.commands import alerts as alerts_commands
from mamori.commands import api as api_commands
from mamori.commands import dashboards as dashboards_commands
from mamori.commands import db as db_commands
from mamori.commands import inspect as inspect_commands

app = typer.Typer(
    help="Mamori (守り): watches public infrastructure and warns before disasters.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
_console = Console()
_err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML settings file; environment variables win over it."),
]
_S = TypeVar("_S", bound=MamoriSettings)


def _load(cls: type[_S], config: Path | None) -> _S:
    settings = load_settings(cls, config)
    setup_logging(settings.log.level, settings.log.format)
    return settings


def _validate(cls: type[MamoriSettings], config: Path | None) -> None:
    settings = load_settings(cls, config)
    _console.print_json(json.dumps(settings.redacted()))
    if isinstance(settings, AlertsSettings) and settings.rules_file is not None:
        from alerts.ruleset import load_rules

        rules = load_rules(settings.rules_file)
        _console.print(f"[green]{settings.rules_file}: {len(rules.rules)} rules valid[/]")
    _console.print(f"[green]{cls.__name__} is valid[/]")


def _group(name: str, help_text: str, settings_cls: type[MamoriSettings]) -> typer.Typer:
    group = typer.Typer(help=help_text, no_args_is_help=True)

    @group.command("validate-config")
    def validate_config(config: ConfigOption = None) -> None:
        """Check the settings (file and environment) without starting anything."""
        _validate(settings_cls, config)

    app.add_typer(group, name=name)
    return group


db_app = _group("db", "Database: migrations and maintenance.", DbSettings)
ingest_app = _group("ingest", "MQTT → PostgreSQL ingest service.", IngestSettings)
edge_app = _group("edge", "Device-side agent.", EdgeSettings)
inspect_app = _group("inspect", "Damage detection on photos.", InspectionSettings)
alerts_app = _group("alerts", "Alert rules and the alert engine.", AlertsSettings)
api_app = _group("api", "HTTP API and the inspectors' review page.", ApiSettings)
dashboards_app = _group("dashboards", "Grafana dashboards as code.", DashboardsSettings)
# Each service's own commands live beside the CLI, one module per group; their heavy
# imports happen inside the commands, so a device install can still run `mamori edge`.
db_commands.register(db_app)
inspect_commands.register(inspect_app)
alerts_commands.register(alerts_app)
api_commands.register(api_app)
dashboards_commands.register(dashboards_app)
inspect_app.command("export-reviewed")(api_commands.export_reviewed_command)


broker_app = typer.Typer(
    help="Mosquitto credentials and ACLs from the device registry.", no_args_is_help=True
)
app.add_typer(broker_app, name="broker")


@broker_app.command("acl")
def broker_acl(
    out: Annotated[Path, typer.Option(help="Where to write the Mosquitto acl_file.")],
    config: ConfigOption = None,
    topic_prefix: Annotated[str, typer.Option()] = "mamori",
) -> None:
    """Write the ACL confining each registered device to its own topics."""
    from core.topics import Topics
    from mamori.broker_auth import render_acl
    from mamori.stack import database_url
    from store.db import connect
    from store.registry import device_sites

    settings = _load(DbSettings, config)
    with database_url(settings.database) as url, connect(url) as conn:
        devices = device_sites(conn)
    out.write_text(render_acl(Topics(topic_prefix), devices), encoding="utf-8")
    _console.print(f"{out}: {len(devices)} devices and the service accounts")


@broker_app.command("passwd")
def broker_passwd(
    username: Annotated[str, typer.Argument(help="A device id or a service account.")],
    password_file: Annotated[Path, typer.Option("--file", help="Mosquitto password_file.")],
) -> None:
    """Give USERNAME a new random password; prints it once (store it on the device)."""
    from mamori.broker_auth import PasswordFile, new_password

    passwords = PasswordFile(password_file)
    password = new_password()
    passwords.set(username, password)
    passwords.save()
    _console.print(f"{username}: {password}")
    _err.print("Reload Mosquitto (kill -HUP) for the change to take effect.")


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="Seconds to run the fleet.", min=1)] = 60.0,
    config: ConfigOption = None,
    database_url: Annotated[
        str | None, typer.Option(help="Use this PostgreSQL instead of the embedded one.")
    ] = None,
    mqtt_host: Annotated[
        str | None, typer.Option(help="Use this broker instead of starting one.")
    ] = None,
    mqtt_port: Annotated[int, typer.Option(help="Port of --mqtt-host.")] = 1883,
    work_dir: Annotated[
        Path | None, typer.Option(help="Where the embedded services keep data.")
    ] = None,
    api_port: Annotated[
        int | None, typer.Option(help="Port of the API and review page (0: any free).")
    ] = None,
    keep_serving: Annotated[
        bool, typer.Option(help="Keep the review page and services up after the replay.")
    ] = False,
) -> None:
    """Run the whole system on this machine with simulated Yamaguchi devices."""
    from mamori.demo import print_summary, run_demo

    settings = _load(DemoSettings, config)
    updates: dict[str, object] = {}
    if database_url:
        updates["database"] = settings.database.model_copy(update={"url": SecretStr(database_url)})
    if mqtt_host:
        updates["mqtt_host"], updates["mqtt_port"] = mqtt_host, mqtt_port
    if work_dir:
        updates["work_dir"] = work_dir
    if api_port is not None:
        updates["api_port"] = api_port
    settings = settings.model_copy(update=updates)
    summary = run_demo(settings, duration_s=duration, console=_console, keep_serving=keep_serving)
    print_summary(_console, summary)
    if summary.lost != 0:
        _err.print(f"[red]{summary.lost} readings published but not stored[/]")
        raise typer.Exit(1)


@db_app.command("migrate")
def db_migrate(config: ConfigOption = None) -> None:
    """Apply pending migrations (idempotent)."""
    from mamori.stack import database_url, migrate_url

    settings = _load(DbSettings, config)
    with database_url(settings.database) as url:
        applied = migrate_url(url)
    _console.print(f"{applied} migrations applied")


@db_app.command("status")
def db_status(config: ConfigOption = None) -> None:
    """Show the schema version and the flavour (plain PostgreSQL or TimescaleDB)."""
    from mamori.stack import database_url
    from store.db import connect, detect_flavour
    from store.migrate import available, current_version

    settings = _load(DbSettings, config)
    with database_url(settings.database) as url, connect(url) as conn:
        flavour = detect_flavour(conn)
        version = current_version(conn)
        latest = available(flavour)[-1].version
    _console.print(f"flavour {flavour.value}, schema version {version} of {latest}")


@ingest_app.command("run")
def ingest_run(config: ConfigOption = None) -> None:
    """Subscribe, validate and store until interrupted (Ctrl-C flushes and acknowledges)."""
    import signal
    import threading

    from ingest.service import IngestService
    from mamori.stack import database_url, migrate_url

    settings = _load(IngestSettings, config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with database_url(settings.database) as url:
        migrate_url(url)
        service = IngestService(settings, url)
        service.start()
        # Rollups, partitions ahead and retention, on a schedule (advisory-locked, so
        # replicas take turns rather than doing the work twice).
        from store.maintenance import MaintenanceScheduler

        maintenance = MaintenanceScheduler(url, settings.database.maintenance)
        maintenance.start()
        if settings.metrics_port is not None:
            from ingest.metrics import serve_metrics

            serve_metrics(service, settings.metrics_port, settings.metrics_host)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            maintenance.stop(timeout=30)
            service.stop()
    _console.print(f"ingest stopped: {service.stats}")


@ingest_app.command("dead-letters")
def ingest_dead_letters(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
    redrive: Annotated[
        bool, typer.Option(help="Validate open dead letters again and store those that now pass.")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason.")] = None,
) -> None:
    """List the most recent dead letters with their reasons, or re-drive them after a fix."""
    from datetime import timedelta

    from rich.table import Table

    from core.topics import Topics
    from ingest.redrive import redrive as redrive_letters
    from ingest.validate import Limits
    from mamori.stack import database_url
    from store.db import connect

    settings = _load(IngestSettings, config)
    if redrive:
        limits = Limits(
            settings.max_payload_bytes,
            timedelta(seconds=settings.future_tolerance_s),
            timedelta(days=settings.past_limit_days),
        )
        with database_url(settings.database) as url, connect(url) as conn:
            result = redrive_letters(
                conn, Topics(settings.mqtt.topic_prefix), limits, reason=reason, limit=limit
            )
        _console.print(
            f"examined {result.examined}: {result.stored} stored ({result.rows} rows), "
            f"{result.still_failing} still failing"
        )
        return
    with database_url(settings.database) as url, connect(url) as conn:
        rows = conn.execute(
            """SELECT id, received_at, topic, reason, detail, length(payload),
                      coalesce(redrive_result, '')
               FROM dead_letters WHERE (%(reason)s::text IS NULL OR reason = %(reason)s)
               ORDER BY id DESC LIMIT %(limit)s""",
            {"reason": reason, "limit": limit},
        ).fetchall()
    table = Table("id", "received", "topic", "reason", "detail", "bytes", "re-drive")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    _console.print(table)


@edge_app.command("run")
def edge_run(config: ConfigOption = None) -> None:
    """Run one device or gateway: sample its sensors, keep an outbox, publish."""
    import signal
    import threading

    from edge_agent.agent import EdgeAgent

    settings = _load(EdgeSettings, config)
    if not settings.sensors:
        raise ConfigError("no sensors configured: add a `sensors:` list to the device file")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    agent = EdgeAgent(settings)
    agent.start()
    _console.print(f"device {settings.device} at {settings.site}: {len(settings.sensors)} sensors")
    try:
        while not stop.wait(10):
            _console.print(f"{agent.stats} outbox={agent.outbox.stats()}")
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()


@edge_app.command("simulate")
def edge_simulate(
    config: ConfigOption = None,
    scenario: Annotated[
        str, typer.Option(help="A shipped fleet by name (edge_agent/fleets/NAME.yaml).")
    ] = "yamaguchi-heavy-rain",
    fleet: Annotated[Path | None, typer.Option(help="A fleet file of your own.")] = None,
    speed: Annotated[float, typer.Option(min=0.001, help="Event hours per real hour.")] = 60.0,
    duration: Annotated[float, typer.Option(min=1, help="Seconds to run.")] = 60.0,
) -> None:
    """Run a simulated fleet in one process: many devices, each with its own connection."""
    from edge_agent.fleet import YAMAGUCHI_FLEET, FleetRunner, load_fleet

    settings = _load(EdgeSettings, config)
    shipped = YAMAGUCHI_FLEET.with_name(f"{scenario}.yaml")
    if fleet is None and not shipped.is_file():
        names = sorted(p.stem for p in YAMAGUCHI_FLEET.parent.glob("*.yaml"))
        raise ConfigError(f"no shipped scenario {scenario!r}; there are: {', '.join(names)}")
    loaded = load_fleet(fleet or shipped)
    runner = FleetRunner(loaded, settings.mqtt, speed=speed)
    runner.start()
    _console.print(
        f"{loaded.scenario}: {len(loaded.devices)} devices of {loaded.site.id} at {speed:g}x "
        f"(register them first: the broker and ingest refuse unknown devices)"
    )
    try:
        time.sleep(duration)
    except KeyboardInterrupt:
        pass
    finally:
        runner.stop()
    stats = runner.stats
    _console.print(
        f"published {stats.messages_published} messages, {stats.readings_published} readings, "
        f"{stats.faults_injected} faults injected, {stats.publish_errors} publish errors"
    )


@edge_app.command("upload-photos")
def edge_upload_photos(
    directory: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder of photos.")
    ],
    config: ConfigOption = None,
    asset: Annotated[str | None, typer.Option(help="Asset the photos show.")] = None,
    altitude_m: Annotated[
        float | None, typer.Option(help="Height above the surface, when EXIF/XMP lack it.")
    ] = None,
    watch: Annotated[bool, typer.Option(help="Keep watching the folder for new photos.")] = False,
    chunk_kib: Annotated[int, typer.Option(min=4, max=8192)] = 256,
) -> None:
    """Send drone photos in checksummed chunks; an interrupted upload resumes."""
    from edge_agent.photos import PhotoUploader, photos_in
    from edge_agent.publisher import DevicePublisher

    settings = _load(EdgeSettings, config)
    publisher = DevicePublisher(
        settings.mqtt, settings.site, settings.device, firmware=settings.firmware
    )
    publisher.start()
    uploader = PhotoUploader(publisher, chunk_size=chunk_kib * 1024)
    done: set[Path] = set()
    try:
        while True:
            for photo in photos_in(directory):
                if photo in done:
                    continue
                result = uploader.upload(photo, asset=asset, altitude_m=altitude_m)
                done.add(photo)
                _console.print(
                    f"{photo.name}: stored as {result.photo_id} "
                    f"({result.chunks_sent}/{result.chunks_total} chunks sent)"
                )
            if not watch:
                break
            time.sleep(2.0)
    except KeyboardInterrupt:
        pass
    finally:
        publisher.stop()


def main() -> None:
    try:
        app()
    except ConfigError as err:
        _err.print(f"[red]configuration error:[/] {err}")
        sys.exit(2)
    except MamoriError as err:
        _err.print(f"[red]error:[/] {err}")
        sys.exit(1)
