"""Ingest throughput: devices → Mosquitto → ingest → PostgreSQL, against a naive consumer
and against the database's ceiling, all measured in the same run.

    python -m bench.ingest            # full size
    python -m bench.ingest --quick    # under a minute
    python -m bench.ingest --json     # one JSON object with every figure

What it measures, each on the same fresh database and a private Mosquitto:

- ``ingest_batched``: readings/s from the first publish to the last committed and
  acknowledged row, for messages of 100 readings (how gauges and gateways send);
- ``ingest_single``: the same for messages of one reading each (the worst case);
- ``naive``: a paho callback that inserts each message's readings and commits, one
  transaction per message, the way many MQTT-to-SQL bridges are written (the baseline);
- ``copy_ceiling``: the same rows written straight into ``readings`` with
  ``store.readings.insert_readings`` (binary COPY, no MQTT, no validation).

Publishers run in separate processes with pre-encoded payloads so that they measure the
consumer, not the publisher.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import paho.mqtt.client as paho
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import SecretStr

from core.messages import Reading, ReadingBatch, encode
from core.registry import DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, IngestSettings, MqttSettings
from core.topics import Topics
from ingest.service import IngestService
from mamori.broker import MosquittoBroker
from store.readings import ReadingRow, insert_readings
from store.registry import upsert_device, upsert_site
from tests.support import migrated_database

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


def _publish(port: int, prefix: str, device: str, payloads: list[bytes], go: EventType) -> None:
    client = paho.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"pub-{device}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    go.wait()
    topic = Topics(prefix).readings(SITE, device)
    infos = [client.publish(topic, payload, qos=1) for payload in payloads]
    for info in infos:
        info.wait_for_publish(300)
    client.disconnect()
    client.loop_stop()


def _count(url: str, prefix: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE starts_with(device_id, %s)", (prefix,)
        ).fetchone()
    return int(str(row[0])) if row else 0


def _register(url: str, devices: list[str]) -> None:
    with psycopg.connect(url) as conn:
        upsert_site(conn, SiteSpec(id=SITE, name="bench"))
        for device in devices:
            upsert_device(conn, DeviceSpec(id=device, site_id=SITE, kind="strain"))


def _drive(port: int, prefix: str, payloads: dict[str, list[bytes]], done: object) -> float:
    """Start one publisher process per device, release them together, and return the
    seconds until ``done()`` says everything is stored."""
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    procs = [
        ctx.Process(target=_publish, args=(port, prefix, dev, ps, go))
        for dev, ps in payloads.items()
    ]
    for proc in procs:
        proc.start()
    time.sleep(2.0)  # let every publisher connect; the clock starts at "go"
    started = time.perf_counter()
    go.set()
    while not done() and time.perf_counter() - started < 900:  # type: ignore[operator]
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    for proc in procs:
        proc.join(60)
    return elapsed


def _through_ingest(
    url: str, port: int, tag: str, devices: int, messages: int, per: int
) -> dict[str, float]:
    names = [f"{tag}-{d}" for d in range(devices)]
    _register(url, names)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=messages * per + 3600)
    payloads = {name: _payloads(name, messages, per, start) for name in names}
    settings = IngestSettings(
        mqtt=MqttSettings(port=port, topic_prefix=tag),
        database=DatabaseSettings(url=SecretStr(url)),
        client_id=f"bench-{tag}",
    )
    service = IngestService(settings, url)
    service.start()
    total = devices * messages
    try:
        seconds = _drive(
            port,
            tag,
            payloads,
            lambda: service.stats.messages >= total and service.stats.acked >= total,
        )
    finally:
        service.stop()
    readings = devices * messages * per
    stored = _count(url, f"{tag}-")
    return {"readings": readings, "stored": stored, "seconds": seconds, "per_s": readings / seconds}


def _naive(
    url: str, port: int, tag: str, devices: int, messages: int, per: int
) -> dict[str, float]:
    """The baseline: decode, INSERT the readings and COMMIT, for every message."""
    names = [f"{tag}-{d}" for d in range(devices)]
    _register(url, names)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=messages * per + 3600)
    payloads = {name: _payloads(name, messages, per, start) for name in names}
    conn = psycopg.connect(url)
    handled = [0]

    def on_message(_c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        body = json.loads(msg.payload)
        conn.cursor().executemany(
            "INSERT INTO readings (ts, device_id, metric, value, seq) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING",
            [
                (r["ts"], body["device"], r["metric"], r["value"], body["seq"])
                for r in body["readings"]
            ],
        )
        conn.commit()
        handled[0] += 1

    client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"naive-{tag}")
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe(f"{tag}/v1/+/+/readings", qos=1)
    client.loop_start()
    time.sleep(0.5)
    total = devices * messages
    try:
        seconds = _drive(port, tag, payloads, lambda: handled[0] >= total)
    finally:
        client.disconnect()
        client.loop_stop()
        conn.close()
    readings = devices * messages * per
    return {
        "readings": readings,
        "stored": _count(url, f"{tag}-"),
        "seconds": seconds,
        "per_s": readings / seconds,
    }


def _ceiling(url: str, devices: int, readings_per_device: int, per: int) -> dict[str, float]:
    names = [f"ceil-{d}" for d in range(devices)]
    _register(url, names)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    rows: list[ReadingRow] = [
        (start + timedelta(seconds=i), name, "strain_ue", float(i % 500), i // per)
        for name in names
        for i in range(readings_per_device)
    ]
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for offset in range(0, len(rows), 5000):
            insert_readings(conn, rows[offset : offset + 5000])
            conn.commit()
        seconds = time.perf_counter() - started
    return {
        "readings": len(rows),
        "stored": _count(url, "ceil-"),
        "seconds": seconds,
        "per_s": len(rows) / seconds,
    }


def run(admin_url: str, *, quick: bool) -> dict[str, float]:
    devices = 2 if quick else 4
    batched = 1000 if quick else 5000  # messages of 100 readings per device
    single = 5000 if quick else 20_000  # messages of 1 reading per device
    naive = 300 if quick else 1000  # messages of 100 readings per device
    broker = MosquittoBroker(
        Path(tempfile.mkdtemp(prefix="mamori-bench-")),
        extra_config="max_inflight_messages 0\nmax_queued_messages 0\n",
    )
    info = broker.start()
    try:
        with migrated_database(admin_url, "mamori_bench_ingest") as url:
            ceiling = _ceiling(url, devices, batched * 100, 100)
            ingest_batched = _through_ingest(url, info.port, "ib", devices, batched, 100)
            ingest_single = _through_ingest(url, info.port, "is", devices, single, 1)
            naive_batched = _naive(url, info.port, "nb", devices, naive, 100)
    finally:
        broker.stop()
    figures: dict[str, float] = {"devices": devices}
    for name, result in (
        ("ingest_batched", ingest_batched),
        ("ingest_single", ingest_single),
        ("naive_batched", naive_batched),
        ("copy_ceiling", ceiling),
    ):
        figures[f"{name}_readings"] = result["readings"]
        figures[f"{name}_readings_stored"] = result["stored"]
        figures[f"{name}_seconds"] = round(result["seconds"], 3)
        figures[f"{name}_readings_per_s"] = round(result["per_s"])
    figures["ingest_single_messages_per_s"] = figures["ingest_single_readings_per_s"]
    figures["ratio_ingest_batched_to_naive"] = round(
        ingest_batched["per_s"] / naive_batched["per_s"], 2
    )
    figures["ratio_ingest_batched_to_copy_ceiling"] = round(
        ingest_batched["per_s"] / ceiling["per_s"], 3
    )
    figures["ratio_ingest_single_to_batched"] = round(
        ingest_single["per_s"] / ingest_batched["per_s"], 3
    )
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small size, under a minute")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    figures = run(args.database_url, quick=args.quick)
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    complete = all(
        figures[f"{n}_readings_stored"] == figures[f"{n}_readings"]
        for n in ("ingest_batched", "ingest_single", "naive_batched", "copy_ceiling")
    )
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
