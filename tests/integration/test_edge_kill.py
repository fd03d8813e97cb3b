"""The whole edge agent SIGKILLed mid-stream and restarted: every batch it had written to
its outbox arrives once, and its sequence numbers continue without a gap."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import yaml
from pydantic import SecretStr

from core.registry import DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, IngestSettings, MqttSettings
from edge_agent.outbox import Outbox
from ingest.service import IngestService
from store.registry import upsert_device, upsert_site


def _agent(config: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "mamori", "edge", "run", "-c", str(config)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_sigkilled_agent_resumes_from_its_outbox(
    mqtt_settings: MqttSettings, database_url: str, tmp_path: Path
) -> None:
    site, device = f"k-{uuid.uuid4().hex[:8]}", f"rg-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=site, name="K"))
        upsert_device(conn, DeviceSpec(id=device, site_id=site, kind="rain_gauge"))
    outbox = tmp_path / "outbox.db"
    config = tmp_path / "device.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "site": site,
                "device": device,
                "outbox_path": str(outbox),
                "batch_max_readings": 10,
                "batch_max_latency_s": 0.2,
                "mqtt": {
                    "host": mqtt_settings.host,
                    "port": mqtt_settings.port,
                    "topic_prefix": mqtt_settings.topic_prefix,
                },
                # A rain gauge reporting every 0.1 s of real time.
                "sensors": [{"kind": "simulated", "model": "rain_gauge", "speed": 600}],
            }
        )
    )
    ingest = IngestService(
        IngestSettings(
            mqtt=mqtt_settings,
            database=DatabaseSettings(url=SecretStr(database_url)),
            client_id=f"ingest-{uuid.uuid4().hex[:6]}",
            flush_interval_ms=50,
        ),
        database_url,
    )
    ingest.start()
    try:
        first = _agent(config)
        time.sleep(4)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = _agent(config)
        time.sleep(4)
        second.send_signal(signal.SIGTERM)  # a clean stop drains the outbox
        second.wait(30)
        produced = Outbox(outbox, max_bytes=1 << 30).stats()
        assert produced.pending == {}
        deadline = time.monotonic() + 20
        row: tuple[object, ...] | None = None
        while time.monotonic() < deadline:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT count(DISTINCT seq), min(seq), max(seq) FROM readings "
                    "WHERE device_id = %s",
                    (device,),
                ).fetchone()
            if row is not None and row[0] == produced.next_seq:
                break
            time.sleep(0.2)
    finally:
        ingest.stop()
    assert produced.next_seq > 20
    assert row == (produced.next_seq, 0, produced.next_seq - 1)
