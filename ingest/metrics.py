"""Prometheus metrics for ingest, read from the service's counters at scrape time.

A collector over :class:`IngestStats` rather than a second set of counters: one source of
truth, and no global registry (tests start many services in one process).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest.service import IngestService


class IngestCollector(Collector):
    def __init__(self, service: IngestService) -> None:
        self._service = service

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        stats = self._service.stats
        for name, value, doc in (
            ("mamori_ingest_messages", stats.messages, "MQTT messages taken from the queue"),
            ("mamori_ingest_rows_inserted", stats.rows_inserted, "readings stored"),
            (
                "mamori_ingest_rows_duplicate",
                stats.duplicates,
                "readings dropped as already stored",
            ),
            ("mamori_ingest_batches", stats.batches, "committed batches"),
            ("mamori_ingest_acked", stats.acked, "messages acknowledged after commit"),
            ("mamori_ingest_db_retries", stats.db_retries, "batch commits retried"),
            ("mamori_ingest_photos", stats.photos, "photos assembled and recorded"),
            (
                "mamori_ingest_flush_seconds",
                stats.flush_seconds_total,
                "time spent committing batches",
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        letters = CounterMetricFamily(
            "mamori_ingest_dead_letters", "messages dead-lettered", labels=["reason"]
        )
        for reason, count in sorted(stats.dead_letters_by_reason.items()):
            letters.add_metric([reason], count)
        yield letters
        yield GaugeMetricFamily(
            "mamori_ingest_in_flight",
            "messages received but not yet acknowledged",
            value=self._service.in_flight(),
        )
        yield GaugeMetricFamily(
            "mamori_ingest_last_flush_seconds",
            "latency of the last commit",
            value=stats.last_flush_s,
        )


def serve_metrics(service: IngestService, port: int, host: str = "127.0.0.1") -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(IngestCollector(service))
    start_http_server(port, addr=host, registry=registry)
    return registry
