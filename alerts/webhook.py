"""Webhook delivery from the database outbox: signed, retried with backoff, idempotent.

Each notification is POSTed as the JSON of :class:`core.alerting.AlertMessage` with::

    Idempotency-Key: alert-{alert_id}-event-{event_id}
    X-Mamori-Timestamp: {unix seconds}
    X-Mamori-Signature: sha256={hex HMAC-SHA256(secret, "{timestamp}." + body)}

A 2xx marks it delivered; a network error, a timeout, 408, 425, 429 or a 5xx schedules
another attempt after ``base * 2**attempts`` seconds (capped); any other 4xx, or running
out of attempts, gives up and records why. The outbox row is written in the same
transaction as the transition, so a restart loses nothing; a crash between the POST
and the commit sends it again with the same key, which the receiver uses to drop the
repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx

from alerts.ruleset import WebhookTarget
from core.errors import ConfigError
from store import alerts as q

_log = logging.getLogger(__name__)

_RETRY_STATUSES = frozenset({408, 425, 429})


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str) -> bool:
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def resolve_secrets(
    targets: list[WebhookTarget], environ: Mapping[str, str] | None = None
) -> dict[str, bytes]:
    """Each target's HMAC key from its environment variable; a missing one is a ConfigError."""
    env = os.environ if environ is None else environ
    secrets: dict[str, bytes] = {}
    for target in targets:
        value = env.get(target.secret_env, "")
        if len(value) < 16:
            raise ConfigError(
                f"webhook {target.name}: set {target.secret_env} to a secret of at least "
                "16 characters"
            )
        secrets[target.name] = value.encode()
    return secrets


@dataclass(slots=True)
class DispatchStats:
    delivered: int = 0
    retried: int = 0
    given_up: int = 0


class WebhookDispatcher:
    def __init__(
        self,
        targets: list[WebhookTarget],
        secrets: Mapping[str, bytes],
        client: httpx.Client,
        clock: Callable[[], datetime],
        *,
        backoff_base_s: float = 2.0,
        backoff_max_s: float = 600.0,
        max_attempts: int = 15,
    ) -> None:
        self.targets = {t.name: t for t in targets}
        self.secrets = dict(secrets)
        self.client = client
        self.clock = clock
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self.stats = DispatchStats()

    def dispatch_due(self, conn: q.Conn, limit: int = 50) -> int:
        """Attempt every due notification once; commit; return how many were attempted."""
        if not self.targets:
            return 0
        with conn.transaction():
            rows = q.due_notifications(conn, self.clock(), limit)
            for row in rows:
                self._attempt(conn, row)
        return len(rows)

    def _attempt(self, conn: q.Conn, row: q.OutboxRow) -> None:
        target = self.targets.get(row.target)
        now = self.clock()
        if target is None:
            q.mark_attempt_failed(
                conn, row.id, error="target no longer configured", next_at=None, at=now
            )
            self.stats.given_up += 1
            return
        body = row.payload.encode()
        timestamp = str(int(now.timestamp()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": row.idempotency_key,
            "X-Mamori-Timestamp": timestamp,
            "X-Mamori-Signature": sign(self.secrets[target.name], timestamp, body),
        }
        try:
            response = self.client.post(target.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            self._failed(conn, row, f"{type(exc).__name__}: {exc}", retry=True)
            return
        if response.is_success:
            q.mark_delivered(conn, row.id, self.clock())
            self.stats.delivered += 1
            return
        status = response.status_code
        retry = status >= 500 or status in _RETRY_STATUSES
        self._failed(conn, row, f"HTTP {status}", retry=retry)

    def _failed(self, conn: q.Conn, row: q.OutboxRow, error: str, *, retry: bool) -> None:
        now = self.clock()
        attempts = row.attempts + 1
        if retry and attempts < self.max_attempts:
            delay = min(self.backoff_base_s * 2**row.attempts, self.backoff_max_s)
            q.mark_attempt_failed(
                conn, row.id, error=error, next_at=now + timedelta(seconds=delay), at=now
            )
            self.stats.retried += 1
            _log.warning(
                "webhook %s (%s) failed: %s; retry in %.0fs",
                row.target,
                row.idempotency_key,
                error,
                delay,
            )
            return
        q.mark_attempt_failed(conn, row.id, error=error, next_at=None, at=now)
        self.stats.given_up += 1
        _log.error("webhook %s (%s) given up: %s", row.target, row.idempotency_key, error)


__all__ = ["DispatchStats", "WebhookDispatcher", "resolve_secrets", "sign", "verify"]
