"""Photos arriving: one ``images`` row per assembled photo, ``pending`` for the worker."""

from __future__ import annotations

from datetime import datetime

import psycopg
from psycopg.types.json import Jsonb

from core.messages import PhotoManifest
from store.db import translate_errors

Conn = psycopg.Connection[tuple[object, ...]]


def insert_image(
    conn: Conn, image_id: str, manifest: PhotoManifest, blob_key: str, received_at: datetime
) -> bool:
    """Insert the image once; a redelivered photo is not a second image. True if new."""
    meta = {
        "filename": manifest.filename,
        "location": manifest.location.model_dump() if manifest.location else None,
        "camera": manifest.camera.model_dump() if manifest.camera else None,
    }
    camera = manifest.camera
    with translate_errors("recording an image"):
        cur = conn.execute(
            """INSERT INTO images (id, device_id, asset_id, captured_at, received_at, blob_key,
                                   sha256, size_bytes, content_type, width, height, meta)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               ON CONFLICT (id) DO NOTHING""",
            (
                image_id,
                manifest.device,
                manifest.asset,
                manifest.captured_at,
                received_at,
                blob_key,
                manifest.sha256,
                manifest.size_bytes,
                manifest.content_type,
                camera.image_width_px if camera else None,
                camera.image_height_px if camera else None,
                Jsonb(meta),
            ),
        )
        return cur.rowcount == 1
