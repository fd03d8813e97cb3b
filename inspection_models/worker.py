"""The inspection worker: claim pending photos, detect, record, publish.

Run as many as you like, on as many machines: they share the queue in PostgreSQL
(``FOR UPDATE SKIP LOCKED``, see :mod:`store.inspection`). A photo that cannot be read
or inspected goes back to the queue after ``retry_delay_s`` until ``max_attempts``, then
ends ``failed`` with the reason; a bad photo never stops the loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from core.damage import DamageType
from core.errors import DeadLetterReason, PayloadError, StoreError, TransportError
from core.inspection import ImageVerdict, InspectionEvent, WorkerConfig, inspection_topic
from core.settings import MqttSettings
from inspection_models.detection import Detection, Image
from inspection_models.measure import gsd_from_meta, measure
from inspection_models.pipeline import InspectionResult, Inspector
from store import inspection as queue
from store.db import connect

_log = logging.getLogger(__name__)


class EventSink(Protocol):
    def publish(self, event: InspectionEvent) -> None: ...


class MqttEventSink:
    """Publishes :class:`InspectionEvent` at QoS 1 on ``{prefix}/v1/inspections/{image}``."""

    def __init__(self, settings: MqttSettings, client_id: str) -> None:
        from core import mqtt

        self._settings = settings
        self._client = mqtt.build_client(settings, client_id)
        mqtt.connect(self._client, settings)
        self._client.loop_start()

    def publish(self, event: InspectionEvent) -> None:
        info = self._client.publish(
            inspection_topic(self._settings.topic_prefix, event.image_id),
            event.model_dump_json(exclude_none=True).encode(),
            qos=1,
        )
        try:
            info.wait_for_publish(timeout=10)
        except (RuntimeError, ValueError) as exc:
            raise TransportError(f"publishing inspection of {event.image_id}: {exc}") from exc

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def load_blob(blob_dir: Path, blob_key: str) -> Image:
    """Read and decode a stored photo; a missing or undecodable one is a PayloadError."""
    root = blob_dir.resolve()
    path = (root / blob_key).resolve()
    if not path.is_relative_to(root):
        raise PayloadError(DeadLetterReason.INVALID, f"blob key {blob_key!r} leaves the store")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise PayloadError(DeadLetterReason.INVALID, f"cannot read blob {blob_key}: {exc}") from exc
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise PayloadError(DeadLetterReason.UNDECODABLE, f"blob {blob_key} is not a picture")
    return np.asarray(image, dtype=np.uint8)


class InspectionWorker:
    def __init__(
        self,
        database_url: str,
        inspector: Inspector,
        blob_dir: Path,
        config: WorkerConfig,
        worker_id: str,
        sink: EventSink | None = None,
        loader: Callable[[Path, str], Image] = load_blob,
    ) -> None:
        self._url = database_url
        self._inspector = inspector
        self._blob_dir = blob_dir
        self._config = config
        self._worker_id = worker_id
        self._sink = sink
        self._load = loader
        self._conn: queue.Conn | None = None
        self.processed = 0
        self.failed = 0

    def _connection(self) -> queue.Conn:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url, application_name=f"mamori-inspect-{self._worker_id}")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_once(self) -> int:
        """Claim one batch and finish it; the number of photos handled (0: queue empty)."""
        conn = self._connection()
        claimed = queue.claim_images(
            conn,
            self._worker_id,
            self._config.batch_size,
            lease_s=self._config.lease_s,
            max_attempts=self._config.max_attempts,
        )
        for item in claimed:
            self._handle(conn, item)
        return len(claimed) + self.measure_boxes()

    def measure_boxes(self, limit: int = 8) -> int:
        """Measure crack boxes inspectors adjusted or drew since (the number measured).
        The boxes stay locked until their measurements commit, so workers never share one."""
        conn = self._connection()
        with conn.transaction():
            boxes = queue.boxes_to_measure(conn, limit)
            for box in boxes:
                queue.record_box_measurement(conn, box.review_id, self._worker_id, self._box(box))
        return len(boxes)

    def _box(self, box: queue.BoxToMeasure) -> queue.BoxMeasurement:
        try:
            image = self._load(self._blob_dir, box.blob_key)
            mm_per_px = gsd_from_meta(box.meta, self._inspector.measurement.gsd)
            det = Detection(DamageType.CRACK, 1.0, box.x1, box.y1, box.x2, box.y2)
            m = measure(image, det, self._inspector.measurement, mm_per_px)
        except Exception as exc:  # a missing photo, a box off the picture: say so, move on
            if isinstance(exc, StoreError):
                raise
            _log.warning("review %s: the box could not be measured: %s", box.review_id, exc)
            return queue.BoxMeasurement(error=f"{type(exc).__name__}: {exc}")
        _log.info(
            "review %s: the adjusted crack box measures %s mm (%s px) wide",
            box.review_id,
            m.max_width_mm,
            m.max_width_px,
        )
        return queue.BoxMeasurement(m.length_px, m.max_width_px, m.length_mm, m.max_width_mm)

    def run(self, stop: threading.Event, *, until_empty: bool = False) -> None:
        """Loop until ``stop`` is set (or, with ``until_empty``, the queue is empty)."""
        backoff = 1.0
        while not stop.is_set():
            try:
                handled = self.run_once()
                backoff = 1.0
            except StoreError as exc:
                _log.warning("database trouble, retrying in %.0f s: %s", backoff, exc)
                self.close()
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            if handled == 0:
                if until_empty:
                    return
                stop.wait(self._config.poll_interval_s)

    def _handle(self, conn: queue.Conn, item: queue.ClaimedImage) -> None:
        started = time.perf_counter()
        detector = self._inspector.detector
        try:
            image = self._load(self._blob_dir, item.blob_key)
            mm_per_px = gsd_from_meta(item.meta, self._inspector.measurement.gsd)
            result = self._inspector.inspect(image, mm_per_px)
        except Exception as exc:  # one bad photo (or a detector bug on it) never stops the loop
            if isinstance(exc, StoreError):
                raise
            if not isinstance(exc, PayloadError):  # unexpected: keep the traceback
                _log.exception("inspecting %s failed", item.id)
            self._fail(conn, item, f"{type(exc).__name__}: {exc}", started)
            return
        stored = queue.record_result(
            conn,
            item.id,
            self._worker_id,
            result.verdict,
            result.reason,
            result.findings,
            model_name=detector.name,
            model_version=detector.version,
        )
        if not stored:
            _log.warning("claim on %s was taken over; result of this attempt dropped", item.id)
            return
        self.processed += 1
        _log.info(
            "%s: %s (%s findings, %s tiles, %.2f s)",
            item.id,
            result.verdict.value,
            len(result.findings),
            result.tiles,
            result.seconds,
        )
        self._publish(item, result.verdict, result.reason, started, result)

    def _fail(
        self, conn: queue.Conn, item: queue.ClaimedImage, reason: str, started: float
    ) -> None:
        status = queue.record_failure(
            conn,
            item.id,
            self._worker_id,
            reason,
            max_attempts=self._config.max_attempts,
            retry_delay_s=self._config.retry_delay_s,
        )
        _log.warning("%s attempt %s failed (%s): %s", item.id, item.attempts, status, reason)
        if status == "failed":
            self.failed += 1
            self._publish(item, ImageVerdict.FAILED, reason, started, None)

    def _publish(
        self,
        item: queue.ClaimedImage,
        verdict: ImageVerdict,
        reason: str | None,
        started: float,
        result: InspectionResult | None,
    ) -> None:
        if self._sink is None:
            return
        counts: dict[DamageType, int] = {}
        for finding in result.findings if result else []:
            counts[finding.damage_type] = counts.get(finding.damage_type, 0) + 1
        event = InspectionEvent(
            image_id=item.id,
            asset=item.asset_id,
            device=item.device_id,
            verdict=verdict,
            reason=None if reason is None else reason[:1000],
            model_name=self._inspector.detector.name,
            model_version=self._inspector.detector.version,
            findings=len(result.findings) if result else 0,
            counts=counts,
            max_crack_width_mm=result.max_crack_width_mm if result else None,
            seconds=round(time.perf_counter() - started, 3),
            at=datetime.now(UTC),
        )
        try:
            self._sink.publish(event)
        except TransportError as exc:
            # The verdict is stored; an event lost to a broker outage is logged, not retried:
            # subscribers that must not miss one read the images table.
            _log.warning("inspection event for %s not published: %s", item.id, exc)
