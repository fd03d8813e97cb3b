"""Sample photos for ``mamori demo`` and ``mamori inspect demo``: copy to the blob store, queue.

The real photos are CC BY-SA 4.0 (Yoshida Laboratory, Osaka Metropolitan University);
``samples/ATTRIBUTION.md`` credits them and must travel with them.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from pathlib import Path

import cv2

from store import inspection as queue

_log = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).parent / "samples"

#: GSD of the dataset's drone photos (Autel EVO II Pro: 13.2 mm sensor, 10.57 mm lens,
#: 5472 px wide, about 10 m away): about 2.3 mm per pixel.
SAMPLE_GSD_MM_PER_PX = 10_000 * 13.2 / (10.57 * 5472)


def sample_photos() -> list[Path]:
    return sorted(SAMPLES_DIR.glob("*.jpg"))


def queue_samples(conn: queue.Conn, blob_dir: Path, prefix: str = "demo") -> list[str]:
    """Copy each sample into ``blob_dir`` and queue it (``pending``); the image ids.

    Content-addressed: queueing twice does not duplicate a photo.
    """
    ids: list[str] = []
    target_dir = blob_dir / "samples"
    target_dir.mkdir(parents=True, exist_ok=True)
    for path in sample_photos():
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        image_id = f"{prefix}-{digest[:16]}"
        blob_key = f"samples/{digest}.jpg"
        shutil.copyfile(path, blob_dir / blob_key)
        exists = conn.execute("SELECT 1 FROM images WHERE id = %s", (image_id,)).fetchone()
        if exists is None:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            height, width = (image.shape[:2]) if image is not None else (None, None)
            synthetic = path.name.startswith("synthetic")
            meta: dict[str, object] = {"filename": path.name, "synthetic": synthetic}
            if not synthetic:
                meta["gsd_mm_per_px"] = round(SAMPLE_GSD_MM_PER_PX, 4)
            queue.add_image(
                conn,
                image_id,
                blob_key,
                digest,
                len(data),
                width=width,
                height=height,
                meta=meta,
            )
        ids.append(image_id)
    _log.info("queued %s sample photos", len(ids))
    return ids
