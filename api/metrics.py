"""Prometheus metrics of the API, in a registry owned by one app (no global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mamori_api_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mamori_api_request_seconds",
            "HTTP request duration by route template",
            ["route", "method"],
            registry=self.registry,
        )
        self.logins = Counter(
            "mamori_api_logins_total",
            "Login attempts by outcome (ok, failed, limited)",
            ["outcome"],
            registry=self.registry,
        )
        self.reviews = Counter(
            "mamori_api_reviews_total",
            "Inspector decisions by action",
            ["action"],
            registry=self.registry,
        )
