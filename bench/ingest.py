"""Ingest throughput: devices → Mosquitto → ingest → PostgreSQL, against the database ceiling.

    python -m bench.ingest            # full size
    python -m bench.ingest --quick    # under a minute
    python -m bench.ingest --json     # one JSON object with every figure

Baseline, measured in the same run on the same database: the same rows written straight
into ``readings`` with ``store.readings.insert_readings`` (binary COPY, no MQTT, no
validation). The headline ratio says how much of the database's ceiling the whole path
through the broker keeps. Publishers run in a separate process with pre-encoded payloads
so that they measure ingest, not the publisher.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from psycopg import sql
from pydantic import SecretStr

from core.messages import Reading, ReadingBatch, encode
from core.registry import DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, IngestSettings, MqttSettings
from core.topics import Topics
from ingest.service import IngestService
from mamori.broker import MosquittoBroker
from store.embedded import create_database
from store.migrate import migrate
from store.readings import ReadingRow, insert_readings
from store.registry import upsert_device, upsert_site

SITE = "bench"


def _payloads(device: str, messages: int, per_message: int, start: datetime) -> list[bytes]:
    out = []
    for seq in range(messages):
        base = start + timedelta(seconds=seq * per_message)
        readings = [
            Reading(metric="strain_ue", ts=base + timedelta(seconds=i), value=float(i % 500))
            for i in range(per_message)
        ]
        out.append(encode(ReadingBatch(device=device, seq=seq, sent_at=base, readings=readings)))
    return out


def _publish(
    host: str, port: int, prefix: str, device: str, payloads: list[bytes], go: EventType
) -> None:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{device}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    go.wait()
    topic = Topics(prefix).readings(SITE, device)
    infos = [client.publish(topic, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


def _count(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM readings WHERE device_id LIKE 'ing-%'").fetchone()
    return int(str(row[0])) if row else 0


def run(admin_url: str, *, devices: int, messages: int, per_message: int) -> dict[str, float]:
    name = f"mamori_bench_ingest_{uuid.uuid4().hex[:8]}"
    url = create_database(admin_url, name)
    work = Path(tempfile.mkdtemp(prefix="mamori-bench-"))
    broker = MosquittoBroker(work, extra_config="max_inflight_messages 0\nmax_queued_messages 0\n")
    info = broker.start()
    try:
        with psycopg.connect(url) as conn:
            migrate(conn)
            upsert_site(conn, SiteSpec(id=SITE, name="bench"))
            for d in range(devices):
                for kind in ("ing", "base"):
                    upsert_device(conn, DeviceSpec(id=f"{kind}-{d}", site_id=SITE, kind="strain"))
            conn.commit()
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(
            seconds=messages * per_message + 3600
        )
        total = devices * messages * per_message

        # Baseline: the same number of rows straight into the table.
        rows: list[ReadingRow] = [
            (
                start + timedelta(seconds=i),
                f"base-{d}",
                "strain_ue",
                float(i % 500),
                i // per_message,
            )
            for d in range(devices)
            for i in range(messages * per_message)
        ]
        with psycopg.connect(url) as conn:
            t0 = time.perf_counter()
            for offset in range(0, len(rows), 5000):
                insert_readings(conn, rows[offset : offset + 5000])
                conn.commit()
            baseline_s = time.perf_counter() - t0
        del rows

        mqtt = MqttSettings(host=info.host, port=info.port, topic_prefix="bench")
        settings = IngestSettings(
            mqtt=mqtt,
            database=DatabaseSettings(url=SecretStr(url)),
            client_id="bench-ingest",
            batch_max_rows=5000,
            flush_interval_ms=200,
        )
        service = IngestService(settings, url)
        service.start()
        payloads = {
            f"ing-{d}": _payloads(f"ing-{d}", messages, per_message, start) for d in range(devices)
        }
        payload_bytes = sum(len(p) for ps in payloads.values() for p in ps)
        ctx = multiprocessing.get_context("spawn")
        go = ctx.Event()
        procs = [
            ctx.Process(target=_publish, args=(info.host, info.port, "bench", dev, ps, go))
            for dev, ps in payloads.items()
        ]
        for proc in procs:
            proc.start()
        time.sleep(2.0)  # let every publisher connect; the clock starts at "go"
        t0 = time.perf_counter()
        go.set()
        while (
            service.stats.messages < devices * messages
            or service.stats.acked < service.stats.messages
        ):
            if time.perf_counter() - t0 > 600:
                break
            time.sleep(0.01)
        ingest_s = time.perf_counter() - t0
        for proc in procs:
            proc.join(60)
        service.stop()
        stored = _count(url)
        stats = service.stats
    finally:
        broker.stop()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
    return {
        "devices": devices,
        "messages": devices * messages,
        "readings_per_message": per_message,
        "readings": total,
        "readings_stored": stored,
        "dead_letters": stats.dead_letters,
        "payload_mb": round(payload_bytes / 1e6, 2),
        "ingest_seconds": round(ingest_s, 3),
        "ingest_readings_per_s": round(total / ingest_s),
        "ingest_messages_per_s": round(devices * messages / ingest_s),
        "ingest_batches": stats.batches,
        "baseline_copy_seconds": round(baseline_s, 3),
        "baseline_copy_readings_per_s": round(total / baseline_s),
        "ratio_ingest_to_baseline_copy": round(baseline_s / ingest_s, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small size, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--devices", type=int, default=None)
    parser.add_argument("--messages", type=int, default=None, help="messages per device")
    parser.add_argument("--per-message", type=int, default=100, help="readings per message")
    args = parser.parse_args(argv)
    devices = args.devices or (2 if args.quick else 4)
    messages = args.messages or (1000 if args.quick else 5000)
    figures = run(
        args.database_url, devices=devices, messages=messages, per_message=args.per_message
    )
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0 if figures["readings_stored"] == figures["readings"] else 1


if __name__ == "__main__":
    sys.exit(main())
