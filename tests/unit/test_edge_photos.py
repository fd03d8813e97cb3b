"""EXIF reading and blob keys: what a drone photo's manifest is made of."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import PayloadError
from edge_agent.exif import read_metadata
from edge_agent.photos import build_manifest
from store.blobs import BlobKeyError, FilesystemBlobStore

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "omu-crack-quay"


def test_exif_of_a_real_drone_tile() -> None:
    photo = sorted((DATASET / "h1").glob("*.jpg"))[0]
    meta = read_metadata(photo)
    assert meta.camera.make == "Autel Robotics"
    assert meta.camera.focal_length_mm == pytest.approx(10.57)
    # 5472 px across at 10583.33 px per inch: the 1-inch sensor of the EVO II Pro.
    assert meta.camera.sensor_width_mm == pytest.approx(13.13, abs=0.05)
    assert meta.location is not None
    assert 34 < meta.location.lat < 35
    assert 135 < meta.location.lon < 136
    assert meta.captured_at is not None
    assert meta.captured_at.utcoffset() is not None


def test_manifest_chunks_cover_the_file(tmp_path: Path) -> None:
    photo = sorted((DATASET / "h1").glob("*.jpg"))[0]
    manifest, chunks = build_manifest(photo, "drone-1", asset=None, chunk_size=1000)
    assert b"".join(chunks) == photo.read_bytes()
    assert manifest.chunk_count == len(chunks) == -(-photo.stat().st_size // 1000)


def test_a_file_that_is_not_a_photo_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_bytes(b"not a jpeg at all")
    with pytest.raises(PayloadError):
        read_metadata(fake)


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "photos/../../x", "/abs/path", "photos//x", "Photos/X", "a\\b", "a/\x00"],
)
def test_unsafe_blob_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = FilesystemBlobStore(tmp_path)
    with pytest.raises(BlobKeyError):
        store.put(key, b"x")


def test_blob_round_trip(tmp_path: Path) -> None:
    store = FilesystemBlobStore(tmp_path)
    store.put("photos/s/d/ab/abc.jpg", b"data")
    assert store.get("photos/s/d/ab/abc.jpg") == b"data"
    assert store.list("photos") == ["photos/s/d/ab/abc.jpg"]
