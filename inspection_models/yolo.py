"""YOLO pre- and post-processing in numpy and OpenCV: letterbox, decoding, NMS.

An Ultralytics detection model exported to ONNX outputs ``(batch, 4 + classes, anchors)``:
per anchor a box as centre x, centre y, width, height in input pixels, then one score per
class (already sigmoid-ed). Non-maximum suppression is ours to do.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from inspection_models.detection import Image

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.intp]

_PAD_VALUE = 114  # Ultralytics' grey, so the model sees the padding it was trained with


@dataclass(frozen=True, slots=True)
class Letterbox:
    """How a picture was fitted into the model's square input: undo with :meth:`unmap`."""

    scale: float
    pad_x: float
    pad_y: float

    def unmap(self, boxes: FloatArray) -> FloatArray:
        out = boxes.copy()
        out[:, [0, 2]] = (out[:, [0, 2]] - self.pad_x) / self.scale
        out[:, [1, 3]] = (out[:, [1, 3]] - self.pad_y) / self.scale
        return out


def letterbox(image: Image, size: int) -> tuple[Image, Letterbox]:
    """Resize keeping the aspect ratio (never up-scaling a smaller tile) and pad to square."""
    height, width = image.shape[:2]
    scale = min(size / height, size / width, 1.0)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = (
        image
        if (new_w, new_h) == (width, height)
        else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
    )
    pad_x, pad_y = (size - new_w) / 2, (size - new_h) / 2
    left, top = int(pad_x), int(pad_y)
    out = cv2.copyMakeBorder(
        resized,
        top,
        size - new_h - top,
        left,
        size - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(_PAD_VALUE, _PAD_VALUE, _PAD_VALUE),
    )
    return out.astype(np.uint8), Letterbox(scale, float(left), float(top))


def to_blob(images: list[Image]) -> FloatArray:
    """BGR uint8 pictures of one size → RGB float32 NCHW in [0, 1]."""
    stacked = np.stack(images)[..., ::-1]
    return np.ascontiguousarray(stacked.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)


@dataclass(frozen=True, slots=True)
class Decoded:
    boxes: FloatArray  # (n, 4) x1, y1, x2, y2 in input pixels
    scores: FloatArray  # (n,)
    classes: IntArray  # (n,)


def decode(output: FloatArray, confidence: float) -> Decoded:
    """One picture's ``(4 + classes, anchors)`` output → boxes above ``confidence``."""
    preds = output.T  # (anchors, 4 + classes)
    class_scores = preds[:, 4:]
    classes = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(classes)), classes]
    keep = scores >= confidence
    centre = preds[keep, :4]
    boxes = np.empty_like(centre)
    boxes[:, 0] = centre[:, 0] - centre[:, 2] / 2
    boxes[:, 1] = centre[:, 1] - centre[:, 3] / 2
    boxes[:, 2] = centre[:, 0] + centre[:, 2] / 2
    boxes[:, 3] = centre[:, 1] + centre[:, 3] / 2
    return Decoded(boxes.astype(np.float32), scores[keep].astype(np.float32), classes[keep])


def nms(boxes: FloatArray, scores: FloatArray, iou_threshold: float) -> IntArray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        ix = np.maximum(0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]))
        iy = np.maximum(0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]))
        inter = ix * iy
        union = areas[best] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
        order = rest[overlap <= iou_threshold]
    return np.array(keep, dtype=np.intp)


def batched_nms(
    boxes: FloatArray, scores: FloatArray, classes: IntArray, iou_threshold: float
) -> IntArray:
    """NMS within each class only: boxes of different classes never suppress each other."""
    if len(boxes) == 0:
        return np.empty(0, dtype=np.intp)
    # Offsetting each class far apart is the standard trick: one pass, no overlap across.
    offset = classes.astype(np.float32)[:, None] * (float(boxes.max()) + 1.0)
    return nms(boxes + offset, scores, iou_threshold)
