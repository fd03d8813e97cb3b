"""Corrections feed training, and findings feed the inspection record.

``export_reviewed`` writes every photo whose findings inspectors have all decided on,
with YOLO labels of what they decided (confirmed, reclassified, adjusted and added
boxes; rejected ones left out, so the photo teaches the model what is not damage):

    OUT/images/<id>.<ext>   the original photo
    OUT/labels/<id>.txt     one line per finding: class cx cy w h (normalised 0–1)
    OUT/data.yaml           class names in index order (core.damage.MODEL_CLASSES)
    OUT/manifest.csv        photo, asset, reviewers, counts

``export_records`` writes a CSV shaped like the MLIT periodic-inspection sheets
(道路橋定期点検要領, 様式): one row per graded member or asset, with the damage types
confirmed on the photos of that asset, the grade, the date and the inspector.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from api.blobs import BlobError, blob_path, stored_dimensions
from api.findings import Finding, fold, grades
from api.taxonomy import CLASS_INDEX, GRADE_LABELS, label
from core.damage import MODEL_CLASSES
from store import api_queries as q

_log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class ReviewedExport:
    photos: int
    labels: int
    skipped_undecided: int
    skipped_missing: int


def export_reviewed(
    conn: q.Conn, blob_dir: Path, out_dir: Path, *, progress: Progress | None = None
) -> ReviewedExport:
    images_dir = out_dir / "images"
    labels_dir = out_dir / "labels"
    images_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    images = q.reviewed_images(conn)
    ids = [i.id for i in images]
    detections = q.detections_for(conn, ids)
    reviews = q.reviews_for(conn, ids)
    photos = labels = undecided = missing = 0
    with (out_dir / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        manifest = csv.writer(handle)
        manifest.writerow(["image_id", "asset_id", "file", "boxes", "rejected", "reviewers"])
        for done, image in enumerate(images, 1):
            if progress:
                progress(done, len(images))
            own_reviews = [r for r in reviews if r.image_id == image.id]
            findings = fold([d for d in detections if d.image_id == image.id], own_reviews)
            if any(f.status == "pending" for f in findings):
                undecided += 1
                continue
            located = _locate(blob_dir, image)
            if located is None:
                missing += 1
                continue
            source, width, height = located
            name = f"{image.id}{source.suffix.lower() or '.jpg'}"
            shutil.copyfile(source, images_dir / name)
            lines = _yolo_lines(findings, width, height)
            (labels_dir / f"{image.id}.txt").write_text(
                "".join(line + "\n" for line in lines), encoding="utf-8"
            )
            reviewers = " ".join(sorted({r.reviewer for r in own_reviews}))
            rejected = sum(1 for f in findings if f.status == "rejected")
            manifest.writerow(
                [image.id, image.asset_id or "", name, len(lines), rejected, reviewers]
            )
            photos += 1
            labels += len(lines)
    names = "\n".join(f"  {i}: {d.value}" for i, d in enumerate(MODEL_CLASSES))
    (out_dir / "data.yaml").write_text(
        "# Reviewed Mamori photos; labels are inspectors' decisions.\n"
        f"path: {out_dir.resolve()}\ntrain: images\nval: images\nnames:\n{names}\n",
        encoding="utf-8",
    )
    return ReviewedExport(photos, labels, undecided, missing)


def _locate(blob_dir: Path, image: q.ImageRow) -> tuple[Path, int, int] | None:
    """The photo's file and pixel size, or None when either cannot be had."""
    try:
        source = blob_path(blob_dir, image.blob_key)
    except BlobError:
        return None
    if not source.is_file():
        _log.warning("photo %s: blob %s is missing", image.id, image.blob_key)
        return None
    if image.width and image.height:
        return source, image.width, image.height
    size = stored_dimensions(blob_dir, image.blob_key)
    return None if size is None else (source, size[0], size[1])


def _yolo_lines(findings: Sequence[Finding], width: int, height: int) -> list[str]:
    lines = []
    for finding in findings:
        if finding.status != "confirmed" or finding.damage_type not in CLASS_INDEX:
            continue
        cx = (finding.x1 + finding.x2) / 2 / width
        cy = (finding.y1 + finding.y2) / 2 / height
        w = (finding.x2 - finding.x1) / width
        h = (finding.y2 - finding.y1) / height
        lines.append(
            f"{CLASS_INDEX[finding.damage_type]} {_unit(cx):.6f} {_unit(cy):.6f} "
            f"{_unit(w):.6f} {_unit(h):.6f}"
        )
    return lines


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


#: Column headings of the inspection record, Japanese (as on the MLIT sheets) or English.
RECORD_HEADERS: Final = {
    "ja": [
        "施設ID",
        "施設名",
        "部材",
        "損傷の種類",
        "健全性の診断",
        "点検日",
        "点検者",
        "所見",
        "写真ID",
    ],
    "en": [
        "asset_id",
        "asset",
        "member",
        "damage_types",
        "grade",
        "date",
        "inspector",
        "note",
        "image_id",
    ],
}


def export_records(conn: q.Conn, out_file: Path, *, lang: str = "ja") -> int:
    """One row per (photo, member) grade, latest first per member; returns the rows.

    Written as UTF-8 with a byte-order mark, which spreadsheet software in Japan opens
    without mangling the kanji.
    """
    images = q.reviewed_images(conn)
    ids = [i.id for i in images]
    detections = q.detections_for(conn, ids)
    reviews = q.reviews_for(conn, ids)
    assets: dict[str, q.AssetRow] = {}
    rows: list[list[str]] = []
    for image in images:
        own_reviews = [r for r in reviews if r.image_id == image.id]
        findings = fold([d for d in detections if d.image_id == image.id], own_reviews)
        confirmed = sorted({f.damage_type for f in findings if f.status == "confirmed"})
        damage = (
            "、".join(label(t, lang) for t in confirmed)
            if lang == "ja"
            else "; ".join(label(t, lang) for t in confirmed)
        )
        asset_name = ""
        if image.asset_id:
            if image.asset_id not in assets:
                with contextlib.suppress(q.NotFoundError):
                    assets[image.asset_id] = q.get_asset(conn, image.asset_id)
            asset = assets.get(image.asset_id)
            if asset:
                asset_name = (asset.name_ja or asset.name) if lang == "ja" else asset.name
        for entry in grades(own_reviews):
            member = entry.member or ("施設全体" if lang == "ja" else "(whole asset)")
            rows.append(
                [
                    image.asset_id or "",
                    asset_name,
                    member,
                    damage,
                    GRADE_LABELS[entry.grade][0 if lang == "ja" else 1],
                    entry.at.date().isoformat(),
                    entry.reviewer,
                    entry.note or "",
                    image.id,
                ]
            )
    out_file.parent.mkdir(parents=True, exist_ok=True)
    with out_file.open("w", newline="", encoding="utf-8-sig") as handle:
        writer = csv.writer(handle)
        writer.writerow(RECORD_HEADERS["ja" if lang == "ja" else "en"])
        writer.writerows(rows)
    return len(rows)
