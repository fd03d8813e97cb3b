"""Flagged photos for the demo and the browser tests, drawn here, not downloaded.

Three synthetic concrete photos (a wide crack, corrosion, spalling with exposed rebar)
with detections as the inspection worker would store them, on a bridge of the demo
site, plus an inspector account. Idempotent: running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from psycopg.types.json import Jsonb

from api.blobs import write_blob
from api.pool import Conn
from api.security import Role, hash_password
from core.registry import AssetKind, AssetSpec, SiteSpec
from store import api_auth
from store import api_queries as q
from store.registry import upsert_asset, upsert_site

DEMO_SITE = SiteSpec(
    id="yamaguchi-demo", name="Yamaguchi demo", name_ja="山口デモ", prefecture="山口県"
)
DEMO_ASSET = AssetSpec(
    id="fushino-bridge",
    site_id="yamaguchi-demo",
    kind=AssetKind.BRIDGE,
    name="Fushino bridge",
    name_ja="椹野川橋",
    lat=34.17,
    lon=131.47,
)
MODEL_NAME = "demo-detector"
MODEL_VERSION = "0.1"


@dataclass(frozen=True, slots=True)
class SeedResult:
    image_ids: list[str]
    inspector: str


def _concrete(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = rng.normal(150, 12, (height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(base, (0, 0), 1.2)
    return cv2.cvtColor(np.clip(smooth, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def _photos() -> list[
    tuple[
        str,
        np.ndarray,
        list[tuple[str, float, tuple[int, int, int, int], float | None, float | None, str]],
    ]
]:
    rng = np.random.default_rng(7)
    w, h = 640, 480
    crack = _concrete(rng, w, h)
    points = np.array([[80, 90], [170, 150], [240, 170], [330, 250], [420, 290], [560, 390]])
    cv2.polylines(crack, [points.reshape(-1, 1, 2)], False, (40, 40, 40), 4, cv2.LINE_AA)
    cv2.polylines(
        crack,
        [np.array([[300, 60], [330, 120], [350, 140]]).reshape(-1, 1, 2)],
        False,
        (70, 70, 70),
        2,
        cv2.LINE_AA,
    )
    rust = _concrete(rng, w, h)
    cv2.ellipse(rust, (330, 250), (120, 70), 15, 0, 360, (30, 70, 140), -1)
    cv2.ellipse(rust, (330, 250), (80, 40), 15, 0, 360, (20, 50, 110), -1)
    cv2.line(rust, (110, 400), (260, 360), (60, 60, 60), 2, cv2.LINE_AA)
    spall = _concrete(rng, w, h)
    cv2.rectangle(spall, (200, 160), (440, 330), (95, 100, 105), -1)
    for y in (200, 250, 300):
        cv2.line(spall, (210, y), (430, y), (40, 60, 110), 6, cv2.LINE_AA)
    cv2.rectangle(spall, (480, 60), (600, 140), (205, 210, 215), -1)
    return [
        (
            "demo-crack-0001",
            crack,
            [
                ("crack", 0.91, (70, 80, 570, 400), 612.0, 0.35, "crack width ≥ 0.3 mm"),
                ("crack", 0.42, (290, 50, 360, 150), 95.0, 0.12, "low confidence"),
            ],
        ),
        (
            "demo-corrosion-0002",
            rust,
            [
                ("corrosion", 0.78, (200, 170, 460, 330), None, None, "new damage type on asset"),
                ("crack", 0.55, (100, 350, 270, 410), 180.0, 0.18, "low confidence"),
            ],
        ),
        (
            "demo-spalling-0003",
            spall,
            [
                ("spalling", 0.88, (195, 155, 445, 335), None, None, "exposed rebar"),
                ("efflorescence", 0.51, (470, 50, 610, 150), None, None, "low confidence"),
            ],
        ),
    ]


def seed_review_demo(
    conn: Conn, blob_dir: Path, *, inspector: str = "inspector", password: str
) -> SeedResult:
    """Register the demo bridge, its flagged photos and an inspector who can log in."""
    directory = blob_dir
    with q.guard("seeding the review demo"):
        upsert_site(conn, DEMO_SITE)
        upsert_asset(conn, DEMO_ASSET)
    ids = []
    for image_id, pixels, detections in _photos():
        ids.append(image_id)
        ok, encoded = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 88])
        assert ok
        stored = write_blob(
            directory,
            bytes(encoded.tobytes()),
            "image/jpeg",
            site=DEMO_SITE.id,
            device="demo-drone",
        )
        with q.guard("seeding a photo"):
            inserted = conn.execute(
                """INSERT INTO images (id, asset_id, blob_key, sha256, size_bytes,
                                       content_type, width, height, meta, status,
                                       review_reason)
                   VALUES (%s, %s, %s, %s, %s, 'image/jpeg', %s, %s, %s, 'flagged',
                           'findings need an engineer')
                   ON CONFLICT (id) DO NOTHING RETURNING id""",
                (
                    image_id,
                    DEMO_ASSET.id,
                    stored.key,
                    stored.sha256,
                    stored.size_bytes,
                    pixels.shape[1],
                    pixels.shape[0],
                    Jsonb({"source": "synthetic demo"}),
                ),
            ).fetchone()
            if inserted is None:
                continue
            for damage, confidence, box, length_mm, width_mm, reason in detections:
                conn.execute(
                    """INSERT INTO detections (image_id, damage_type, confidence, x1, y1, x2,
                           y2, length_mm, max_width_mm, flagged_reason, model_name,
                           model_version)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                    (
                        image_id,
                        damage,
                        confidence,
                        *box,
                        length_mm,
                        width_mm,
                        reason,
                        MODEL_NAME,
                        MODEL_VERSION,
                    ),
                )
    if api_auth.get_user(conn, inspector) is None:
        api_auth.create_user(
            conn,
            username=inspector,
            display_name="Demo inspector",
            role=Role.INSPECTOR.value,
            password_hash=hash_password(password),
        )
    conn.commit()
    return SeedResult(ids, inspector)
