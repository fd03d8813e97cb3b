"""The inspection worker against a real PostgreSQL (and a real Mosquitto for events).

The worker commits (claims must be visible to other workers), so this module gets a
database of its own instead of the rolled-back ``db`` fixture; no other test's photos can
end up in its queue.
"""

from __future__ import annotations

import hashlib
import json
import queue as stdlib_queue
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.damage import DamageType
from core.errors import DeadLetterReason, PayloadError
from core.inspection import (
    ClassicalDetectorConfig,
    ImageVerdict,
    InspectionEvent,
    OnnxDetectorConfig,
    WorkerConfig,
)
from core.settings import MqttSettings
from inspection_models import synthetic
from inspection_models.classical import ClassicalDetector
from inspection_models.demo import SAMPLES_DIR, queue_samples
from inspection_models.onnx_backend import OnnxDetector
from inspection_models.pipeline import Inspector
from inspection_models.worker import InspectionWorker, MqttEventSink, load_blob
from store import inspection as q
from tests.support import migrated_database

Conn = psycopg.Connection[tuple[object, ...]]

REAL_CRACK = SAMPLES_DIR / "o6_MAX_0954_5_8.jpg"


@pytest.fixture(scope="module")
def inspect_url(pg_admin_url: str) -> Iterator[str]:
    with migrated_database(pg_admin_url, "mamori_inspect") as url:
        yield url


@pytest.fixture
def conn(inspect_url: str) -> Iterator[Conn]:
    """A committing connection on an empty queue."""
    with psycopg.connect(inspect_url) as connection:
        connection.execute("DELETE FROM images")
        connection.commit()
        yield connection


@pytest.fixture
def blob_dir(tmp_path: Path) -> Path:
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    return blobs


def _queue(conn: Conn, blob_dir: Path, source: Path, image_id: str, **meta: object) -> None:
    data = source.read_bytes()
    key = f"{image_id}{source.suffix}"
    shutil.copyfile(source, blob_dir / key)
    q.add_image(conn, image_id, key, hashlib.sha256(data).hexdigest(), len(data), meta=meta)
    conn.commit()


def _worker(url: str, blob_dir: Path, worker_id: str = "w1", **config: float) -> InspectionWorker:
    inspector = Inspector(ClassicalDetector(ClassicalDetectorConfig()))
    settings = WorkerConfig(retry_delay_s=0, **config)  # type: ignore[arg-type]
    return InspectionWorker(url, inspector, blob_dir, settings, worker_id)


def test_a_real_crack_is_flagged_with_detections_written(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    _queue(conn, blob_dir, REAL_CRACK, "crack-1", gsd_mm_per_px=2.28)
    clean = blob_dir / "clean.png"
    cv2.imwrite(str(clean), synthetic.clean(np.random.default_rng(1), 256))
    _queue(conn, blob_dir, clean, "clean-1")
    worker = _worker(inspect_url, blob_dir)
    try:
        assert worker.run_once() == 2
    finally:
        worker.close()
    crack = q.image_state(conn, "crack-1")
    assert crack is not None
    assert crack.status == "flagged"
    assert crack.review_reason is not None
    assert "ひびわれ" in crack.review_reason
    assert crack.attempts == 1
    stored = q.detections_for(conn, "crack-1")
    assert stored
    assert all(d.damage_type == DamageType.CRACK.value for d in stored)
    assert all(d.model_name == "classical-ridge" for d in stored)
    assert all(d.model_version for d in stored)
    assert all(d.max_width_mm is not None for d in stored)
    assert all(d.length_mm is not None for d in stored)
    clear = q.image_state(conn, "clean-1")
    assert clear is not None
    assert clear.status == "clear"
    assert q.detections_for(conn, "clean-1") == []


def test_claims_skip_rows_locked_by_another_worker(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    for n in range(3):
        _queue(conn, blob_dir, REAL_CRACK, f"img-{n}")
    with psycopg.connect(inspect_url) as other:
        # Another worker is in the middle of claiming img-0.
        other.execute("SELECT 1 FROM images WHERE id = 'img-0' FOR UPDATE")
        claimed = q.claim_images(conn, "w2", 10, lease_s=600, max_attempts=3)
        assert [c.id for c in claimed] == ["img-1", "img-2"]
        other.rollback()
    again = q.claim_images(conn, "w3", 10, lease_s=600, max_attempts=3)
    assert [c.id for c in again] == ["img-0"]  # the others are processing, not pending
    assert q.claim_images(conn, "w4", 10, lease_s=600, max_attempts=3) == []


def test_many_workers_share_the_queue_without_doubles(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    for n in range(12):
        _queue(conn, blob_dir, REAL_CRACK, f"many-{n:02d}")
    taken: list[list[str]] = [[] for _ in range(4)]

    def grab(slot: int) -> None:
        with psycopg.connect(inspect_url) as mine:
            while batch := q.claim_images(mine, f"w{slot}", 2, lease_s=600, max_attempts=3):
                taken[slot].extend(c.id for c in batch)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in taken for i in ids]
    assert sorted(everything) == [f"many-{n:02d}" for n in range(12)]


def test_failures_retry_then_fail_with_the_reason(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    broken = blob_dir / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    _queue(conn, blob_dir, broken, "broken-1")
    worker = _worker(inspect_url, blob_dir, max_attempts=3)
    try:
        for attempt in (1, 2):
            assert worker.run_once() == 1
            state = q.image_state(conn, "broken-1")
            assert state is not None
            assert (state.status, state.attempts) == ("pending", attempt)
            assert state.error is not None
            assert "not a picture" in state.error
        assert worker.run_once() == 1
        assert worker.run_once() == 0
    finally:
        worker.close()
    state = q.image_state(conn, "broken-1")
    assert state is not None
    assert (state.status, state.attempts) == ("failed", 3)
    assert state.error is not None
    assert "undecodable" in state.error
    assert worker.failed == 1


def test_a_retry_waits_for_its_delay(conn: Conn, inspect_url: str, blob_dir: Path) -> None:
    _queue(conn, blob_dir, REAL_CRACK, "later-1")
    claimed = q.claim_images(conn, "w1", 1, lease_s=600, max_attempts=3)
    assert [c.id for c in claimed] == ["later-1"]
    status = q.record_failure(conn, "later-1", "w1", "boom", max_attempts=3, retry_delay_s=3600)
    assert status == "pending"
    assert q.claim_images(conn, "w1", 1, lease_s=600, max_attempts=3) == []
    conn.execute("UPDATE images SET not_before = now() - interval '1 s' WHERE id = 'later-1'")
    conn.commit()
    assert [c.id for c in q.claim_images(conn, "w1", 1, lease_s=600, max_attempts=3)] == ["later-1"]


def test_an_abandoned_claim_is_taken_over_and_the_late_result_dropped(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    _queue(conn, blob_dir, REAL_CRACK, "slow-1")
    assert [c.id for c in q.claim_images(conn, "crashed", 1, lease_s=600, max_attempts=3)] == [
        "slow-1"
    ]
    conn.execute(
        "UPDATE images SET status_changed_at = now() - interval '1 hour' WHERE id = 'slow-1'"
    )
    conn.commit()
    taken = q.claim_images(conn, "rescuer", 1, lease_s=600, max_attempts=3)
    assert [(c.id, c.attempts) for c in taken] == [("slow-1", 2)]
    # The first worker wakes up late: its result must not overwrite the new claim.
    assert not q.record_result(
        conn, "slow-1", "crashed", ImageVerdict.CLEAR, None, [], model_name="m", model_version="1"
    )
    assert (
        q.record_failure(conn, "slow-1", "crashed", "late", max_attempts=3, retry_delay_s=0) is None
    )
    state = q.image_state(conn, "slow-1")
    assert state is not None
    assert (state.status, state.claimed_by) == ("processing", "rescuer")


def test_an_abandoned_claim_out_of_attempts_fails(conn: Conn, blob_dir: Path) -> None:
    _queue(conn, blob_dir, REAL_CRACK, "dead-1")
    conn.execute(
        """UPDATE images SET status = 'processing', attempts = 3, claimed_by = 'gone',
                  status_changed_at = now() - interval '1 hour' WHERE id = 'dead-1'"""
    )
    conn.commit()
    assert q.claim_images(conn, "w1", 5, lease_s=600, max_attempts=3) == []
    state = q.image_state(conn, "dead-1")
    assert state is not None
    assert state.status == "failed"
    assert state.error == "abandoned by gone after 3 attempts"


def test_blob_keys_cannot_leave_the_store(blob_dir: Path) -> None:
    with pytest.raises(PayloadError) as caught:
        load_blob(blob_dir, "../../etc/passwd")
    assert caught.value.reason == DeadLetterReason.INVALID


def test_events_are_published_over_mqtt(
    conn: Conn, inspect_url: str, blob_dir: Path, mqtt_settings: MqttSettings
) -> None:
    received: stdlib_queue.Queue[bytes] = stdlib_queue.Queue()
    listener = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    listener.on_message = lambda _c, _u, msg: received.put(bytes(msg.payload))
    listener.connect(mqtt_settings.host, mqtt_settings.port)
    listener.subscribe(f"{mqtt_settings.topic_prefix}/v1/inspections/#", qos=1)
    listener.loop_start()
    sink = MqttEventSink(mqtt_settings, f"test-{uuid.uuid4().hex[:8]}")
    try:
        _queue(conn, blob_dir, REAL_CRACK, "event-1")
        inspector = Inspector(ClassicalDetector(ClassicalDetectorConfig()))
        worker = InspectionWorker(
            inspect_url, inspector, blob_dir, WorkerConfig(), "w-events", sink
        )
        try:
            # The subscription must be in place before the event goes out.
            deadline = time.monotonic() + 5
            while not listener.is_connected() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            assert worker.run_once() == 1
        finally:
            worker.close()
        event = InspectionEvent.model_validate_json(received.get(timeout=10))
    finally:
        sink.close()
        listener.loop_stop()
        listener.disconnect()
    assert event.image_id == "event-1"
    assert event.verdict.value == "flagged"
    assert event.counts.get(DamageType.CRACK, 0) >= 1
    assert event.model_name == "classical-ridge"
    assert json.loads(event.model_dump_json())["v"] == 1


def test_demo_samples_run_through_the_worker_with_the_shipped_model(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    ids = queue_samples(conn, blob_dir)
    conn.commit()
    assert len(ids) == 4
    inspector = Inspector(OnnxDetector(OnnxDetectorConfig(threads=1)))
    worker = InspectionWorker(inspect_url, inspector, blob_dir, WorkerConfig(), "w-onnx")
    try:
        worker.run(threading.Event(), until_empty=True)
    finally:
        worker.close()
    states = {i: q.image_state(conn, i) for i in ids}
    assert all(s is not None for s in states.values())
    assert all(s.status in ("flagged", "clear") for s in states.values() if s is not None)
    by_type = conn.execute(
        """SELECT d.damage_type, count(*) FROM detections d
           WHERE d.image_id = ANY(%s) AND d.model_name = 'mamori-damage-yolov8n'
           GROUP BY d.damage_type""",
        (ids,),
    ).fetchall()
    found = {str(kind) for kind, _ in by_type}
    assert "crack" in found  # the real quay-wall photos
    assert "spalling" in found  # the synthetic drawing


def test_demo_samples_run_through_the_worker(conn: Conn, inspect_url: str, blob_dir: Path) -> None:
    ids = queue_samples(conn, blob_dir)
    conn.commit()
    assert len(ids) == 4
    worker = _worker(inspect_url, blob_dir)
    try:
        worker.run(threading.Event(), until_empty=True)
    finally:
        worker.close()
    states = {i: q.image_state(conn, i) for i in ids}
    assert all(s is not None for s in states.values())
    assert all(s.status in ("flagged", "clear") for s in states.values() if s is not None)
    flagged = [i for i, s in states.items() if s is not None and s.status == "flagged"]
    assert len(flagged) >= 3  # the three real crack photos


def test_a_crack_box_an_inspector_moved_is_measured_again(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    """The model boxed a hairline crack; the inspector moves the box onto the wide crack
    beside it. A worker measures the crack inside the new box, in mm with the photo's
    ground sample distance, once."""
    img = synthetic.concrete(np.random.default_rng(3), 240, 320)
    hairline = synthetic.draw_crack(img, [(40, 20), (60, 220)], width_px=2)
    wide = synthetic.draw_crack(img, [(220, 20), (250, 220)], width_px=8)
    source = blob_dir / "two-cracks.png"
    cv2.imwrite(str(source), img)
    _queue(conn, blob_dir, source, "moved-1", gsd_mm_per_px=0.25)
    row = conn.execute(
        """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2, y2,
                                   max_width_mm, model_name, model_version)
           VALUES ('moved-1', 'crack', 0.7, %s, %s, %s, %s, 0.5, 'test', '1') RETURNING id""",
        (hairline.x1, hairline.y1, hairline.x2, hairline.y2),
    ).fetchone()
    assert row is not None
    review = conn.execute(
        """INSERT INTO reviews (image_id, detection_id, reviewer, action, x1, y1, x2, y2)
           VALUES ('moved-1', %s, 'sato', 'adjust', %s, %s, %s, %s) RETURNING id""",
        (row[0], wide.x1, wide.y1, wide.x2, wide.y2),
    ).fetchone()
    assert review is not None
    conn.execute(
        """INSERT INTO reviews (image_id, detection_id, reviewer, action)
           VALUES ('moved-1', %s, 'sato', 'confirm')""",
        (row[0],),
    )
    conn.commit()
    worker = _worker(inspect_url, blob_dir)
    try:
        assert worker.measure_boxes() == 1
        assert worker.measure_boxes() == 0  # measured once
    finally:
        worker.close()
    measured = conn.execute(
        """SELECT max_width_px, max_width_mm, length_mm, measured_by, error
           FROM review_measurements WHERE review_id = %s""",
        (review[0],),
    ).fetchone()
    assert measured is not None
    width_px, width_mm, length_mm, by, error = measured
    assert (by, error) == ("w1", None)
    assert 6.5 <= float(str(width_px)) <= 10  # drawn 8 px wide
    assert float(str(width_mm)) == pytest.approx(float(str(width_px)) * 0.25, abs=0.01)
    assert float(str(length_mm)) > 40  # about 200 px long, 0.25 mm a pixel


def test_a_box_on_a_missing_photo_is_recorded_as_unmeasurable(
    conn: Conn, inspect_url: str, blob_dir: Path
) -> None:
    q.add_image(conn, "gone-1", "gone-1.png", "0" * 64, 10, meta={})
    conn.execute(
        """INSERT INTO reviews (image_id, reviewer, action, damage_type, x1, y1, x2, y2)
           VALUES ('gone-1', 'sato', 'add', 'crack', 0, 0, 10, 10)"""
    )
    conn.commit()
    worker = _worker(inspect_url, blob_dir)
    try:
        assert worker.measure_boxes() == 1
    finally:
        worker.close()
    error = conn.execute(
        "SELECT m.error FROM review_measurements m JOIN reviews r ON r.id = m.review_id"
        " WHERE r.image_id = 'gone-1'"
    ).fetchone()
    assert error is not None
    assert error[0]
