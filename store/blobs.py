"""The blob store for photos: a small interface, a filesystem implementation.

Keys are relative paths of safe characters (``photos/yamaguchi/drone-1/ab/ab12….jpg``);
anything that could escape the root (``..``, absolute paths, backslashes, NUL) is refused
before it touches the disk, so a key from the network can never name another file.
Writes are atomic (temporary file, fsync, rename): a crash leaves the old blob or the new
one, never half of one. Several ingest replicas may share one root (NFS, or an
S3-compatible store behind the same interface).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from core.errors import StoreError

_KEY = re.compile(r"^[a-z0-9][a-z0-9_.-]*(/[a-z0-9][a-z0-9_.-]*)*$")


class BlobKeyError(StoreError):
    """A blob key that is not a safe relative path."""


def check_key(key: str) -> str:
    if len(key) > 512 or not _KEY.match(key) or ".." in key.split("/"):
        raise BlobKeyError(f"unsafe blob key {key!r}")
    return key


class BlobStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...


class FilesystemBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):
            raise BlobKeyError(f"blob key {key!r} escapes the store")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreError(f"cannot write blob {key}: {exc.strerror}") from exc

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read blob {key}: {exc.strerror}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(
            str(p.relative_to(self.root))
            for p in base.rglob("*")
            if p.is_file() and not p.name.startswith(".tmp-")
        )


def photo_key(site: str, device: str, sha256: str, content_type: str) -> str:
    """Content-addressed: the same photo sent twice is stored once."""
    suffix = "png" if content_type == "image/png" else "jpg"
    return check_key(f"photos/{site}/{device}/{sha256[:2]}/{sha256}.{suffix}")
