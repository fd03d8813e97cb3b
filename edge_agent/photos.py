"""Drone photo upload in checksummed chunks that resumes where a dropped link stopped.

The device announces a photo with a manifest (size, SHA-256 of the whole and of every
chunk, EXIF metadata). Ingest answers on ``.../photos/{photo_id}/ack`` with the chunks it
already holds; the device sends only the others, then waits for ``complete``. After a
lost link, or a restart of the device, the same manifest goes out again and the answer
tells the device where to resume: ingest's blob store is the record, not the device's
memory. ``photo_id`` derives from the photo's hash, so uploading a photo twice makes one
image.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as paho

from core.errors import PayloadError, TransportError
from core.messages import PhotoAck, PhotoManifest, decode, encode
from edge_agent.exif import read_metadata
from edge_agent.publisher import DevicePublisher

_log = logging.getLogger(__name__)
PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


@dataclass(frozen=True, slots=True)
class UploadResult:
    path: Path
    photo_id: str
    chunks_sent: int
    chunks_total: int
    rounds: int


def build_manifest(
    path: Path, device: str, *, asset: str | None, chunk_size: int, altitude_m: float | None = None
) -> tuple[PhotoManifest, list[bytes]]:
    data = path.read_bytes()
    meta = read_metadata(path, altitude_m=altitude_m)
    chunks = [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]
    digest = hashlib.sha256(data).hexdigest()
    manifest = PhotoManifest(
        device=device,
        photo_id=f"p{digest[:24]}",
        asset=asset,
        filename=path.name[:200],
        content_type=meta.content_type,  # type: ignore[arg-type]  # read_metadata gives one of the two
        size_bytes=len(data),
        sha256=digest,
        chunk_size=chunk_size,
        chunk_sha256=[hashlib.sha256(c).hexdigest() for c in chunks],
        captured_at=meta.captured_at,
        location=meta.location,
        camera=meta.camera,
    )
    return manifest, chunks


class PhotoUploader:
    """Uploads photos over a started :class:`DevicePublisher`'s connection."""

    def __init__(
        self,
        publisher: DevicePublisher,
        *,
        chunk_size: int = 256 * 1024,
        ack_timeout_s: float = 15.0,
        max_rounds: int = 20,
    ) -> None:
        self._publisher = publisher
        self._chunk_size = chunk_size
        self._ack_timeout_s = ack_timeout_s
        self._max_rounds = max_rounds
        self._acks: queue.Queue[PhotoAck] = queue.Queue()
        topic_filter = f"{publisher.device_root}/photos/+/ack"
        publisher.client.message_callback_add(topic_filter, self._on_ack)
        publisher.add_subscription(topic_filter)

    def _on_ack(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        try:
            self._acks.put(decode(PhotoAck, bytes(msg.payload), max_bytes=1024 * 1024))
        except PayloadError as err:
            _log.warning("ignoring a malformed photo ack on %s: %s", msg.topic, err)

    def _wait_ack(self, photo_id: str, *, want_complete: bool) -> PhotoAck | None:
        deadline = time.monotonic() + self._ack_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                ack = self._acks.get(timeout=left)
            except queue.Empty:
                return None
            if ack.photo_id == photo_id and (ack.complete or ack.error or not want_complete):
                return ack
        return None

    def upload(
        self, path: Path, *, asset: str | None = None, altitude_m: float | None = None
    ) -> UploadResult:
        manifest, chunks = build_manifest(
            path,
            self._publisher.device,
            asset=asset,
            chunk_size=self._chunk_size,
            altitude_m=altitude_m,
        )
        photos = f"{self._publisher.device_root}/photos/{manifest.photo_id}"
        sent = 0
        for round_no in range(1, self._max_rounds + 1):
            try:
                self._publisher.publish_to(f"{photos}/manifest", encode(manifest))
                ack = self._wait_ack(manifest.photo_id, want_complete=False)
                if ack is None:
                    _log.warning("no answer to the manifest of %s; retrying", path.name)
                    continue
                if ack.complete:
                    return UploadResult(path, manifest.photo_id, sent, len(chunks), round_no)
                held = set(ack.received)
                for index, chunk in enumerate(chunks):
                    if index not in held:
                        self._publisher.publish_to(f"{photos}/chunks/{index}", chunk)
                        sent += 1
                done = self._wait_ack(manifest.photo_id, want_complete=True)
                if done is not None and done.complete:
                    return UploadResult(path, manifest.photo_id, sent, len(chunks), round_no)
                if done is not None and done.error:
                    _log.warning("ingest refused %s: %s; resending", path.name, done.error)
            except TransportError as err:
                _log.warning(
                    "link lost while sending %s (%s); resuming after reconnect", path.name, err
                )
                self._publisher.wait_connected(60)
        raise TransportError(f"{path.name} not confirmed after {self._max_rounds} rounds")


def photos_in(directory: Path) -> list[Path]:
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
    )
