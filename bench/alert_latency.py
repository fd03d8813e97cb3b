"""Alert latency: a reading that crosses a threshold → the alert on MQTT, in milliseconds.

    python -m bench.alert_latency [--quick] [--json] [--database-url URL]

The engine evaluates while background devices publish a steady load of readings; probe
readings cross a rule's threshold and a watcher times the alert's arrival on the alert
topic. Baseline, measured in the same run: the same probes with no background load. The
ratio says how much load slows an alert down. Private Mosquitto, throwaway database.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from alerts.latency import LatencyResult, run
from core.settings import MqttSettings
from mamori.broker import MosquittoBroker
from tests.support import migrated_database


def _figures(prefix: str, result: LatencyResult) -> dict[str, float]:
    return {
        f"{prefix}_transitions": len(result.samples_ms),
        f"{prefix}_lost": result.lost,
        f"{prefix}_background_readings_per_s": round(result.background_rate),
        f"{prefix}_p50_ms": round(result.percentile(50), 2),
        f"{prefix}_p99_ms": round(result.percentile(99), 2),
        f"{prefix}_max_ms": round(max(result.samples_ms, default=0.0), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="fewer probes, lighter load: under a minute"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args(argv)
    probes = 100 if args.quick else 400
    load = 5_000.0 if args.quick else 20_000.0
    broker = MosquittoBroker(Path(tempfile.mkdtemp(prefix="mamori-bench-alerts-")))
    info = broker.start()
    try:
        with migrated_database(args.database_url, "mamori_bench_alerts") as url:
            idle = run(
                MqttSettings(host=info.host, port=info.port, topic_prefix="bidle"),
                url,
                probes=probes,
                background_rate=1.0,
                devices=1,
            )
            loaded = run(
                MqttSettings(host=info.host, port=info.port, topic_prefix="bload"),
                url,
                probes=probes,
                background_rate=load,
            )
    finally:
        broker.stop()
    figures = {**_figures("idle", idle), **_figures("loaded", loaded)}
    figures["ratio_p99_loaded_to_idle"] = round(loaded.percentile(99) / idle.percentile(99), 2)
    if args.json:
        print(json.dumps(figures))
    else:
        width = max(len(k) for k in figures)
        for key, value in figures.items():
            print(f"{key:<{width}}  {value}")
    return 0 if idle.lost == 0 and loaded.lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
