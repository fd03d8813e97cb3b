"""``mamori demo``: the whole system on one machine.

Embedded PostgreSQL (or the URL given); a broker (Mosquitto with per-device credentials
and ACLs if installed, else the embedded amqtt); migrations; ingest; the alert engine
with the Yamaguchi rules, time-scaled; the inspection worker with the shipped ONNX
model; the API and the inspectors' review page. The simulated Yamaguchi fleet replays a
heavy-rain event while a drone uploads real quay-wall crack photos in chunks; then a
summary, counted from the database.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg import conninfo
from pydantic import SecretStr
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alerts.engine import AlertEngine
from alerts.ruleset import YAMAGUCHI_RULES, RuleFile, load_rules, time_scaled
from api.app import create_app
from api.security import hash_password
from api.server import ServerThread
from core.registry import AssetKind, AssetSpec, DeviceSpec
from core.settings import (
    AlertsSettings,
    ApiSettings,
    DatabaseSettings,
    DemoSettings,
    IngestSettings,
    MqttSettings,
)
from core.topics import Topics
from edge_agent.fleet import Fleet, FleetRunner, yamaguchi_fleet
from edge_agent.photos import PhotoUploader
from edge_agent.publisher import DevicePublisher
from ingest.service import IngestService
from inspection_models.demo import sample_photos
from inspection_models.detectors import build_detector
from inspection_models.pipeline import Inspector
from inspection_models.settings import InspectionSettings
from inspection_models.worker import InspectionWorker, MqttEventSink
from mamori.broker import BrokerInfo, EmbeddedBroker, MosquittoBroker
from mamori.broker_auth import (
    PasswordFile,
    mosquitto_auth_config,
    new_password,
    render_acl,
    service_accounts,
)
from mamori.stack import database_url, migrate_url, register
from store import api_auth
from store.alerts import AlertSummaryRow, alert_summary
from store.db import connect
from store.maintenance import run_maintenance

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    devices: int
    messages_published: int
    readings_published: int
    readings_stored: int
    dead_letters: int
    faults_injected: int
    photos_uploaded: int
    photos_inspected: int
    photos_flagged: int
    alerts: list[AlertSummaryRow]
    broker: str
    database: str
    data_dir: str | None
    review_url: str
    duration_s: float

    @property
    def lost(self) -> int:
        return self.readings_published - self.readings_stored


DRONE = DeviceSpec(id="drone-1", site_id="yamaguchi", asset_id="quay-mitajiri", kind="camera")
QUAY = AssetSpec(
    id="quay-mitajiri",
    site_id="yamaguchi",
    kind=AssetKind.QUAY_WALL,
    name="Mitajiri port quay wall",
    name_ja="三田尻中関港 岸壁",
    lat=34.030,
    lon=131.575,
)
#: Event hours replayed per run: the whole 18-hour rain event, whatever the run's length.
EVENT_HOURS = 18.0


def run_demo(
    settings: DemoSettings, *, duration_s: float, console: Console, keep_serving: bool = False
) -> DemoSummary:
    work_dir = settings.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    blob_dir = work_dir / "blobs"
    database = settings.database
    if database.url is None:
        database = database.model_copy(update={"embedded_dir": work_dir / "pgdata"})
    started_at = datetime.now(UTC)
    speed = EVENT_HOURS * 3600 / max(duration_s, 1.0)
    console.print("[bold]Mamori demo[/]: 山口県 椹野川 heavy rain, replayed")
    with database_url(database) as url, contextlib.ExitStack() as stack:
        console.print(f"  database  {_safe(url)}  ({migrate_url(url)} migrations applied)")
        fleet = yamaguchi_fleet()
        register(url, fleet.site, (*fleet.assets, QUAY), [*(d.spec for d in fleet.devices), DRONE])
        info, accounts = _broker(settings, work_dir, fleet, stack)
        mqtt = MqttSettings(host=info.host, port=info.port, protocol=info.protocol)
        db = DatabaseSettings(url=SecretStr(url))

        ingest = IngestService(
            IngestSettings(
                mqtt=accounts.login(mqtt, "mamori-ingest"),
                client_id="mamori-demo-ingest",
                database=db,
                blob_dir=blob_dir,
            ),
            url,
        )
        ingest.start()
        stack.callback(ingest.stop)
        alerts = AlertEngine(
            AlertsSettings(mqtt=accounts.login(mqtt, "mamori-alerts"), database=db, tick_s=0.5),
            url,
            _demo_rules(speed),
            client_id="mamori-demo-alerts",
        )
        alerts.start()
        stack.callback(alerts.stop)
        stop_worker = _inspection_worker(
            url, blob_dir, accounts.login(mqtt, "mamori-inspect"), stack
        )
        review_url, login = _api(url, blob_dir, settings.api_port, stack)
        console.print(f"  review    {review_url}/review  (login {login})")

        runner = FleetRunner(fleet, mqtt, speed=speed, passwords=accounts.passwords)
        runner.start()
        stack.callback(runner.stop)
        uploaded = _upload_photos(accounts.login(mqtt, DRONE.id), console)
        _show_progress(console, runner, ingest, duration_s)
        runner.stop()
        if keep_serving:
            console.print(f"[bold]Still serving[/] {review_url}/review  (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
        ingest.wait_idle(30)
        alerts.wait_idle(10)
        alerts.tick_now()
        _wait_for_inspections(url, uploaded, timeout_s=60)
        stop_worker.set()
        # Roll the replayed event up, as the services' schedule would: dashboards and the
        # API read the 1-minute and 1-hour rollups.
        run_maintenance(url, settings.database.maintenance)
        stored, letters = _count(url, [d.spec.id for d in fleet.devices], started_at)
        with connect(url) as conn:
            alert_rows = alert_summary(conn, started_at)
            inspected = conn.execute(
                "SELECT count(*) FILTER (WHERE status IN ('flagged', 'clear')), "
                "count(*) FILTER (WHERE status = 'flagged') FROM images WHERE device_id = %s",
                (DRONE.id,),
            ).fetchone()
        assert inspected is not None
        return DemoSummary(
            devices=len(fleet.devices) + 1,
            messages_published=runner.stats.messages_published,
            readings_published=runner.stats.readings_published,
            readings_stored=stored,
            dead_letters=letters,
            faults_injected=runner.stats.faults_injected,
            photos_uploaded=len(uploaded),
            photos_inspected=int(str(inspected[0])),
            photos_flagged=int(str(inspected[1])),
            alerts=alert_rows,
            broker=f"{info.kind} {info.host}:{info.port}",
            database=_safe(url),
            data_dir=str(database.embedded_dir) if settings.database.url is None else None,
            review_url=f"{review_url}/review",
            duration_s=(datetime.now(UTC) - started_at).total_seconds(),
        )


def _demo_rules(speed: float) -> RuleFile:
    """The Yamaguchi rules at replay speed, without escalation: nobody acknowledges in a
    demo, and a 15-minute reminder would fire every second of a compressed event."""
    rules = time_scaled(load_rules(YAMAGUCHI_RULES), speed)
    return rules.model_copy(
        update={
            "defaults": rules.defaults.model_copy(update={"escalation": None}),
            "rules": [rule.model_copy(update={"escalation": None}) for rule in rules.rules],
        }
    )


@dataclass(frozen=True, slots=True)
class _Accounts:
    """Broker passwords per account; empty when the broker takes anyone."""

    passwords: dict[str, str]

    def login(self, mqtt: MqttSettings, username: str) -> MqttSettings:
        if username not in self.passwords:
            return mqtt
        return mqtt.model_copy(
            update={"username": username, "password": SecretStr(self.passwords[username])}
        )


def _broker(
    settings: DemoSettings, work_dir: Path, fleet: Fleet, stack: contextlib.ExitStack
) -> tuple[BrokerInfo, _Accounts]:
    if settings.mqtt_host:
        info = BrokerInfo("external", settings.mqtt_host, settings.mqtt_port, "5")
        return info, _Accounts({})
    accounts = _Accounts({})
    broker: MosquittoBroker | EmbeddedBroker
    if MosquittoBroker.available():
        # Per-device credentials and ACLs, as in production.
        passwords, auth = _provision(work_dir / "mosquitto", fleet)
        accounts = _Accounts(passwords)
        broker = MosquittoBroker(work_dir / "mosquitto", auth=auth)
    else:
        broker = EmbeddedBroker()
    info = broker.start()
    stack.callback(broker.stop)
    secured = "per-device credentials and ACLs" if accounts.passwords else "no authentication"
    Console().print(
        f"  broker    {info.kind} on {info.host}:{info.port} (MQTT {info.protocol}, {secured})"
    )
    return info, accounts


def _provision(directory: Path, fleet: Fleet) -> tuple[dict[str, str], str]:
    """Fresh passwords for every device and service, and the ACL that confines them."""
    directory.mkdir(parents=True, exist_ok=True)
    devices = {d.spec.id: fleet.site.id for d in fleet.devices} | {DRONE.id: DRONE.site_id}
    topics = Topics("mamori")
    users = [*devices, *(a.username for a in service_accounts(topics))]
    passwords = {user: new_password() for user in users}
    password_file = PasswordFile(directory / "passwd")
    for user, password in passwords.items():
        password_file.set(user, password)
    password_file.save()
    acl = directory / "acl"
    acl.write_text(render_acl(topics, devices), encoding="utf-8")
    return passwords, mosquitto_auth_config(directory / "passwd", acl)


def _inspection_worker(
    url: str, blob_dir: Path, mqtt: MqttSettings, stack: contextlib.ExitStack
) -> threading.Event:
    """The shipped ONNX detector on every photo the drone sends."""
    settings = InspectionSettings(detector="onnx", blob_dir=blob_dir, mqtt=mqtt)
    detector_config = settings.detector_config()
    inspector = Inspector(build_detector(detector_config), settings.tiling, settings.measurement)
    sink = MqttEventSink(mqtt, "mamori-demo-inspect")
    stack.callback(sink.close)
    worker = InspectionWorker(url, inspector, blob_dir, settings.worker, "demo-inspect", sink)
    stack.callback(worker.close)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="inspect", daemon=True)
    thread.start()
    stack.callback(thread.join, 30)
    stack.callback(stop.set)
    return stop


def _api(url: str, blob_dir: Path, port: int, stack: contextlib.ExitStack) -> tuple[str, str]:
    """The API and the review page, with an inspector whose password is made now."""
    password = secrets.token_urlsafe(12)
    with connect(url) as conn:
        if api_auth.get_user(conn, "inspector") is None:
            api_auth.create_user(
                conn,
                username="inspector",
                display_name="Demo inspector",
                role="inspector",
                password_hash=hash_password(password),
            )
        else:
            api_auth.update_user(
                conn,
                "inspector",
                display_name=None,
                role="inspector",
                disabled=False,
                password_hash=hash_password(password),
                at=datetime.now(UTC),
            )
        conn.commit()
    api_settings = ApiSettings(
        secret_key=SecretStr(secrets.token_urlsafe(32)),
        blob_dir=blob_dir,
        database=DatabaseSettings(url=SecretStr(url)),
    )
    server = ServerThread(create_app(api_settings, url), port=port)
    base = server.start()
    stack.callback(server.stop)
    return base, f"inspector / {password}"


def _upload_photos(mqtt: MqttSettings, console: Console) -> list[str]:
    """The drone sends the sample photos (real quay-wall cracks) through the whole path."""
    publisher = DevicePublisher(mqtt, DRONE.site_id, DRONE.id, firmware="drone-uploader/0.1")
    publisher.start()
    try:
        uploader = PhotoUploader(publisher, chunk_size=64 * 1024)
        ids = [
            uploader.upload(photo, asset=QUAY.id, altitude_m=10.0).photo_id
            for photo in sample_photos()
        ]
    finally:
        publisher.stop()
    console.print(f"  drone     {len(ids)} photos uploaded in checksummed chunks")
    return ids


def _wait_for_inspections(url: str, image_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with connect(url) as conn:
            row = conn.execute(
                "SELECT count(*) FROM images "
                "WHERE id = ANY(%s) AND status IN ('flagged', 'clear', 'failed')",
                (image_ids,),
            ).fetchone()
        if row is not None and int(str(row[0])) >= len(image_ids):
            return
        time.sleep(0.2)


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
    table.add_row(
        "drone photos",
        f"{summary.photos_uploaded} uploaded, {summary.photos_inspected} inspected, "
        f"{summary.photos_flagged} flagged for review",
    )
    for row in summary.alerts:
        still = f", still at Lv{row.open_level}" if row.open_level else ", resolved"
        table.add_row(
            f"alert {row.asset_id}", f"{row.rule_id}: peak 警戒レベル{row.peak_level}{still}"
        )
    if not summary.alerts:
        table.add_row("alerts", "none")
    table.add_row("broker", summary.broker)
    table.add_row("database", summary.database)
    if summary.data_dir:
        table.add_row("data directory", summary.data_dir)
    table.add_row("review page", summary.review_url)
    table.add_row("wall time", f"{summary.duration_s:.1f} s")
    console.print(table)
    if summary.data_dir:
        console.print(
            f"The embedded database stopped with the demo; its data stays in {summary.data_dir} "
            "and the next `mamori demo` starts it again. `--keep-serving` keeps the review "
            "page up after the replay."
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
        f"readings_stored={summary.readings_stored} dead_letters={summary.dead_letters} "
        f"photos_uploaded={summary.photos_uploaded} photos_inspected={summary.photos_inspected} "
        f"photos_flagged={summary.photos_flagged} alerts={sum(r.alerts for r in summary.alerts)} "
        f"peak_level={max((r.peak_level for r in summary.alerts), default=0)}",
        highlight=False,
        soft_wrap=True,
    )


__all__ = ["DemoSummary", "print_summary", "run_demo"]
