"""The device outbox: how fast readings are made durable and sent, batched or not.

    python -m bench.edge_outbox [--quick] [--json]

Measured in one run against a private Mosquitto, for messages of 100 readings (batched)
and of 1 reading (the baseline):

- persist: readings/s written to the SQLite outbox (WAL, synchronous=FULL), each batch in
  its own transaction, as the agent's batcher does;
- drain: readings/s the forwarder publishes (QoS 1, waiting for each PUBACK, as the agent
  does) and deletes;
- the time a full outbox of the default size (``EdgeSettings.outbox_max_bytes``) takes to
  drain, from the batched drain rate in bytes/s (an extrapolation: the run drains less).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.messages import Reading
from core.settings import EdgeSettings, MqttSettings
from edge_agent.outbox import Outbox
from edge_agent.publisher import DevicePublisher
from mamori.broker import MosquittoBroker


def _measure(port: int, work: Path, batches: int, per_batch: int) -> dict[str, float]:
    box = Outbox(work / f"outbox-{per_batch}.db", max_bytes=1 << 34)
    publisher = DevicePublisher(
        MqttSettings(port=port, topic_prefix="bench"), "bench", f"dev-{per_batch}"
    )
    start = datetime.now(UTC) - timedelta(days=1)
    readings = [
        [
            Reading(
                metric="water_level_m", ts=start + timedelta(seconds=b * per_batch + i), value=1.0
            )
            for i in range(per_batch)
        ]
        for b in range(batches)
    ]
    began = time.perf_counter()
    for batch in readings:
        box.put_readings(publisher.readings_topic, publisher.device, batch)
    persist_s = time.perf_counter() - began
    size = box.stats().pending_bytes
    publisher.start()
    began = time.perf_counter()
    while items := box.peek(100):
        for item in items:
            publisher.publish_to(item.topic, item.payload)
        box.delete([item.id for item in items])
    drain_s = time.perf_counter() - began
    publisher.stop()
    box.close()
    total = batches * per_batch
    return {
        "readings": total,
        "bytes": size,
        "persist_readings_per_s": total / persist_s,
        "drain_readings_per_s": total / drain_s,
        "drain_messages_per_s": batches / drain_s,
        "drain_bytes_per_s": size / drain_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer messages: a few seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="mamori-bench-outbox-"))
    broker = MosquittoBroker(work / "broker")
    info = broker.start()
    try:
        batched = _measure(info.port, work, 300 if args.quick else 2000, 100)
        single = _measure(info.port, work, 1000 if args.quick else 5000, 1)
    finally:
        broker.stop()
    default_bytes = EdgeSettings.model_fields["outbox_max_bytes"].default
    figures: dict[str, float] = {}
    for name, result in (("batched", batched), ("single", single)):
        for key, value in result.items():
            figures[f"{name}_{key}"] = round(value, 1)
    figures["ratio_batched_over_single_persist"] = round(
        batched["persist_readings_per_s"] / single["persist_readings_per_s"], 1
    )
    figures["ratio_batched_over_single_drain"] = round(
        batched["drain_readings_per_s"] / single["drain_readings_per_s"], 1
    )
    figures["default_outbox_max_bytes"] = default_bytes
    figures["full_default_outbox_drain_seconds_extrapolated"] = round(
        default_bytes / batched["drain_bytes_per_s"], 1
    )
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
