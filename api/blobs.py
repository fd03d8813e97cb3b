"""Photos on disk: safe blob keys, header checks before decoding, and overlays.

A blob key is a relative path of plain segments (letters, digits, ``._-``, each
starting with a letter or digit), so ``..``, absolute paths, backslashes and NUL can
not be spelled; the resolved path must still lie under the blob directory, which also
defeats a symlink planted inside it. Image dimensions are read from the PNG or JPEG
header before anything is decoded, so a small file that would expand to gigabytes (a
decompression bomb) is refused without allocating its pixels.
"""

from __future__ import annotations

import hashlib
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from api.findings import Finding
from api.taxonomy import CLASS_INDEX
from core.errors import MamoriError, StoreError
from store.blobs import BlobKeyError, FilesystemBlobStore, check_key, photo_key

_KEY: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}(/[a-z0-9][a-z0-9._-]{0,99}){0,7}$")
#: 80 megapixels: a 45 MP survey camera fits, a crafted 60000×60000 PNG does not.
MAX_PIXELS: Final = 80_000_000


class BlobError(MamoriError):
    """A blob key that is not allowed, or a blob that is missing or unreadable."""


class ImageRejectedError(MamoriError):
    """Uploaded bytes that are not an acceptable photo; the message says why."""


def blob_path(blob_dir: Path, key: str) -> Path:
    """The file for ``key``, guaranteed to lie inside ``blob_dir``.

    Two checks: the shared key rules of ``store.blobs`` and this module's stricter
    shape (bounded depth and length), then the resolved path must stay under the root.
    """
    try:
        check_key(key)
    except BlobKeyError as exc:
        raise BlobError("blob key is not allowed") from exc
    if not _KEY.fullmatch(key) or ".." in key:
        raise BlobError("blob key is not allowed")
    root = blob_dir.resolve()
    path = (root / key).resolve()
    if not path.is_relative_to(root):
        raise BlobError("blob key is not allowed")
    return path


def read_blob(blob_dir: Path, key: str) -> bytes:
    path = blob_path(blob_dir, key)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise BlobError(f"blob {key!r} cannot be read: {exc.strerror}") from exc


def stored_dimensions(blob_dir: Path, key: str) -> tuple[int, int] | None:
    """(width, height) from the stored photo's header, for rows that lack them (ingest
    knows them only when the device sent camera details); None when unreadable."""
    try:
        with blob_path(blob_dir, key).open("rb") as handle:
            head = handle.read(512 * 1024)
        header = probe(head)
    except (BlobError, ImageRejectedError, OSError):
        return None
    return header.width, header.height


@dataclass(frozen=True, slots=True)
class StoredBlob:
    key: str
    sha256: str
    size_bytes: int


def write_blob(
    blob_dir: Path, data: bytes, content_type: str, *, site: str, device: str
) -> StoredBlob:
    """Store ``data`` where ingest would (``store.blobs.photo_key``), atomically."""
    digest = hashlib.sha256(data).hexdigest()
    key = photo_key(site, device, digest, content_type)
    store = FilesystemBlobStore(blob_dir)
    try:
        if not store.exists(key):
            store.put(key, data)
    except StoreError as exc:
        raise BlobError(f"cannot store the photo: {exc}") from exc
    return StoredBlob(key, digest, len(data))


@dataclass(frozen=True, slots=True)
class ImageHeader:
    content_type: str
    extension: str
    width: int
    height: int


def probe(data: bytes) -> ImageHeader:
    """Type and size from the header alone; refuses anything but sane PNG and JPEG."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise ImageRejectedError("truncated PNG header")
        width, height = struct.unpack(">II", data[16:24])
        header = ImageHeader("image/png", "png", width, height)
    elif data.startswith(b"\xff\xd8"):
        width, height = _jpeg_size(data)
        header = ImageHeader("image/jpeg", "jpg", width, height)
    else:
        raise ImageRejectedError("only JPEG and PNG photos are accepted")
    if header.width <= 0 or header.height <= 0:
        raise ImageRejectedError("image has no pixels")
    if header.width * header.height > MAX_PIXELS:
        raise ImageRejectedError(
            f"{header.width}×{header.height} exceeds {MAX_PIXELS // 1_000_000} megapixels"
        )
    return header


_SOF_MARKERS: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int]:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            raise ImageRejectedError("corrupt JPEG header")
        marker = data[index + 1]
        if marker == 0xFF:
            index += 1
            continue
        if marker in {0xD8, 0x01} or 0xD0 <= marker <= 0xD7:
            index += 2
            continue
        (length,) = struct.unpack(">H", data[index + 2 : index + 4])
        if length < 2:
            raise ImageRejectedError("corrupt JPEG header")
        if marker in _SOF_MARKERS:
            if index + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return width, height
        index += 2 + length
    raise ImageRejectedError("JPEG without a frame header")


def decode_checked(data: bytes) -> ImageHeader:
    """Probe, then decode once to prove the bytes are a real image."""
    header = probe(data)
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageRejectedError("the image cannot be decoded")
    height, width = pixels.shape[:2]
    if (width, height) != (header.width, header.height):
        raise ImageRejectedError("decoded size differs from the header")
    return header


# BGR colours with enough contrast on photos; the label boxes carry white text.
_CLASS_COLOURS: Final = [(0, 90, 230), (180, 60, 0), (0, 120, 0), (140, 0, 140)]
_PENDING: Final = (0, 170, 255)
_REJECTED: Final = (128, 128, 128)


def draw_overlay(data: bytes, findings: Sequence[Finding], *, include_rejected: bool) -> bytes:
    """The photo as PNG with each finding's box and a label (class, confidence, width)."""
    probe(data)
    pixels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if pixels is None:
        raise ImageRejectedError("the image cannot be decoded")
    thickness = max(1, round(max(pixels.shape[:2]) / 400))
    scale = max(0.4, max(pixels.shape[:2]) / 1600)
    for finding in findings:
        if finding.status == "rejected" and not include_rejected:
            continue
        if finding.status == "rejected":
            colour = _REJECTED
        elif finding.status == "pending":
            colour = _PENDING
        else:
            colour = _CLASS_COLOURS[CLASS_INDEX.get(finding.damage_type, 0) % 4]
        p1 = (round(finding.x1), round(finding.y1))
        p2 = (round(finding.x2), round(finding.y2))
        cv2.rectangle(pixels, p1, p2, colour, thickness)
        text = f"#{finding.detection_id} {finding.damage_type} {finding.confidence:.2f}"
        if finding.max_width_mm is not None:
            text += f" w{finding.max_width_mm:.2f}mm"
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, p1[1] - th - base - 2)
        cv2.rectangle(pixels, (p1[0], top), (p1[0] + tw + 4, top + th + base + 2), colour, -1)
        cv2.putText(
            pixels,
            text,
            (p1[0] + 2, top + th + 1),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (255, 255, 255),
            1,
            cv2.LINE_AA,
        )
    ok, encoded = cv2.imencode(".png", pixels)
    if not ok:
        raise ImageRejectedError("the overlay cannot be encoded")
    return bytes(encoded.tobytes())
