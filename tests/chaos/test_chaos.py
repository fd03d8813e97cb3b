"""Chaos: devices publish while ingest is SIGKILLed, the broker and PostgreSQL restart and a
device is cut off. At the end the database holds exactly what the devices produced.

Bounded in CI (about 40 s). The full size runs for minutes with more devices:

    MAMORI_CHAOS_FULL=1 pytest tests/chaos -s

It uses a PostgreSQL and a Mosquitto of its own, because it restarts them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from core.registry import DeviceSpec, SiteSpec
from core.settings import EdgeSettings, MqttSettings, SimulatedSensor
from edge_agent.agent import EdgeAgent
from mamori.broker import MosquittoBroker, free_port
from store.embedded import EmbeddedPostgres, create_database
from store.migrate import migrate
from store.registry import upsert_device, upsert_site
from tests.chaos.proxy import CuttableProxy

FULL = os.environ.get("MAMORI_CHAOS_FULL") == "1"
DEVICES = 40 if FULL else 8
SECONDS = 300.0 if FULL else 32.0
SITE = "chaos"


@dataclass
class Harness:
    url: str
    postgres: EmbeddedPostgres
    broker: MosquittoBroker
    mqtt: MqttSettings
    ingest_env: dict[str, str]
    ingest: subprocess.Popen[bytes] | None = None
    faults: list[str] = field(default_factory=list)

    def start_ingest(self) -> None:
        self.ingest = subprocess.Popen(
            [sys.executable, "-m", "mamori", "ingest", "run"],
            env=self.ingest_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        # Wait until it subscribed: before the first subscription ever, the broker has no
        # session to queue messages in (MQTT delivers to subscribers, not to the future).
        assert self.ingest.stdout is not None
        for line in self.ingest.stdout:
            if b"ingest subscribed" in line:
                break
        threading.Thread(target=self._drain, args=(self.ingest,), daemon=True).start()

    @staticmethod
    def _drain(proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for _ in proc.stdout:
            pass

    def kill_ingest(self) -> None:
        assert self.ingest is not None
        self.ingest.send_signal(signal.SIGKILL)
        self.ingest.wait(10)
        self.faults.append("SIGKILL ingest")
        self.start_ingest()

    def restart_broker(self) -> None:
        self.broker.stop()
        time.sleep(1.0)
        self.broker.start()
        self.faults.append("restart Mosquitto")

    def restart_postgres(self) -> None:
        self.postgres.restart(crash=True)
        self.faults.append("crash-restart PostgreSQL")


def _scalar(url: str, query: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode()).fetchone()
    assert row is not None
    return int(str(row[0] or 0))


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory of the test's own rather than pytest's tmp_path: pytest prunes old
    numbered temp dirs (another pytest run on the machine can remove this one's while
    PostgreSQL, running as its own user, still needs them for a restart)."""
    path = Path(tempfile.mkdtemp(prefix="mamori-chaos-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(int(SECONDS) + 300)
def test_nothing_lost_nothing_duplicated_under_faults(workdir: Path) -> None:
    postgres = EmbeddedPostgres(workdir / "pg")
    admin = postgres.start()
    url = create_database(admin, "chaos")
    with psycopg.connect(url) as conn:
        migrate(conn)
        upsert_site(conn, SiteSpec(id=SITE, name="Chaos"))
        for n in range(DEVICES):
            upsert_device(conn, DeviceSpec(id=f"rg-{n}", site_id=SITE, kind="rain_gauge"))
        conn.commit()
    port = free_port()
    broker = MosquittoBroker(workdir / "broker", port=port)
    broker.start()
    mqtt = MqttSettings(host="127.0.0.1", port=port, topic_prefix=f"c{uuid.uuid4().hex[:8]}")
    env = {
        **os.environ,
        "MAMORI_INGEST_DATABASE__URL": url,
        "MAMORI_INGEST_MQTT__HOST": "127.0.0.1",
        "MAMORI_INGEST_MQTT__PORT": str(port),
        "MAMORI_INGEST_MQTT__TOPIC_PREFIX": mqtt.topic_prefix,
        "MAMORI_INGEST_CLIENT_ID": "chaos-ingest",
    }
    harness = Harness(url, postgres, broker, mqtt, env)
    harness.start_ingest()
    # Device 0 talks through a link the harness can cut.
    radio = CuttableProxy(port)
    agents = [
        EdgeAgent(
            EdgeSettings(
                mqtt=mqtt.model_copy(update={"port": radio.port}) if n == 0 else mqtt,
                site=SITE,
                device=f"rg-{n}",
                outbox_path=workdir / f"outbox-{n}.db",
                batch_max_readings=20,
                batch_max_latency_s=0.3,
                # A rain gauge reporting every 0.1 s of real time.
                sensors=[SimulatedSensor(model="rain_gauge", speed=600, seed=n)],
            )
        )
        for n in range(DEVICES)
    ]
    for agent in agents:
        agent.start()

    def cut_off() -> None:
        radio.cut()
        harness.faults.append("cut a device off")

    def reconnect() -> None:
        radio.restore()
        harness.faults.append("device back online")

    plan: list[tuple[float, Callable[[], None]]] = [
        (0.10, harness.kill_ingest),
        (0.25, harness.restart_broker),
        (0.35, harness.kill_ingest),
        (0.45, cut_off),
        (0.50, harness.restart_postgres),
        (0.65, reconnect),
        (0.75, harness.kill_ingest),
    ]
    started = time.monotonic()
    try:
        for at, fault in plan:
            time.sleep(max(0.0, started + at * SECONDS - time.monotonic()))
            fault()
        time.sleep(max(0.0, started + SECONDS - time.monotonic()))
    finally:
        for agent in agents:
            agent.stop(drain_timeout_s=30)
    produced = sum(a.stats.readings for a in agents)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _scalar(url, "SELECT count(*) FROM readings") < produced:
        time.sleep(0.5)
    try:
        stored = _scalar(url, "SELECT count(*) FROM readings")
        keys = _scalar(
            url, "SELECT count(*) FROM (SELECT DISTINCT device_id, metric, ts FROM readings) k"
        )
        gaps = _scalar(
            url,
            "SELECT coalesce(sum(max_seq + 1 - seqs), 0) FROM ("
            " SELECT device_id, max(seq) AS max_seq, count(DISTINCT seq) AS seqs"
            " FROM readings GROUP BY device_id) s",
        )
        letters = _scalar(url, "SELECT count(*) FROM dead_letters")
    finally:
        assert harness.ingest is not None
        harness.ingest.send_signal(signal.SIGTERM)
        harness.ingest.wait(30)
        broker.stop()
        postgres.stop()
        radio.close()
    print(
        f"\nCHAOS devices={DEVICES} seconds={SECONDS:.0f} faults={len(harness.faults)} "
        f"({', '.join(harness.faults)}) produced={produced} stored={stored} "
        f"duplicates={stored - keys} sequence_gaps={gaps} dead_letters={letters} "
        f"lost={produced - stored}"
    )
    assert produced > DEVICES * 50
    assert stored == produced
    assert keys == stored
    assert gaps == 0
    assert letters == 0
    # Every device's outbox emptied: everything measured was acknowledged by the broker.
    assert all(a.final_outbox_stats and not a.final_outbox_stats.pending for a in agents)
