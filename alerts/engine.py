"""The alert engine: readings in over MQTT, transitions out over MQTT, webhooks and CAP.

Two threads, as in ingest. paho's network thread queues each readings message,
unacknowledged, from the engine's own persistent subscription (a plain one by default,
which survives broker restarts; ``share_group`` makes it ``$share/{group}/...``, though a
second replica would see only part of each asset's readings, so run one replica per
rules file, or a standby). The worker thread takes what is queued (a few milliseconds'
worth), feeds it to the :class:`~alerts.evaluator.Evaluator`, and in one transaction
writes the resulting transitions, their CAP messages and outbox rows, and the state of
every rule it touched. Only after that commit does it publish and acknowledge, so a
crash leaves the messages to be redelivered, and the saved per-source reading times
make the evaluator ignore what it had already counted: no transition is lost or
repeated. Every ``tick_s`` (and whenever :meth:`AlertEngine.tick_now` asks) it lets
time pass for every rule (silence, sliding windows, durations), reads new damage
findings, escalates unacknowledged alerts and delivers due webhooks.
"""

from __future__ import annotations

import functools
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import paho.mqtt.client as paho
import psycopg
from pydantic import ValidationError

from alerts.book import AlertBook, Outcome
from alerts.evaluator import BindingSnapshot, Decision, Evaluator
from alerts.ruleset import FindingRule, RuleFile
from alerts.webhook import WebhookDispatcher, resolve_secrets
from core.alerting import AlertState, AssetAlerts, OpenAlert
from core.errors import PayloadError, StoreError, TransportError
from core.messages import ReadingBatch, decode
from core.mqtt import AckingSubscriber, Inbound
from core.registry import AssetSpec
from core.settings import AlertsSettings
from core.topics import TopicKind, Topics
from store import alerts as q
from store.db import connect as db_connect

_log = logging.getLogger(__name__)

FINDINGS_CURSOR = "detections"
MEASUREMENTS_CURSOR = "review_measurements"
EVENTS_CURSOR = "alert_events"
#: Events are re-read this far behind the cursor: a transaction that took an id early and
#: committed late is still followed up (following up is idempotent).
_EVENTS_OVERLAP = 200
_MAX_PAYLOAD = 1024 * 1024
_BATCH_WINDOW_S = 0.005
_REGISTRY_REFRESH_S = 5.0


class LeaseLostError(Exception):
    """Another instance holds the engine lease now."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"the engine lease is held by {holder or 'nobody'}")
        self.holder = holder


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class _TickRequest:
    done: threading.Event


@dataclass(slots=True)
class EngineStats:
    messages: int = 0
    readings: int = 0
    ignored: int = 0
    transitions: int = 0
    ticks: int = 0
    published: int = 0
    restored_bindings: int = 0
    db_retries: int = 0
    by_transition: dict[str, int] = field(default_factory=dict)


class AlertEngine:
    """One alert engine. ``start()``, then ``stop()``."""

    def __init__(
        self,
        settings: AlertsSettings,
        database_url: str,
        rules: RuleFile,
        *,
        client_id: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        http: httpx.Client | None = None,
        webhook_secrets: dict[str, bytes] | None = None,
        backoff_base_s: float = 2.0,
        registry_refresh_s: float = _REGISTRY_REFRESH_S,
    ) -> None:
        self.settings = settings
        self._registry_refresh_s = registry_refresh_s
        client_id = client_id or settings.client_id
        # The lease is named after the MQTT session: engines consuming one session are
        # one engine, of which one instance is active and the others stand by.
        self._lease = client_id
        self.instance = settings.instance or socket.gethostname()
        self.lost_lease = False
        self._renewed_at = 0.0
        self.rules = rules
        self.stats = EngineStats()
        self._url = database_url
        self._clock = clock
        self._topics = Topics(settings.mqtt.topic_prefix)
        self._queue: queue.Queue[Inbound | _TickRequest] = queue.Queue()
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._sender: threading.Thread | None = None
        self._send_now = threading.Event()
        self._http = http or httpx.Client(timeout=10.0)
        self._owns_http = http is None
        secrets = (
            webhook_secrets if webhook_secrets is not None else resolve_secrets(rules.webhooks)
        )
        self._dispatcher = WebhookDispatcher(
            rules.webhooks, secrets, self._http, clock, backoff_base_s=backoff_base_s
        )
        self._mqtt = AckingSubscriber(
            settings.mqtt,
            client_id,
            [self._filter()],
            self._queue.put,
            name="alert engine",
            stopping=self._stopping,
            clock=clock,
        )
        self._device_assets: dict[str, str] = {}
        self._assets: list[AssetSpec] = []
        self._intervals: dict[str, float] = {}
        self._published: dict[str, tuple[tuple[int, int, str], ...]] = {}
        self._registry_loaded_at = 0.0
        self._stale = False  # the evaluator may be ahead of the database
        self.evaluator: Evaluator
        self.book: AlertBook

    # Lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> bool:
        """Stand by until this instance holds the engine lease, then load the saved state
        and subscribe. False when stopped while standing by."""
        self._conn = db_connect(self._url, autocommit=True, application_name="mamori-alerts")
        if not self._await_lease():
            self._conn.close()
            return False
        self._load_registry()
        restored = self._rebuild()
        self.stats.restored_bindings = restored
        try:
            self._mqtt.start(receive_maximum=1000, timeout_s=timeout_s)
        except TransportError:
            self._conn.close()
            raise
        if q.get_cursor(self._conn, EVENTS_CURSOR) is None:
            q.set_cursor(self._conn, EVENTS_CURSOR, q.last_event_id(self._conn), self._clock())
        self._republish()
        self._worker = threading.Thread(target=self._work, name="alerts-worker", daemon=True)
        self._worker.start()
        if self.rules.webhooks:
            self._sender = threading.Thread(
                target=self._send_loop, name="alerts-webhooks", daemon=True
            )
            self._sender.start()
        _log.info(
            "alert engine: %d rules bound %d times, %d restored; subscribed to %s",
            len(self.rules.rules),
            len(self.evaluator.bindings),
            restored,
            self._filter(),
        )
        return True

    def request_stop(self) -> None:
        """Ask a running or standing-by engine to stop (from a signal handler)."""
        self._stopping.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        self._stopping.set()
        if self._worker is not None:
            self._worker.join(timeout_s)
            if not self.lost_lease:
                try:  # a standby takes over now instead of after the lease's time
                    q.release_lease(self._conn, self._lease, self.instance)
                except StoreError as err:
                    _log.warning("could not release the engine lease: %s", err)
        self._send_now.set()
        if self._sender is not None:
            self._sender.join(timeout_s)
        self._mqtt.stop()
        if self._owns_http:
            self._http.close()
        self._conn.close()

    def tick_now(self, timeout_s: float = 10.0) -> bool:
        """Ask the worker for a tick after what is already queued; wait for it."""
        request = _TickRequest(threading.Event())
        self._queue.put(request)
        return request.done.wait(timeout_s)

    def wait_idle(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    # Leadership -----------------------------------------------------------------------

    def _await_lease(self) -> bool:
        ttl = self.settings.lease_ttl_s
        announced = None
        while not self._stopping.is_set():
            try:
                holder = q.take_lease(self._conn, self._lease, self.instance, ttl)
            except StoreError as err:
                _log.warning("standing by: %s", err)
                holder = None
                self._reconnect_db()
            if holder == self.instance:
                self._renewed_at = time.monotonic()
                _log.info("alert engine %s holds the lease %s", self.instance, self._lease)
                return True
            if holder is not None and holder != announced:
                _log.info(
                    "alert engine %s standing by: %s holds the lease %s",
                    self.instance,
                    holder,
                    self._lease,
                )
                announced = holder
            self._stopping.wait(min(5.0, ttl / 3))
        return False

    def _hold_lease(self) -> None:
        """Renew the lease inside the caller's transaction: everything it writes commits
        only if this instance still holds it (a standby that took over fences us out)."""
        holder = q.take_lease(self._conn, self._lease, self.instance, self.settings.lease_ttl_s)
        if holder != self.instance:
            raise LeaseLostError(holder)
        self._renewed_at = time.monotonic()

    def _renew(self) -> None:
        with self._conn.transaction():
            self._hold_lease()

    # Start-up -------------------------------------------------------------------------

    def _load_registry(self) -> bool:
        """Read assets and devices; True when the assets or their devices' reporting
        intervals differ from what the evaluator was built on."""
        assets = q.load_assets(self._conn)
        devices = q.load_devices(self._conn)
        intervals: dict[str, float] = {}
        for device in devices:
            if device.asset_id is None or device.expected_interval_s is None:
                continue
            current = intervals.get(device.asset_id)
            value = float(device.expected_interval_s)
            intervals[device.asset_id] = value if current is None else min(current, value)
        self._device_assets = {d.id: d.asset_id for d in devices if d.asset_id is not None}
        self._registry_loaded_at = time.monotonic()
        changed = (assets, intervals) != (self._assets, self._intervals)
        self._assets = assets
        self._intervals = intervals
        return changed

    def _refresh_registry(self) -> None:
        """Pick up assets and devices registered or changed while running. Called only
        between batches, when the evaluator holds nothing uncommitted, so rebinding the
        rules from the saved state loses nothing; a new asset gets its rules at once."""
        if time.monotonic() - self._registry_loaded_at < self._registry_refresh_s:
            return
        if self._load_registry():
            restored = self._rebuild()
            _log.info(
                "registry changed: %d assets; rules rebound %d times, %d restored",
                len(self._assets),
                len(self.evaluator.bindings),
                restored,
            )

    def _rebuild(self) -> int:
        """A fresh evaluator with the state last committed: at start, and after a failed
        commit (so the evaluator is never ahead of the database)."""
        saved = q.load_rule_states(self._conn)  # first: a failure here changes nothing
        self.evaluator = Evaluator(self.rules, self._assets, self._intervals)
        self.book = AlertBook(self.rules, {a.id: a for a in self._assets}, clock=self._clock)
        restored = 0
        for key, raw in saved.items():
            binding = self.evaluator.bindings.get(key)
            if binding is None:
                continue
            try:
                binding.restore(BindingSnapshot.model_validate_json(raw))
            except (ValidationError, ValueError, TypeError):
                _log.warning("saved state of %s on %s is unreadable; starting afresh", *key)
                continue
            restored += 1
        return restored

    def _republish(self) -> None:
        """Retained messages are idempotent: after a restart, say again what is open."""
        assets = {row.asset_id for row in q.list_alerts(self._conn, limit=10_000)}
        for asset_id in sorted(assets):
            self._publish_asset(asset_id, None)

    # MQTT ---------------------------------------------------------------------------------

    def _filter(self) -> str:
        topic = self._topics.all_readings()
        group = self.settings.share_group
        if group is not None and self.settings.mqtt.protocol == "5":
            return self._topics.shared(group, topic)
        return topic

    # Worker thread ----------------------------------------------------------------------

    def _work(self) -> None:
        next_tick = time.monotonic() + self.settings.tick_s
        while not self._stopping.is_set():
            timeout = max(0.0, min(0.2, next_tick - time.monotonic()))
            try:
                first = self._queue.get(timeout=timeout)
            except queue.Empty:
                first = None
            items: list[Inbound | _TickRequest] = [] if first is None else [first]
            deadline = time.monotonic() + _BATCH_WINDOW_S
            while items and not isinstance(items[-1], _TickRequest) and len(items) < 500:
                try:
                    items.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            inbound = [i for i in items if isinstance(i, Inbound)]
            if inbound:
                self._guarded(functools.partial(self._process, inbound))
            requests = [i for i in items if isinstance(i, _TickRequest)]
            if requests or time.monotonic() >= next_tick:
                self._guarded(self._tick)
                next_tick = time.monotonic() + self.settings.tick_s
            elif time.monotonic() - self._renewed_at > self.settings.lease_ttl_s / 3:
                self._guarded(self._renew)
            for request in requests:
                request.done.set()
                self._queue.task_done()

    def _guarded(self, work: Callable[[], None]) -> None:
        """Retry while the database is away; the messages stay unacknowledged meanwhile.
        Anything else is a bug: logged, and the loop goes on (the broker redelivers the
        unacknowledged messages after a reconnect)."""
        delay = 0.2
        while not self._stopping.is_set():
            try:
                if self._stale:
                    # The failed attempt may have moved the evaluator past what was
                    # committed; evaluating again from there would skip the readings it
                    # had seen (and lose their transitions), so start from the database.
                    self._rebuild()
                    self._stale = False
                work()
                return
            except LeaseLostError as err:
                _log.critical(
                    "alert engine %s lost the lease %s to %s: stepping down, nothing written",
                    self.instance,
                    self._lease,
                    err.holder or "nobody",
                )
                self.lost_lease = True
                self._stopping.set()
                return
            except (StoreError, psycopg.Error) as err:
                self._stale = True
                self.stats.db_retries += 1
                _log.warning("alert engine could not commit (%s); retrying in %.1fs", err, delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._reconnect_db()
            except Exception:
                _log.exception("alert engine failed on a batch; going on")
                self._stale = True
                return

    def _process(self, inbound: list[Inbound]) -> None:
        if any(self._from_unknown_device(m) for m in inbound):
            self._refresh_registry()
        decisions: list[Decision] = []
        for message in inbound:
            decisions.extend(self._evaluate(message))
        outcomes = self._commit(decisions)
        self.stats.messages += len(inbound)
        self._after_commit(outcomes)
        for message in inbound:
            self._mqtt.ack(message)
            self._queue.task_done()

    def _evaluate(self, message: Inbound) -> list[Decision]:
        try:
            parsed = self._topics.parse(message.topic)
            if parsed.kind is not TopicKind.READINGS:
                return []
            batch = decode(ReadingBatch, message.payload, max_bytes=_MAX_PAYLOAD)
        except PayloadError as err:
            # Ingest dead-letters bad payloads; here they are just not evidence.
            _log.debug("ignoring %s: %s", message.topic, err)
            self.stats.ignored += 1
            return []
        asset = self._asset_of(batch.device)
        if asset is None:
            self.stats.ignored += 1
            return []
        decisions: list[Decision] = []
        for reading in batch.readings:
            self.stats.readings += 1
            decisions.extend(
                self.evaluator.observe(
                    asset, reading.metric, reading.ts, reading.value, batch.device
                )
            )
        return decisions

    def _asset_of(self, device: str) -> str | None:
        return self._device_assets.get(device)

    def _from_unknown_device(self, message: Inbound) -> bool:
        try:
            parsed = self._topics.parse(message.topic)
        except PayloadError:
            return False
        return parsed.kind is TopicKind.READINGS and parsed.device not in self._device_assets

    def _tick(self) -> None:
        self._refresh_registry()
        now = self._clock()
        self.stats.ticks += 1
        self._reset_resolved_findings()
        decisions = self.evaluator.tick(now)
        cursor = q.get_cursor(self._conn, FINDINGS_CURSOR) or 0
        findings = q.new_findings(self._conn, cursor)
        # Boxes inspectors moved or drew, once a worker measured them: a crack the model
        # missed or under-measured raises its finding alert too.
        measured_cursor = q.get_cursor(self._conn, MEASUREMENTS_CURSOR) or 0
        measured = q.new_box_measurements(self._conn, measured_cursor)
        for row in [*findings, *measured]:
            decisions.extend(
                self.evaluator.finding(
                    row.asset_id, row.damage_type, row.max_width_mm, row.confidence, row.created_at
                )
            )

        def advance_cursor() -> None:
            if findings:
                q.set_cursor(self._conn, FINDINGS_CURSOR, findings[-1].id, now)
            if measured:
                q.set_cursor(self._conn, MEASUREMENTS_CURSOR, measured[-1].id, now)

        outcomes = self._commit(decisions, extra=advance_cursor, escalate_at=now)
        self._after_commit(outcomes)
        self._follow_up(now)
        self._sync_published()
        self._send_now.set()

    def _follow_up(self, now: datetime) -> None:
        """CAP messages and webhooks for transitions others wrote (the API's operators)."""
        cursor = q.get_cursor(self._conn, EVENTS_CURSOR) or 0
        with self._conn.transaction():
            rows = q.events_after(self._conn, max(0, cursor - _EVENTS_OVERLAP), limit=5000)
            for row in rows:
                self.book.follow_up(self._conn, row)
            if rows and rows[-1].id > cursor:
                q.set_cursor(self._conn, EVENTS_CURSOR, rows[-1].id, now)

    def _sync_published(self) -> None:
        """Operators acknowledge and resolve through the CLI or the API, which write the
        database only: publish every asset whose open alerts changed since we last did."""
        current: dict[str, tuple[tuple[int, int, str], ...]] = {}
        for row in q.list_alerts(self._conn, limit=10_000):
            current.setdefault(row.asset_id, ())
            current[row.asset_id] += ((row.id, row.level, row.state),)
        for asset_id in sorted(set(current) | set(self._published)):
            if self._published.get(asset_id, ()) != tuple(sorted(current.get(asset_id, ()))):
                self._publish_asset(asset_id, None)

    def _reset_resolved_findings(self) -> None:
        open_keys = {(r.rule_id, r.asset_id) for r in q.list_alerts(self._conn, limit=10_000)}
        for key, binding in self.evaluator.bindings.items():
            if (
                isinstance(binding.rule, FindingRule)
                and binding.rule.emit
                and binding.ladder.level
                and key not in open_keys
            ):
                self.evaluator.reset(key)

    def _commit(
        self,
        decisions: list[Decision],
        *,
        extra: Callable[[], None] | None = None,
        escalate_at: datetime | None = None,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        with self._conn.transaction():
            self._hold_lease()
            for decision in decisions:
                outcome = self.book.apply(self._conn, decision)
                if outcome is not None:
                    outcomes.append(outcome)
            if escalate_at is not None:
                outcomes.extend(self.book.escalate_due(self._conn, escalate_at))
                outcomes.extend(self._withdraw_rejected_findings(escalate_at))
            dirty = [b for b in self.evaluator.bindings.values() if b.dirty]
            q.save_rule_states(
                self._conn,
                [(b.rule.id, b.asset.id, b.snapshot().model_dump_json()) for b in dirty],
                self._clock(),
            )
            if extra is not None:
                extra()
        for binding in dirty:
            binding.dirty = False
        return outcomes

    def _withdraw_rejected_findings(self, now: datetime) -> list[Outcome]:
        """Resolve a finding alert once inspectors have rejected (or reclassified out of
        the rule) every detection that raised it: the model saw damage, the engineers
        say there is none. One detection still standing, or unreviewed, keeps it open.
        Runs in the tick's transaction, so the resolve and its CAP Cancel commit
        together."""
        outcomes: list[Outcome] = []
        for row in q.list_alerts(self._conn, limit=10_000):
            try:
                rule = self.rules.rule(row.rule_id)
            except KeyError:
                continue
            if not isinstance(rule, FindingRule):
                continue
            support = [
                d
                for d in q.reviewed_detections(self._conn, row.asset_id, row.opened_at)
                if rule.matches(d.model_damage_type, d.max_width_mm, d.confidence)
            ]
            standing = [d for d in support if not d.rejected and d.damage_type in rule.damage_types]
            if not support or standing:
                continue
            reviewer = next((d.reviewer for d in reversed(support) if d.reviewer), "review")
            ids = ", ".join(str(d.id) for d in support)
            note = f"every finding behind it was rejected or reclassified on review ({ids})"
            outcomes.append(self.book.resolve(self._conn, row.id, reviewer, now, note))
        return outcomes

    def _after_commit(self, outcomes: list[Outcome]) -> None:
        for outcome in outcomes:
            self.stats.transitions += 1
            name = outcome.message.transition.value
            self.stats.by_transition[name] = self.stats.by_transition.get(name, 0) + 1
        # One message per transition, in order, so a subscriber sees each change; the
        # open list in each is the asset's state after the whole batch.
        for outcome in outcomes:
            self._publish_asset(outcome.message.asset, outcome)
        if outcomes and self.rules.webhooks:
            self._send_now.set()

    def _publish_asset(self, asset_id: str, change: Outcome | None) -> None:
        asset = self.book.assets.get(asset_id)
        if asset is None:
            return
        rows = [r for r in q.list_alerts(self._conn, limit=10_000) if r.asset_id == asset_id]
        self._published[asset_id] = tuple(sorted((r.id, r.level, r.state) for r in rows))
        open_alerts = [
            OpenAlert(
                alert_id=r.id,
                rule=r.rule_id,
                level=r.level,
                state=AlertState(r.state),
                title=r.title,
                title_ja=self.book._title_ja(r.rule_id),
                opened_at=r.opened_at,
                updated_at=r.updated_at,
                value=r.value,
            )
            for r in rows
        ]
        message = AssetAlerts(
            site=asset.site_id,
            asset=asset_id,
            level=max((a.level for a in open_alerts), default=0),
            open=open_alerts,
            change=change.message if change else None,
            at=change.message.at if change else self._clock(),
        )
        info = self._mqtt.client.publish(
            self._topics.alerts(asset.site_id, asset_id),
            message.model_dump_json().encode(),
            qos=1,
            retain=True,
        )
        if info.rc != paho.MQTT_ERR_SUCCESS:
            _log.warning("alert message for %s not queued (rc %s)", asset_id, info.rc)
        self.stats.published += 1

    def _send_loop(self) -> None:
        """Webhooks on their own thread and connection: a slow or dead receiver must not
        hold up evaluation. Woken after each commit that queued something, and every
        second for retries that came due."""
        conn: psycopg.Connection[tuple[object, ...]] | None = None
        while not self._stopping.is_set():
            self._send_now.wait(1.0)
            self._send_now.clear()
            try:
                if conn is None or conn.closed:
                    conn = db_connect(self._url, autocommit=True, application_name="mamori-hooks")
                while self._dispatcher.dispatch_due(conn) and not self._stopping.is_set():
                    pass
            except (StoreError, psycopg.Error) as err:
                _log.warning("webhook delivery paused: %s", err)
                if conn is not None:
                    conn.close()
                conn = None
            except Exception:
                _log.exception("webhook delivery failed; going on")
        if conn is not None:
            conn.close()

    def _reconnect_db(self) -> None:
        try:
            self._conn.close()
        except Exception:
            _log.debug("closing a broken connection failed", exc_info=True)
        try:
            self._conn = db_connect(self._url, autocommit=True, application_name="mamori-alerts")
        except StoreError as err:
            _log.warning("database still unreachable: %s", err)


__all__ = ["AlertEngine", "EngineStats", "LeaseLostError"]
