"""Drone photos: chunked upload through a real Mosquitto, reassembled by ingest."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from core.messages import encode
from core.registry import AssetKind, AssetSpec, DeviceSpec, SiteSpec
from core.settings import DatabaseSettings, IngestSettings, MqttSettings
from edge_agent.photos import PhotoUploader, build_manifest
from edge_agent.publisher import DevicePublisher
from ingest.service import IngestService
from store.blobs import FilesystemBlobStore
from store.registry import upsert_asset, upsert_device, upsert_site

DATASET = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "omu-crack-quay"


def _photo() -> Path:
    photos = sorted((DATASET / "h1").glob("*.jpg"))
    assert photos, f"the crack dataset is missing under {DATASET}"
    return photos[0]


@pytest.fixture
def drone(database_url: str) -> tuple[str, str]:
    site = f"s-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url) as conn:
        upsert_site(conn, SiteSpec(id=site, name="Quay"))
        upsert_asset(
            conn, AssetSpec(id=f"{site}-quay", site_id=site, kind=AssetKind.QUAY_WALL, name="Q")
        )
        upsert_device(conn, DeviceSpec(id=f"{site}-drone", site_id=site, kind="camera"))
    return site, f"{site}-drone"


def _service(mqtt: MqttSettings, url: str, blobs: Path) -> IngestService:
    settings = IngestSettings(
        mqtt=mqtt,
        database=DatabaseSettings(url=SecretStr(url)),
        client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        flush_interval_ms=50,
        blob_dir=blobs,
    )
    return IngestService(settings, url)


def test_photo_arrives_whole_with_its_metadata(
    mqtt_settings: MqttSettings, database_url: str, drone: tuple[str, str], tmp_path: Path
) -> None:
    site, device = drone
    service = _service(mqtt_settings, database_url, tmp_path / "blobs")
    service.start()
    publisher = DevicePublisher(mqtt_settings, site, device)
    publisher.start()
    try:
        uploader = PhotoUploader(publisher, chunk_size=4096)
        result = uploader.upload(_photo(), asset=f"{site}-quay", altitude_m=10.0)
        assert result.chunks_sent == result.chunks_total > 3
        deadline = time.monotonic() + 10
        row = None
        while row is None and time.monotonic() < deadline:
            with psycopg.connect(database_url) as conn:
                row = conn.execute(
                    "SELECT blob_key, sha256, status, asset_id, meta FROM images WHERE id = %s",
                    (result.photo_id,),
                ).fetchone()
            time.sleep(0.05)
        assert row is not None
        blob_key, sha, status, asset, meta = row
        assert status == "pending"
        assert asset == f"{site}-quay"
        stored = FilesystemBlobStore(tmp_path / "blobs").get(str(blob_key))
        assert stored == _photo().read_bytes()
        assert sha == hashlib.sha256(stored).hexdigest()
        assert isinstance(meta, dict)
        assert meta["camera"]["make"] == "Autel Robotics"
        assert meta["location"]["alt_m"] == 10.0
        # Uploading the same photo again sends nothing and makes no second image.
        again = uploader.upload(_photo(), asset=f"{site}-quay")
        assert again.chunks_sent == 0
        with psycopg.connect(database_url) as conn:
            count = conn.execute("SELECT count(*) FROM images WHERE sha256 = %s", (sha,)).fetchone()
        assert count == (1,)
        # Ingest does not hear its own acknowledgements back as strange messages.
        with psycopg.connect(database_url) as conn:
            letters = conn.execute(
                "SELECT count(*) FROM dead_letters WHERE topic LIKE %s",
                (f"{publisher.device_root}/%",),
            ).fetchone()
        assert letters == (0,)
    finally:
        publisher.stop()
        service.stop()


def test_interrupted_upload_resumes_with_the_missing_chunks(
    mqtt_settings: MqttSettings, database_url: str, drone: tuple[str, str], tmp_path: Path
) -> None:
    site, device = drone
    service = _service(mqtt_settings, database_url, tmp_path / "blobs")
    service.start()
    publisher = DevicePublisher(mqtt_settings, site, device)
    publisher.start()
    try:
        manifest, chunks = build_manifest(_photo(), device, asset=None, chunk_size=2048)
        root = f"{publisher.device_root}/photos/{manifest.photo_id}"
        # A first attempt that died after the manifest and the first half of the chunks.
        publisher.publish_to(f"{root}/manifest", encode(manifest))
        half = len(chunks) // 2
        for index in range(half):
            publisher.publish_to(f"{root}/chunks/{index}", chunks[index])
        # A chunk corrupted on the way is refused (dead letter) and asked for again.
        publisher.publish_to(f"{root}/chunks/{half}", b"corrupted" + chunks[half][9:])
        time.sleep(0.5)
        result = PhotoUploader(publisher, chunk_size=2048).upload(_photo())
        assert result.chunks_sent == len(chunks) - half
        with psycopg.connect(database_url) as conn:
            status = conn.execute(
                "SELECT status FROM images WHERE id = %s", (manifest.photo_id,)
            ).fetchone()
            letter = conn.execute(
                "SELECT reason FROM dead_letters WHERE topic = %s", (f"{root}/chunks/{half}",)
            ).fetchone()
        assert status == ("pending",)
        assert letter == ("invalid",)
    finally:
        publisher.stop()
        service.stop()
