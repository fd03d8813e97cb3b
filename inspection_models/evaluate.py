"""Honest evaluation on a folder of labelled pictures.

Box level, per class: a prediction is a true positive when it overlaps a not yet
matched ground-truth box of its class by at least ``iou`` (greedy, most confident
first). Precision, recall and F1 are read at the detector's operating confidence; AP@0.5
integrates precision over recall (all-point interpolation, as PASCAL VOC 2010+ and COCO's
AP50) using every prediction down to a very low confidence.

Image level: "this picture shows damage" is predicted when any finding of an evaluated
class reaches the operating confidence; it is true when the label file has any box.
An empty or missing label file means no damage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict

from core.damage import DamageType
from inspection_models.detection import Detection, Image, iou
from inspection_models.labels import read_yolo_labels

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})


@dataclass(frozen=True, slots=True)
class Truth:
    damage: DamageType
    box: tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class Sample:
    image_path: Path
    truths: tuple[Truth, ...]


class _Report(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageLevel(_Report):
    precision: float
    recall: float
    f1: float
    images: int
    positives: int
    true_positives: int
    false_positives: int
    false_negatives: int


class ClassScores(_Report):
    precision: float
    recall: float
    f1: float
    ap50: float
    ground_truth: int
    predictions: int
    true_positives: int


class EvaluationReport(_Report):
    image_level: ImageLevel
    per_class: dict[str, ClassScores]
    map50: float
    iou: float
    confidence: float
    class_confidence: dict[str, float]
    detector: str


def parse_class_map(spec: str) -> dict[int, DamageType]:
    """``"0=crack,1=spalling"`` → ``{0: CRACK, 1: SPALLING}``."""
    mapping: dict[int, DamageType] = {}
    for part in spec.split(","):
        index, _, name = part.strip().partition("=")
        mapping[int(index)] = DamageType(name.strip())
    return mapping


def load_samples(
    images_dir: Path, labels_dir: Path, class_map: dict[int, DamageType]
) -> list[Sample]:
    """Every picture in ``images_dir`` with the boxes of its same-stem label file."""
    samples = []
    for path in sorted(images_dir.iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            continue
        height, width = image.shape[:2]
        truths = tuple(
            Truth(class_map[box.class_id], box.to_xyxy(width, height))
            for box in read_yolo_labels(labels_dir / f"{path.stem}.txt")
            if box.class_id in class_map
        )
        samples.append(Sample(path, truths))
    return samples


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def average_precision(
    recalls: npt.NDArray[np.float64], precisions: npt.NDArray[np.float64]
) -> float:
    """Area under the interpolated precision-recall curve (all points)."""
    r = np.concatenate(([0.0], recalls, [1.0]))
    p = np.concatenate(([1.0], precisions, [0.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    changes = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[changes + 1] - r[changes]) * p[changes + 1]))


def score(
    samples: Sequence[Sample],
    predictions: Sequence[Sequence[Detection]],
    classes: Sequence[DamageType],
    *,
    iou_threshold: float = 0.5,
    confidence: float = 0.25,
    class_confidence: Mapping[DamageType, float] | None = None,
    detector: str = "",
) -> EvaluationReport:
    """Compare ``predictions`` (all confidences) with the truths; see the module doc."""
    thresholds = dict(class_confidence or {})

    def operating(damage: DamageType) -> float:
        return thresholds.get(damage, confidence)

    per_class: dict[str, ClassScores] = {}
    for damage in classes:
        matched_flags: list[tuple[float, bool]] = []
        n_truth = 0
        for sample, preds in zip(samples, predictions, strict=True):
            truths = [t.box for t in sample.truths if t.damage == damage]
            n_truth += len(truths)
            taken = [False] * len(truths)
            for pred in sorted(
                (p for p in preds if p.damage == damage), key=lambda p: -p.confidence
            ):
                best, best_iou = -1, iou_threshold
                for index, truth in enumerate(truths):
                    if taken[index]:
                        continue
                    overlap = iou(pred.xyxy(), truth)
                    if overlap >= best_iou:
                        best, best_iou = index, overlap
                if best >= 0:
                    taken[best] = True
                matched_flags.append((pred.confidence, best >= 0))
        matched_flags.sort(key=lambda item: -item[0])
        hits = np.array([m for _, m in matched_flags], dtype=bool)
        confs = np.array([c for c, _ in matched_flags], dtype=np.float64)
        tp_cum = np.cumsum(hits)
        fp_cum = np.cumsum(~hits)
        if n_truth and hits.size:
            ap = average_precision(tp_cum / n_truth, tp_cum / np.maximum(tp_cum + fp_cum, 1))
        else:
            ap = 0.0
        above = confs >= operating(damage)
        tp = int(hits[above].sum())
        n_pred = int(above.sum())
        precision = tp / n_pred if n_pred else (1.0 if n_truth == 0 else 0.0)
        recall = tp / n_truth if n_truth else 1.0
        per_class[damage.value] = ClassScores(
            precision=round(precision, 4),
            recall=round(recall, 4),
            f1=round(_f1(precision, recall), 4),
            ap50=round(ap, 4),
            ground_truth=n_truth,
            predictions=n_pred,
            true_positives=tp,
        )

    wanted = set(classes)
    tp_img = fp_img = fn_img = positives = 0
    for sample, preds in zip(samples, predictions, strict=True):
        damaged = any(t.damage in wanted for t in sample.truths)
        said = any(p.damage in wanted and p.confidence >= operating(p.damage) for p in preds)
        positives += int(damaged)
        tp_img += int(damaged and said)
        fp_img += int(not damaged and said)
        fn_img += int(damaged and not said)
    img_precision = tp_img / (tp_img + fp_img) if tp_img + fp_img else 0.0
    img_recall = tp_img / positives if positives else 0.0
    with_truth = [s for s in per_class.values() if s.ground_truth > 0]
    map50 = sum(s.ap50 for s in with_truth) / len(with_truth) if with_truth else 0.0
    return EvaluationReport(
        image_level=ImageLevel(
            precision=round(img_precision, 4),
            recall=round(img_recall, 4),
            f1=round(_f1(img_precision, img_recall), 4),
            images=len(samples),
            positives=positives,
            true_positives=tp_img,
            false_positives=fp_img,
            false_negatives=fn_img,
        ),
        per_class=per_class,
        map50=round(map50, 4),
        iou=iou_threshold,
        confidence=confidence,
        class_confidence={d.value: v for d, v in thresholds.items()},
        detector=detector,
    )


def predict_all(
    samples: Sequence[Sample],
    detect: Callable[[list[Image]], list[list[Detection]]],
    batch: int = 8,
) -> list[list[Detection]]:
    """Run ``detect`` over the samples' pictures in batches."""
    out: list[list[Detection]] = []
    for start in range(0, len(samples), batch):
        images = []
        for sample in samples[start : start + batch]:
            image = cv2.imread(str(sample.image_path), cv2.IMREAD_COLOR)
            assert image is not None
            images.append(image.astype(np.uint8))
        out.extend(detect(images))
    return out
