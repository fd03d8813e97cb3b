"""Reviewed photos become YOLO training data; grades become the inspection record."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2

from api.demo_seed import seed_review_demo
from api.exports import export_records, export_reviewed
from api.security import Role
from core.damage import MODEL_CLASSES, DamageType
from tests.integration.api.conftest import PASSWORD, ApiEnv


def _detections(env: ApiEnv, image_id: str) -> list[int]:
    found = env.client.get(
        f"/api/v1/images/{image_id}/detections", headers=env.headers[Role.VIEWER]
    ).json()
    return [d["id"] for d in found]


def test_export_reviewed_writes_photos_and_yolo_labels(env: ApiEnv, tmp_path: Path) -> None:
    with env.conn() as conn:
        seeded = seed_review_demo(conn, env.blob_dir, inspector="inspector-user", password=PASSWORD)
    crack_photo, rust_photo, _spall_photo = seeded.image_ids
    inspector = env.headers[Role.INSPECTOR]
    wide, hairline = _detections(env, crack_photo)
    post = f"/api/v1/images/{crack_photo}/reviews"
    assert env.client.post(
        post, json={"action": "confirm", "detection_id": wide}, headers=inspector
    ).is_success
    assert env.client.post(
        post, json={"action": "reject", "detection_id": hairline}, headers=inspector
    ).is_success
    box = {"x1": 320, "y1": 240, "x2": 480, "y2": 360}
    assert env.client.post(
        post, json={"action": "add", "damage_type": "corrosion", "box": box}, headers=inspector
    ).is_success
    # The corrosion photo is only half decided: it must not be exported yet.
    rust = _detections(env, rust_photo)
    assert env.client.post(
        f"/api/v1/images/{rust_photo}/reviews",
        json={"action": "confirm", "detection_id": rust[0]},
        headers=inspector,
    ).is_success

    out = tmp_path / "dataset"
    with env.conn() as conn:
        result = export_reviewed(conn, env.blob_dir, out)
    assert (result.photos, result.labels, result.skipped_undecided) == (1, 2, 1)
    image = cv2.imread(str(out / "images" / f"{crack_photo}.jpg"))
    assert image is not None
    assert image.shape[:2] == (480, 640)
    lines = (out / "labels" / f"{crack_photo}.txt").read_text().splitlines()
    classes = sorted(int(line.split()[0]) for line in lines)
    assert classes == sorted(
        [MODEL_CLASSES.index(DamageType.CRACK), MODEL_CLASSES.index(DamageType.CORROSION)]
    )
    corrosion = next(
        line for line in lines if line.startswith(str(MODEL_CLASSES.index(DamageType.CORROSION)))
    )
    cx, cy, w, h = (float(v) for v in corrosion.split()[1:])
    assert (cx, cy, w, h) == (0.625, 0.625, 0.25, 0.25)
    data_yaml = (out / "data.yaml").read_text()
    assert data_yaml.endswith("".join(f"  {i}: {d.value}\n" for i, d in enumerate(MODEL_CLASSES)))
    assert not (out / "labels" / f"{rust_photo}.txt").exists()


def test_export_records_is_shaped_like_the_mlit_sheet(env: ApiEnv, tmp_path: Path) -> None:
    with env.conn() as conn:
        seeded = seed_review_demo(conn, env.blob_dir, inspector="inspector-user", password=PASSWORD)
    photo = seeded.image_ids[2]
    inspector = env.headers[Role.INSPECTOR]
    spalling = _detections(env, photo)[0]
    url = f"/api/v1/images/{photo}/reviews"
    for body in (
        {"action": "confirm", "detection_id": spalling},
        {"action": "grade", "member": "床版 Ds0101", "grade": "III", "note": "鉄筋露出"},
        {"action": "grade", "grade": "II"},
    ):
        assert env.client.post(url, json=body, headers=inspector).is_success
    out = tmp_path / "records.csv"
    with env.conn() as conn:
        assert export_records(conn, out) == 2
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: opens cleanly in Japanese Excel
    rows = list(csv.reader(out.read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == [
        "施設ID",
        "施設名",
        "部材",
        "損傷の種類",
        "健全性の診断",
        "点検日",
        "点検者",
        "所見",
        "写真ID",
    ]
    assert rows[1][:5] == [
        "fushino-bridge",
        "椹野川橋",
        "施設全体",
        "剥離・鉄筋露出",
        "Ⅱ 予防保全段階",
    ]
    assert rows[2][2:8] == [
        "床版 Ds0101",
        "剥離・鉄筋露出",
        "Ⅲ 早期措置段階",
        env.clock().date().isoformat(),
        "inspector-user",
        "鉄筋露出",
    ]
    english = tmp_path / "records-en.csv"
    with env.conn() as conn:
        export_records(conn, english, lang="en")
    header = english.read_text(encoding="utf-8-sig").splitlines()[0]
    assert header.startswith("asset_id,asset,member,damage_types,grade,date,inspector")
