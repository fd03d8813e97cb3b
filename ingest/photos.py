"""Reassembling chunked photos in the blob store.

Chunks are parked in the blob store itself (``incoming/{site}/{device}/{photo_id}/``), not
on the ingest replica's disk, so that with shared subscriptions the chunks of one photo
may reach different replicas and still meet. Each chunk is checked against the
manifest's SHA-256 before it counts; the whole photo is checked again once assembled,
stored under a content-addressed key, and handed to the database as a ``pending`` image
for the inspection worker.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from core.errors import DeadLetterReason, PayloadError
from core.messages import PhotoAck, PhotoManifest, decode, encode
from core.topics import ParsedTopic
from store.blobs import BlobStore, photo_key

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PhotoLimits:
    max_photo_bytes: int
    max_chunks: int


@dataclass(frozen=True, slots=True)
class AssembledPhoto:
    """A complete, verified photo: the row the inspection worker will pick up."""

    image_id: str
    site: str
    manifest: PhotoManifest
    blob_key: str


@dataclass(frozen=True, slots=True)
class PhotoProgress:
    ack: PhotoAck
    assembled: AssembledPhoto | None = None


class PhotoAssembler:
    def __init__(self, blobs: BlobStore, limits: PhotoLimits) -> None:
        self._blobs = blobs
        self._limits = limits

    @staticmethod
    def _dir(parsed: ParsedTopic) -> str:
        return f"incoming/{parsed.site}/{parsed.device}/{parsed.photo_id}"

    def on_manifest(self, parsed: ParsedTopic, payload: bytes) -> PhotoProgress:
        manifest = decode(PhotoManifest, payload, max_bytes=1024 * 1024)
        if manifest.device != parsed.device or manifest.photo_id != parsed.photo_id:
            raise PayloadError(
                DeadLetterReason.TOPIC_MISMATCH, "manifest device/photo differ from the topic"
            )
        if manifest.size_bytes > self._limits.max_photo_bytes:
            raise PayloadError(
                DeadLetterReason.OVERSIZED,
                f"photo of {manifest.size_bytes} bytes exceeds {self._limits.max_photo_bytes}",
            )
        if manifest.chunk_count > self._limits.max_chunks:
            raise PayloadError(
                DeadLetterReason.OVERSIZED,
                f"{manifest.chunk_count} chunks exceed {self._limits.max_chunks}",
            )
        final_key = photo_key(parsed.site, parsed.device, manifest.sha256, manifest.content_type)
        if self._blobs.exists(final_key):
            # Already assembled (a resent manifest after a lost ack): say so again.
            return PhotoProgress(
                PhotoAck(
                    photo_id=manifest.photo_id,
                    received=list(range(manifest.chunk_count)),
                    complete=True,
                    image_id=manifest.photo_id,
                ),
                AssembledPhoto(manifest.photo_id, parsed.site, manifest, final_key),
            )
        self._blobs.put(f"{self._dir(parsed)}/manifest.json", payload)
        return self._progress(parsed, manifest)

    def on_chunk(self, parsed: ParsedTopic, payload: bytes) -> PhotoProgress | None:
        index = parsed.chunk_index
        assert index is not None
        if index >= self._limits.max_chunks:
            raise PayloadError(
                DeadLetterReason.OVERSIZED, f"chunk index {index} exceeds {self._limits.max_chunks}"
            )
        manifest = self._manifest(parsed)
        if manifest is not None:
            if index >= manifest.chunk_count:
                raise PayloadError(
                    DeadLetterReason.INVALID,
                    f"chunk {index} of a {manifest.chunk_count}-chunk photo",
                )
            if hashlib.sha256(payload).hexdigest() != manifest.chunk_sha256[index]:
                raise PayloadError(
                    DeadLetterReason.INVALID, f"chunk {index} does not match its checksum"
                )
        elif len(payload) > 8 * 1024 * 1024:
            raise PayloadError(
                DeadLetterReason.OVERSIZED, f"chunk {index} is larger than any allowed chunk"
            )
        self._blobs.put(f"{self._dir(parsed)}/{index:06d}.part", payload)
        if manifest is None:
            return None  # the manifest will come; chunks are verified then
        return self._progress(parsed, manifest)

    def _manifest(self, parsed: ParsedTopic) -> PhotoManifest | None:
        key = f"{self._dir(parsed)}/manifest.json"
        if not self._blobs.exists(key):
            return None
        return decode(PhotoManifest, self._blobs.get(key), max_bytes=1024 * 1024)

    def _progress(self, parsed: ParsedTopic, manifest: PhotoManifest) -> PhotoProgress:
        base = self._dir(parsed)
        present = {
            int(k.rsplit("/", 1)[1].split(".")[0])
            for k in self._blobs.list(base)
            if k.endswith(".part")
        }
        received = []
        for index in sorted(present):
            key = f"{base}/{index:06d}.part"
            if (
                index < manifest.chunk_count
                and hashlib.sha256(self._blobs.get(key)).hexdigest() == manifest.chunk_sha256[index]
            ):
                received.append(index)
            else:  # a chunk parked before the manifest that turns out wrong: ask again
                self._blobs.delete(key)
        if len(received) < manifest.chunk_count:
            return PhotoProgress(PhotoAck(photo_id=manifest.photo_id, received=received))
        data = b"".join(
            self._blobs.get(f"{base}/{i:06d}.part") for i in range(manifest.chunk_count)
        )
        if len(data) != manifest.size_bytes or hashlib.sha256(data).hexdigest() != manifest.sha256:
            for key in self._blobs.list(base):
                if key.endswith(".part"):
                    self._blobs.delete(key)
            return PhotoProgress(
                PhotoAck(
                    photo_id=manifest.photo_id, error="assembled photo failed its checksum; resend"
                )
            )
        final_key = photo_key(parsed.site, parsed.device, manifest.sha256, manifest.content_type)
        self._blobs.put(final_key, data)
        for key in self._blobs.list(base):
            self._blobs.delete(key)
        _log.info(
            "photo %s from %s assembled (%d bytes)",
            manifest.photo_id,
            parsed.device,
            manifest.size_bytes,
        )
        return PhotoProgress(
            PhotoAck(
                photo_id=manifest.photo_id,
                received=received,
                complete=True,
                image_id=manifest.photo_id,
            ),
            AssembledPhoto(manifest.photo_id, parsed.site, manifest, final_key),
        )


def ack_payload(ack: PhotoAck) -> bytes:
    return encode(ack)
