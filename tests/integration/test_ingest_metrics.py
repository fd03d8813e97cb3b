"""Ingest's Prometheus endpoint, scraped over HTTP from a running service."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
from pydantic import SecretStr

from core.messages import Reading
from core.registry import DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, IngestSettings, MqttSettings
from edge_agent.publisher import DevicePublisher
from ingest.metrics import serve_metrics
from ingest.service import IngestService
from mamori.broker import free_port
from store.registry import upsert_device, upsert_site


def test_metrics_count_what_was_stored_and_dead_lettered(
    mqtt_settings: MqttSettings, database_url: str
) -> None:
    site = f"m-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=site, name="M"))
        upsert_device(conn, DeviceSpec(id=f"{site}-d", site_id=site, kind="strain"))
    service = IngestService(
        IngestSettings(
            mqtt=mqtt_settings,
            database=DatabaseSettings(url=SecretStr(database_url)),
            client_id=f"ingest-{uuid.uuid4().hex[:6]}",
            flush_interval_ms=20,
        ),
        database_url,
    )
    service.start()
    port = free_port()
    serve_metrics(service, port)
    device = DevicePublisher(mqtt_settings, site, f"{site}-d")
    device.start()
    try:
        device.publish_batch([Reading(metric="strain_ue", ts=datetime.now(UTC), value=12.0)])
        device.publish_raw(b"not json")
        # Both messages taken, committed and acknowledged (the broker may not have
        # delivered them yet when the device's PUBACKs came back).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and (
            service.stats.messages < 2 or service.in_flight() or service.stats.batches < 1
        ):
            time.sleep(0.02)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        device.stop()
        service.stop()
    assert "mamori_ingest_rows_inserted_total 1.0" in text
    assert 'mamori_ingest_dead_letters_total{reason="undecodable"} 1.0' in text
    assert "mamori_ingest_in_flight 0.0" in text
