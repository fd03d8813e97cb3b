"""Build a YOLO-format training set: real crack tiles of some sites plus synthetic damage.

Layout written under ``out``::

    images/train/*.jpg  labels/train/*.txt
    images/val/*.jpg    labels/val/*.txt      (held-out sites, real tiles only)
    data.yaml

The held-out sites' real tiles are copied unchanged into ``val`` so that the very same
folder can be given to ``mamori inspect eval``. Synthetic pictures (spalling, corrosion,
efflorescence) are drawn twice over: onto the training sites' real tiles, kept clear of
their labelled cracks, and onto procedural concrete (with clean negatives). A separate
synthetic validation set, drawn with another seed, measures the synthetic classes.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from core.damage import MODEL_CLASSES
from inspection_models import synthetic
from inspection_models.labels import read_yolo_labels

_log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True, slots=True)
class DatasetSummary:
    root: Path
    data_yaml: Path
    train_images: int
    train_real: int
    val_images: int
    synthetic_val_dir: Path
    synthetic_val_images: int


def site_images(dataset: Path, site: str) -> list[Path]:
    folder = dataset / site
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _copy_pair(image: Path, images_dir: Path, labels_dir: Path, stem: str) -> None:
    shutil.copyfile(image, images_dir / f"{stem}{image.suffix.lower()}")
    label = image.with_suffix(".txt")
    target = labels_dir / f"{stem}.txt"
    if label.exists():
        shutil.copyfile(label, target)
    else:
        target.write_text("", encoding="utf-8")


def _write_synthetic(
    img: synthetic.Image,
    boxes: list[synthetic.DrawnBox],
    extra: list[str],
    images_dir: Path,
    labels_dir: Path,
    stem: str,
) -> None:
    height, width = img.shape[:2]
    cv2.imwrite(str(images_dir / f"{stem}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 92])
    lines = extra + [b.yolo_line(width, height) for b in boxes]
    (labels_dir / f"{stem}.txt").write_text(
        "".join(f"{line}\n" for line in lines), encoding="utf-8"
    )


def build(
    dataset: Path,
    out: Path,
    train_sites: tuple[str, ...],
    val_sites: tuple[str, ...],
    *,
    composites_per_real: int = 1,
    procedural: int = 60,
    synthetic_val: int = 60,
    seed: int = 0,
    limit: int | None = None,
) -> DatasetSummary:
    """Write the dataset under ``out`` (replacing it) and return what went in."""
    if out.exists():
        shutil.rmtree(out)
    for split in ("train", "val"):
        (out / "images" / split).mkdir(parents=True)
        (out / "labels" / split).mkdir(parents=True)
    rng = np.random.default_rng(seed)

    train_count = real_count = 0
    for site in train_sites:
        images = site_images(dataset, site)[:limit]
        for image in images:
            stem = f"{site}_{image.stem}"
            _copy_pair(image, out / "images/train", out / "labels/train", stem)
            real_count += 1
            train_count += 1
            background = cv2.imread(str(image), cv2.IMREAD_COLOR)
            if background is None:
                continue
            height, width = background.shape[:2]
            cracks = read_yolo_labels(image.with_suffix(".txt"))
            crack_lines = [
                f"{c.class_id} {c.cx:.6f} {c.cy:.6f} {c.w:.6f} {c.h:.6f}" for c in cracks
            ]
            avoid = tuple(c.to_xyxy(width, height) for c in cracks)
            for k in range(composites_per_real):
                img, boxes = synthetic.sample(
                    rng, background=np.asarray(background, np.uint8), avoid=avoid
                )
                _write_synthetic(
                    img,
                    boxes,
                    crack_lines,
                    out / "images/train",
                    out / "labels/train",
                    f"{stem}_syn{k}",
                )
                train_count += 1
    for k in range(procedural if limit is None else min(procedural, limit)):
        img, boxes = synthetic.sample(rng)
        _write_synthetic(
            img, boxes, [], out / "images/train", out / "labels/train", f"proc_{k:04d}"
        )
        train_count += 1

    val_count = 0
    for site in val_sites:
        for image in site_images(dataset, site)[:limit]:
            _copy_pair(image, out / "images/val", out / "labels/val", f"{site}_{image.stem}")
            val_count += 1

    syn_dir = out / "synthetic_val"
    (syn_dir / "images").mkdir(parents=True)
    (syn_dir / "labels").mkdir(parents=True)
    val_rng = np.random.default_rng(seed + 1_000_003)
    n_syn = synthetic_val if limit is None else min(synthetic_val, limit)
    for k in range(n_syn):
        img, boxes = synthetic.sample(val_rng)
        _write_synthetic(img, boxes, [], syn_dir / "images", syn_dir / "labels", f"synval_{k:04d}")

    names = "\n".join(f"  {i}: {d.value}" for i, d in enumerate(MODEL_CLASSES))
    data_yaml = out / "data.yaml"
    data_yaml.write_text(
        f"path: {out.resolve()}\ntrain: images/train\nval: images/val\nnames:\n{names}\n",
        encoding="utf-8",
    )
    _log.info(
        "dataset at %s: %s train (%s real), %s val, %s synthetic val",
        out,
        train_count,
        real_count,
        val_count,
        n_syn,
    )
    return DatasetSummary(out, data_yaml, train_count, real_count, val_count, syn_dir, n_syn)


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def negative_crops(
    dataset: Path, sites: tuple[str, ...], out: Path, size: int = 128, margin: int = 8
) -> int:
    """Write crack-free crops of real tiles (no labelled box within ``margin``) with empty
    label files: real negatives for image-level precision. One crop per tile at most.

    Caveat: a crack the annotators did not box would make a "negative" that is not one.
    """
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for site in sites:
        for image_path in site_images(dataset, site):
            image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
            if image is None:
                continue
            height, width = image.shape[:2]
            boxes = [
                b.to_xyxy(width, height) for b in read_yolo_labels(image_path.with_suffix(".txt"))
            ]
            found = _first_clear_window(boxes, height, width, size, margin)
            if found is None:
                continue
            x, y = found
            stem = f"{site}_{image_path.stem}_neg"
            cv2.imwrite(
                str(out / f"{stem}.jpg"),
                image[y : y + size, x : x + size],
                [cv2.IMWRITE_JPEG_QUALITY, 95],
            )
            (out / f"{stem}.txt").write_text("", encoding="utf-8")
            written += 1
    return written


def _first_clear_window(
    boxes: list[tuple[float, float, float, float]], height: int, width: int, size: int, margin: int
) -> tuple[int, int] | None:
    for y in range(0, height - size + 1, 32):
        for x in range(0, width - size + 1, 32):
            window = (x - margin, y - margin, x + size + margin, y + size + margin)
            if not any(_overlaps(window, box) for box in boxes):
                return x, y
    return None


def evaluation_folder(dataset: Path, sites: tuple[str, ...], out: Path) -> tuple[int, int]:
    """Held-out real tiles plus real crack-free crops in one folder (images and labels
    side by side) for ``mamori inspect eval``; (positives, negatives)."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    positives = 0
    for site in sites:
        for image in site_images(dataset, site):
            _copy_pair(image, out, out, f"{site}_{image.stem}")
            positives += 1
    negatives = negative_crops(dataset, sites, out)
    return positives, negatives
