"""The ingest loop: MQTT in, batched COPY out, acknowledgement only after commit.

Two threads. paho's network thread puts every message on a queue, unacknowledged. The
writer thread validates, gathers a batch until it holds ``batch_max_rows`` rows or its
oldest message waited ``flush_interval_ms``, commits it in one transaction (readings,
dead letters, liveness), and only then acknowledges its messages. The broker sends at
most ``max_inflight_messages`` unacknowledged messages (MQTT 5 receive maximum), so a
slow database slows delivery instead of growing memory. A crash at any point leaves the
uncommitted messages unacknowledged in our persistent session: the broker sends them
again and the natural key drops whatever had been stored.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from core.errors import DeadLetterReason, PayloadError, StoreError, TransportError
from core.messages import PhotoAck, encode
from core.mqtt import AckingSubscriber, Inbound
from core.settings import IngestSettings
from core.topics import TopicKind, Topics
from ingest.photos import AssembledPhoto, PhotoAssembler, PhotoLimits
from ingest.validate import Accepted, Limits, accept, check_sender
from store.blobs import FilesystemBlobStore
from store.db import connect as db_connect
from store.images import insert_image
from store.readings import (
    DeadLetter,
    DeviceSeen,
    ReadingRow,
    insert_dead_letters,
    insert_readings,
    set_device_state,
    touch_devices,
)
from store.registry import device_sites

_log = logging.getLogger(__name__)
_REGISTRY_REFRESH_S = 5.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class IngestStats:
    """Counters since start; written by the writer thread only."""

    messages: int = 0
    rows_offered: int = 0
    rows_inserted: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    staged_batches: int = 0
    acked: int = 0
    db_retries: int = 0
    photos: int = 0
    last_flush_s: float = 0.0
    flush_seconds_total: float = 0.0


@dataclass(slots=True)
class _Batch:
    messages: list[Inbound] = field(default_factory=list)
    rows: list[ReadingRow] = field(default_factory=list)
    seen: dict[str, DeviceSeen] = field(default_factory=dict)
    statuses: list[Accepted] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    photos: list[tuple[AssembledPhoto, datetime]] = field(default_factory=list)
    photo_acks: list[tuple[str, PhotoAck]] = field(default_factory=list)
    started: float = 0.0


class IngestService:
    """One ingest replica. ``start()``, then ``stop()`` flushes, acknowledges and leaves."""

    def __init__(
        self,
        settings: IngestSettings,
        database_url: str,
        *,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self._database_url = database_url
        self._clock = clock
        self._topics = Topics(settings.mqtt.topic_prefix)
        self._limits = Limits(
            max_payload_bytes=settings.max_payload_bytes,
            future_tolerance=timedelta(seconds=settings.future_tolerance_s),
            past_limit=timedelta(days=settings.past_limit_days),
        )
        self._queue: queue.Queue[Inbound] = queue.Queue()
        self._stopping = threading.Event()
        self._devices: dict[str, str] = {}
        self._devices_loaded_at = 0.0
        self._writer: threading.Thread | None = None
        self._committer: threading.Thread | None = None
        # Batches validated by the writer, waiting for the committer. Two deep: the writer
        # decodes the next batch while the database commits this one, and no further.
        self._commits: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._photos = PhotoAssembler(
            FilesystemBlobStore(settings.blob_dir),
            PhotoLimits(settings.max_photo_bytes, settings.max_photo_chunks),
        )
        self._mqtt = AckingSubscriber(
            settings.mqtt,
            settings.client_id,
            self._filters(),
            self._queue.put,
            name="ingest",
            stopping=self._stopping,
            clock=self._clock,
        )

    # Lifecycle ------------------------------------------------------------------------

    def start(self, timeout_s: float = 15.0) -> None:
        self._conn = db_connect(self._database_url, application_name="mamori-ingest")
        self._reload_devices()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()
        self._committer = threading.Thread(
            target=self._commit_loop, name="ingest-committer", daemon=True
        )
        self._committer.start()
        try:
            self._mqtt.start(
                receive_maximum=self.settings.max_inflight_messages, timeout_s=timeout_s
            )
        except TransportError:
            self.stop()
            raise
        _log.info("ingest subscribed to %s", self._filters())

    def stop(self, timeout_s: float = 30.0) -> None:
        """Flush and acknowledge what arrived, then disconnect. Safe to call twice."""
        self._stopping.set()
        for thread in (self._writer, self._committer):
            if thread is not None:
                thread.join(timeout_s)
                if thread.is_alive():
                    _log.error(
                        "%s did not finish in %ss; its messages will be redelivered",
                        thread.name,
                        timeout_s,
                    )
        self._mqtt.stop()
        self._conn.close()

    def in_flight(self) -> int:
        """Messages received and not yet acknowledged (bounded by the receive maximum)."""
        return self._queue.unfinished_tasks

    def wait_idle(self, timeout_s: float) -> bool:
        """Block until nothing is queued or pending (for tests and the demo's final count)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.in_flight() == 0:
                return True
            time.sleep(0.02)
        return False

    # MQTT ------------------------------------------------------------------------------

    def _filters(self) -> list[str]:
        filters = [
            self._topics.all_readings(),
            self._topics.all_status(),
            self._topics.all_photo_manifests(),
            self._topics.all_photo_chunks(),
        ]
        group = self.settings.share_group
        if group is not None and self.settings.mqtt.protocol == "5":
            return [self._topics.shared(group, f) for f in filters]
        return filters

    # Writer thread ---------------------------------------------------------------------

    def _write_loop(self) -> None:
        try:
            self._validate_loop()
        finally:
            self._commits.put(None)

    def _commit_loop(self) -> None:
        while (batch := self._commits.get()) is not None:
            if not self._flush(batch):
                # Stopping with the database down: these stay unacknowledged and the
                # broker redelivers them to the next ingest.
                while self._commits.get() is not None:
                    pass
                return

    def _validate_loop(self) -> None:
        batch = _Batch()
        interval = self.settings.flush_interval_ms / 1000
        while True:
            stopping = self._stopping.is_set()
            wait = max(0.0, batch.started + interval - time.monotonic()) if batch.messages else 0.1
            try:
                inbound = self._queue.get(timeout=wait if not stopping else 0.0)
            except queue.Empty:
                inbound = None
            if inbound is not None:
                if not batch.messages:
                    batch.started = time.monotonic()
                self._take(batch, inbound)
            due = batch.messages and (
                len(batch.rows) >= self.settings.batch_max_rows
                or time.monotonic() - batch.started >= interval
                or (stopping and inbound is None)
            )
            if due:
                self._commits.put(batch)
                batch = _Batch()
            if stopping and inbound is None and not batch.messages:
                return

    def _take(self, batch: _Batch, inbound: Inbound) -> None:
        batch.messages.append(inbound)
        self.stats.messages += 1
        try:
            parsed = self._topics.parse(inbound.topic)
            if parsed.kind in (TopicKind.PHOTO_MANIFEST, TopicKind.PHOTO_CHUNK):
                self._take_photo(batch, inbound)
                return
            accepted = self._accept(inbound)
        except PayloadError as err:
            batch.letters.append(
                DeadLetter(
                    inbound.topic,
                    inbound.payload,
                    err.reason.value,
                    err.detail,
                    inbound.received_at,
                )
            )
            return
        batch.rows.extend(accepted.rows)
        if accepted.status is not None:
            batch.statuses.append(accepted)
        else:
            previous = batch.seen.get(accepted.device)
            seqs = [s for s in (accepted.seq, previous.seq if previous else None) if s is not None]
            batch.seen[accepted.device] = DeviceSeen(
                accepted.device, inbound.received_at, max(seqs) if seqs else None
            )

    def _take_photo(self, batch: _Batch, inbound: Inbound) -> None:
        parsed = self._topics.parse(inbound.topic)
        try:
            check_sender(parsed, parsed.device, self._devices)
        except PayloadError as err:
            if err.reason is not DeadLetterReason.UNKNOWN_DEVICE:
                raise
            self._reload_devices()
            check_sender(parsed, parsed.device, self._devices)
        if parsed.kind is TopicKind.PHOTO_MANIFEST:
            progress = self._photos.on_manifest(parsed, inbound.payload)
        else:
            chunk_progress = self._photos.on_chunk(parsed, inbound.payload)
            if chunk_progress is None or not (chunk_progress.assembled or chunk_progress.ack.error):
                return  # acknowledge chunks in bulk: the device hears at manifest and completion
            progress = chunk_progress
        assert parsed.photo_id is not None
        batch.photo_acks.append(
            (self._topics.photo_ack(parsed.site, parsed.device, parsed.photo_id), progress.ack)
        )
        if progress.assembled is not None:
            batch.photos.append((progress.assembled, inbound.received_at))

    def _accept(self, inbound: Inbound) -> Accepted:
        try:
            return accept(
                self._topics,
                inbound.topic,
                inbound.payload,
                devices=self._devices,
                limits=self._limits,
                now=inbound.received_at,
            )
        except PayloadError as err:
            stale = time.monotonic() - self._devices_loaded_at > _REGISTRY_REFRESH_S
            if err.reason is not DeadLetterReason.UNKNOWN_DEVICE or not stale:
                raise
        # A device registered after we loaded the registry: look again, at most every few seconds.
        self._reload_devices()
        return accept(
            self._topics,
            inbound.topic,
            inbound.payload,
            devices=self._devices,
            limits=self._limits,
            now=inbound.received_at,
        )

    def _reload_devices(self) -> None:
        # Its own short connection: the committer thread owns self._conn.
        try:
            with db_connect(self._database_url, application_name="mamori-ingest-registry") as conn:
                self._devices = device_sites(conn)
        except StoreError:
            _log.warning(
                "could not reload the device registry; keeping %d known devices", len(self._devices)
            )
        self._devices_loaded_at = time.monotonic()

    def _flush(self, batch: _Batch) -> bool:
        """Commit the batch (retrying while the database is away), then acknowledge it."""
        delay = 0.2
        while True:
            started = time.perf_counter()
            try:
                with self._conn.transaction():
                    result = insert_readings(self._conn, batch.rows)
                    insert_dead_letters(self._conn, batch.letters)
                    touch_devices(self._conn, list(batch.seen.values()))
                    new_photos = sum(
                        insert_image(self._conn, p.image_id, p.manifest, p.blob_key, at)
                        for p, at in batch.photos
                    )
                    for accepted in batch.statuses:
                        status = accepted.status
                        assert status is not None
                        set_device_state(
                            self._conn,
                            status.device,
                            status.state.value,
                            status.ts,
                            status.firmware,
                        )
                break
            except (StoreError, psycopg.Error) as err:
                self.stats.db_retries += 1
                if self._stopping.is_set() and delay > 2:
                    _log.error(
                        "database unavailable while stopping; %d messages stay unacknowledged",
                        len(batch.messages),
                    )
                    return False
                _log.warning(
                    "batch of %d messages not stored (%s); retrying in %.1fs",
                    len(batch.messages),
                    err,
                    delay,
                )
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
                self._reconnect_db()
        self.stats.last_flush_s = time.perf_counter() - started
        self.stats.flush_seconds_total += self.stats.last_flush_s
        self.stats.photos += new_photos
        self.stats.batches += 1
        self.stats.staged_batches += int(result.staged)
        self.stats.rows_offered += result.offered
        self.stats.rows_inserted += result.inserted
        self.stats.duplicates += result.duplicates
        for letter in batch.letters:
            self.stats.dead_letters += 1
            self.stats.dead_letters_by_reason[letter.reason] = (
                self.stats.dead_letters_by_reason.get(letter.reason, 0) + 1
            )
        self._acknowledge(batch.messages)
        for topic, ack in batch.photo_acks:
            self._mqtt.client.publish(topic, encode(ack), qos=1)
        return True

    def _acknowledge(self, messages: list[Inbound]) -> None:
        for inbound in messages:
            if self._mqtt.ack(inbound):
                self.stats.acked += 1
            self._queue.task_done()

    def _reconnect_db(self) -> None:
        try:
            self._conn.close()
        except Exception:
            _log.debug("closing a broken connection failed", exc_info=True)
        try:
            self._conn = db_connect(self._database_url, application_name="mamori-ingest")
        except StoreError as err:
            _log.warning("database still unreachable: %s", err)
