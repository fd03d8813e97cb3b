"""Webhooks from the outbox: a receiver that is down and comes back gets every
notification exactly once, signed, with its idempotency key."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psycopg
import pytest

from alerts.book import AlertBook
from alerts.evaluator import Decision
from alerts.ruleset import WebhookTarget, parse_rules
from alerts.webhook import WebhookDispatcher, resolve_secrets, verify
from core.alerting import AlertMessage
from core.errors import ConfigError
from store import alerts as q
from tests.integration.alerts.helpers import RULES, T0, Clock, register_fleet

Conn = psycopg.Connection[tuple[object, ...]]
SECRET = b"a-test-secret-of-some-length"


class Receiver:
    """A real HTTP server that can be down (503), checks signatures and dedups by key."""

    def __init__(self) -> None:
        self.up = False
        self.attempts = 0
        self.received: dict[str, AlertMessage] = {}
        self.duplicates = 0
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.attempts += 1
                if not receiver.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                if not verify(
                    SECRET,
                    self.headers["X-Mamori-Timestamp"],
                    body,
                    self.headers["X-Mamori-Signature"],
                ):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                    self.end_headers()
                    return
                key = self.headers["Idempotency-Key"]
                if key in receiver.received:
                    receiver.duplicates += 1
                else:
                    receiver.received[key] = AlertMessage.model_validate_json(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_down_then_up_delivers_each_notification_once(
    database_url: str, db: Conn, receiver: Receiver
) -> None:
    fleet = register_fleet(database_url)
    target = f"centre-{fleet.station}"  # outbox rows of other tests are not ours
    rules = parse_rules(
        RULES
        + f"""
webhooks:
  - {{name: {target}, url: "{receiver.url}", secret_env: HOOK_SECRET}}
"""
    )
    clock = Clock()
    book = AlertBook(rules, {a.id: a for a in q.load_assets(db)}, clock=clock)
    for minutes, (old, new) in enumerate([(0, 2), (2, 3), (3, 4)]):
        at = T0 + timedelta(minutes=minutes)
        book.apply(db, Decision("river-level", fleet.station, at, old, new, 3.0, True))
    with httpx.Client(timeout=5) as http:
        dispatcher = WebhookDispatcher(
            rules.webhooks, {target: SECRET}, http, clock, backoff_base_s=10
        )
        clock.advance(minutes=5)
        assert dispatcher.dispatch_due(db) == 3
        assert dispatcher.stats.retried == 3
        assert receiver.received == {}
        # Backoff: nothing is due again until 10 s later.
        assert dispatcher.dispatch_due(db) == 0
        clock.advance(seconds=10)
        assert dispatcher.dispatch_due(db) == 3  # still down: now 20 s until the next try
        clock.advance(seconds=20)
        receiver.up = True
        assert dispatcher.dispatch_due(db) == 3
        clock.advance(hours=1)
        assert dispatcher.dispatch_due(db) == 0
    assert receiver.bad_signatures == 0
    assert receiver.duplicates == 0
    assert receiver.attempts == 9
    assert sorted(m.level for m in receiver.received.values()) == [2, 3, 4]
    assert all(key.startswith("alert-") for key in receiver.received)
    counts = q.outbox_counts(db)
    assert counts["pending"] == 0
    assert counts["delivered"] >= 3


def test_a_redelivery_carries_the_same_key(database_url: str, db: Conn, receiver: Receiver) -> None:
    """A crash between the POST and the commit sends again: the receiver sees the key twice
    and keeps one."""
    fleet = register_fleet(database_url)
    target = f"c-{fleet.station}"
    rules = parse_rules(
        RULES + f'\nwebhooks:\n  - {{name: {target}, url: "{receiver.url}", secret_env: S}}\n'
    )
    book = AlertBook(rules, {a.id: a for a in q.load_assets(db)}, clock=lambda: T0)
    book.apply(db, Decision("river-level", fleet.station, T0, 0, 2, 2.5, True))
    receiver.up = True
    clock = Clock(T0 + timedelta(seconds=1))
    with httpx.Client(timeout=5) as http:
        dispatcher = WebhookDispatcher(rules.webhooks, {target: SECRET}, http, clock)
        db.execute("SAVEPOINT before_delivery")
        assert dispatcher.dispatch_due(db) == 1
        db.execute("ROLLBACK TO SAVEPOINT before_delivery")  # the commit never happened
        assert dispatcher.dispatch_due(db) == 1
    assert len(receiver.received) == 1
    assert receiver.duplicates == 1


def test_client_errors_give_up_and_are_recorded(database_url: str, db: Conn) -> None:
    fleet = register_fleet(database_url)
    target = f"c-{fleet.station}"
    rules = parse_rules(
        RULES
        + f'\nwebhooks:\n  - {{name: {target}, url: "http://hooks.example/x", secret_env: S}}\n'
    )
    book = AlertBook(rules, {a.id: a for a in q.load_assets(db)}, clock=lambda: T0)
    book.apply(db, Decision("river-level", fleet.station, T0, 0, 2, 2.5, True))
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(410)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        dispatcher = WebhookDispatcher(rules.webhooks, {target: SECRET}, http, Clock())
        assert dispatcher.dispatch_due(db) == 1
        assert dispatcher.stats.given_up == 1
        assert dispatcher.dispatch_due(db) == 0
    request = seen[0]
    assert request.headers["Idempotency-Key"].startswith("alert-")
    assert verify(
        SECRET,
        request.headers["X-Mamori-Timestamp"],
        request.content,
        request.headers["X-Mamori-Signature"],
    )
    row = db.execute(
        "SELECT last_error, failed_at IS NOT NULL FROM alert_outbox WHERE target = %s",
        (target,),
    ).fetchone()
    assert row == ("HTTP 410", True)


def test_secrets_come_from_the_environment() -> None:
    target = WebhookTarget(name="c", url="https://x.example", secret_env="HOOK")
    assert resolve_secrets([target], {"HOOK": "s" * 16}) == {"c": b"s" * 16}
    with pytest.raises(ConfigError, match="set HOOK"):
        resolve_secrets([target], {"HOOK": "short"})
