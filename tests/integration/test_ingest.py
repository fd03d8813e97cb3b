"""Ingest end to end over a real Mosquitto into a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from pydantic import SecretStr

from core.messages import Reading
from core.registry import AssetKind, AssetSpec, DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, IngestSettings, MqttSettings
from edge_agent.publisher import DevicePublisher
from ingest.service import IngestService
from store.registry import upsert_asset, upsert_device, upsert_site


def _eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def _scalar(url: str, query: str, *params: object) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(query.encode(), params).fetchone()
    assert row is not None
    return int(str(row[0]))


@pytest.fixture
def site(database_url: str) -> str:
    """A committed site with a river station and three devices, unique to the test."""
    site_id = f"s-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=site_id, name="Test site"))
        upsert_asset(
            conn,
            AssetSpec(
                id=f"{site_id}-river", site_id=site_id, kind=AssetKind.RIVER_STATION, name="R"
            ),
        )
        for n in range(3):
            upsert_device(
                conn,
                DeviceSpec(
                    id=f"{site_id}-d{n}",
                    site_id=site_id,
                    asset_id=f"{site_id}-river",
                    kind="river_level",
                ),
            )
    return site_id


def _ingest_settings(mqtt: MqttSettings, url: str, **overrides: object) -> IngestSettings:
    return IngestSettings(
        mqtt=mqtt,
        database=DatabaseSettings(url=SecretStr(url)),
        client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        flush_interval_ms=50,
        **overrides,  # type: ignore[arg-type]
    )


def _readings(n: int, start: datetime) -> list[Reading]:
    return [
        Reading(metric="water_level_m", ts=start + timedelta(seconds=i), value=1.0 + i / 100)
        for i in range(n)
    ]


def test_published_readings_land_in_the_database(
    mqtt_settings: MqttSettings, database_url: str, site: str
) -> None:
    service = IngestService(_ingest_settings(mqtt_settings, database_url), database_url)
    service.start()
    device = DevicePublisher(mqtt_settings, site, f"{site}-d0")
    device.start()
    try:
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
        for batch in range(5):
            device.publish_batch(_readings(20, start + timedelta(minutes=batch)))
        device.publish_raw(b'{"v": 1, "device": "broken"}')
        assert _eventually(
            lambda: (
                _scalar(
                    database_url, "SELECT count(*) FROM readings WHERE device_id = %s", f"{site}-d0"
                )
                == 100
            )
        )
        assert _eventually(
            lambda: (
                _scalar(
                    database_url,
                    "SELECT count(*) FROM dead_letters WHERE topic = %s",
                    device.readings_topic,
                )
                == 1
            )
        )
        assert (
            _scalar(database_url, "SELECT last_seq FROM devices WHERE id = %s", f"{site}-d0") == 4
        )
        with psycopg.connect(database_url) as conn:
            state = conn.execute(
                "SELECT state FROM devices WHERE id = %s", (f"{site}-d0",)
            ).fetchone()
            letter = conn.execute(
                "SELECT reason, payload FROM dead_letters WHERE topic = %s",
                (device.readings_topic,),
            ).fetchone()
        assert state == ("online",)
        assert letter == ("invalid", b'{"v": 1, "device": "broken"}')
    finally:
        device.stop()
        service.stop()
    assert _eventually(
        lambda: (
            _scalar(
                database_url,
                "SELECT count(*) FROM devices WHERE id = %s AND state = 'offline'",
                f"{site}-d0",
            )
            == 1
        )
    )


def test_unknown_device_is_dead_lettered_and_the_loop_goes_on(
    mqtt_settings: MqttSettings, database_url: str, site: str
) -> None:
    service = IngestService(_ingest_settings(mqtt_settings, database_url), database_url)
    service.start()
    stranger = DevicePublisher(mqtt_settings, site, "not-registered")
    known = DevicePublisher(mqtt_settings, site, f"{site}-d1")
    stranger.start()
    known.start()
    try:
        start = datetime.now(UTC).replace(microsecond=0)
        stranger.publish_batch(_readings(3, start))
        known.publish_batch(_readings(3, start))
        assert _eventually(
            lambda: (
                _scalar(
                    database_url, "SELECT count(*) FROM readings WHERE device_id = %s", f"{site}-d1"
                )
                == 3
            )
        )
        assert _eventually(
            lambda: (
                _scalar(
                    database_url,
                    "SELECT count(*) FROM dead_letters "
                    "WHERE topic = %s AND reason = 'unknown_device'",
                    stranger.readings_topic,
                )
                == 1
            )
        )
    finally:
        stranger.stop()
        known.stop()
        service.stop()


def _ingest_process(
    mqtt: MqttSettings, url: str, client_id: str, flush_ms: int
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MAMORI_INGEST_DATABASE__URL": url,
        "MAMORI_INGEST_MQTT__HOST": mqtt.host,
        "MAMORI_INGEST_MQTT__PORT": str(mqtt.port),
        "MAMORI_INGEST_MQTT__TOPIC_PREFIX": mqtt.topic_prefix,
        "MAMORI_INGEST_CLIENT_ID": client_id,
        "MAMORI_INGEST_FLUSH_INTERVAL_MS": str(flush_ms),
        "MAMORI_INGEST_BATCH_MAX_ROWS": "1000000",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "mamori", "ingest", "run"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _wait_subscribed(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    seen = b""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if b"ingest subscribed" in line:
            return
        if proc.poll() is not None:
            break
    pytest.fail(f"ingest did not subscribe:\n{seen.decode(errors='replace')}")


def test_sigkill_before_commit_loses_nothing_and_duplicates_nothing(
    mqtt_settings: MqttSettings, database_url: str, site: str
) -> None:
    """Messages received but not committed when ingest dies are redelivered to its successor."""
    client_id = f"ingest-{uuid.uuid4().hex[:8]}"
    device_id = f"{site}-d2"
    # A flush interval far longer than the test: nothing commits before the kill.
    first = _ingest_process(mqtt_settings, database_url, client_id, flush_ms=60_000)
    _wait_subscribed(first)
    device = DevicePublisher(mqtt_settings, site, device_id)
    device.start()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    try:
        for batch in range(30):
            device.publish_batch(_readings(10, start + timedelta(minutes=batch)))
        time.sleep(1.0)  # let the broker hand them to the doomed ingest, unacknowledged
        assert (
            _scalar(database_url, "SELECT count(*) FROM readings WHERE device_id = %s", device_id)
            == 0
        )
        first.send_signal(signal.SIGKILL)
        first.wait(10)

        second = _ingest_process(mqtt_settings, database_url, client_id, flush_ms=50)
        _wait_subscribed(second)
        try:
            assert _eventually(
                lambda: (
                    _scalar(
                        database_url,
                        "SELECT count(*) FROM readings WHERE device_id = %s",
                        device_id,
                    )
                    == 300
                ),
                timeout_s=30,
            )
            # Nothing more arrives later: exactly the 300 rows and every sequence number once.
            time.sleep(0.5)
            assert (
                _scalar(
                    database_url, "SELECT count(*) FROM readings WHERE device_id = %s", device_id
                )
                == 300
            )
            assert (
                _scalar(
                    database_url,
                    "SELECT count(DISTINCT seq) FROM readings WHERE device_id = %s",
                    device_id,
                )
                == 30
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
        assert second.returncode == 0
    finally:
        device.stop()
        if first.poll() is None:
            first.kill()
