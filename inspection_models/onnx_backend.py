"""The ``onnx`` backend: a YOLO-family model run by onnxruntime on the CPU.

Torch and Ultralytics never load here. Pictures are letterboxed to a side that is a
multiple of 32 (the model's own when it has a fixed input, otherwise the smallest that
holds the picture, up to ``input_size``), run in batches, decoded and suppressed in numpy.
"""

from __future__ import annotations

import ast
import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort  # type: ignore[import-untyped]

from core.damage import MODEL_CLASSES, DamageType
from core.errors import ConfigError
from core.inspection import OnnxDetectorConfig
from inspection_models.detection import Detection, Image
from inspection_models.yolo import FloatArray, Letterbox, batched_nms, decode, letterbox, to_blob

_log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = WEIGHTS_DIR / "mamori-damage-yolov8n.onnx"


def _grey(image: Image) -> Image:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.merge([grey, grey, grey]), dtype=np.uint8)


def _file_version(path: Path) -> str:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest[:12]


class OnnxDetector:
    def __init__(self, config: OnnxDetectorConfig) -> None:
        self._config = config
        path = config.model_path or DEFAULT_MODEL
        if not path.is_file():
            raise ConfigError(f"ONNX model {path} does not exist")
        options = ort.SessionOptions()
        options.intra_op_num_threads = config.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ConfigError(f"cannot load ONNX model {path}: {exc}") from exc
        model_input = self._session.get_inputs()[0]
        self._input_name: str = model_input.name
        side = model_input.shape[2] if len(model_input.shape) == 4 else None
        self._fixed_side: int | None = side if isinstance(side, int) else None
        self._classes = self._read_classes()
        self._name = path.stem
        self._version = _file_version(path)
        _log.info(
            "ONNX model %s (%s) loaded: %s classes, input %s, %s threads",
            self._name,
            self._version,
            len(self._classes),
            self._fixed_side or "dynamic",
            config.threads,
        )

    def _read_classes(self) -> tuple[DamageType, ...]:
        meta = self._session.get_modelmeta().custom_metadata_map
        names = meta.get("names")
        if not names:
            return MODEL_CLASSES
        # Ultralytics writes a Python dict literal: {0: 'crack', 1: 'spalling'}
        try:
            parsed = ast.literal_eval(names)
            return tuple(DamageType(parsed[i]) for i in range(len(parsed)))
        except (ValueError, KeyError, TypeError, SyntaxError) as exc:
            raise ConfigError(f"model class names {names!r} are not Mamori damage types") from exc

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> str:
        return self._version

    @property
    def classes(self) -> tuple[DamageType, ...]:
        return self._classes

    def side_for(self, height: int, width: int) -> int:
        if self._fixed_side is not None:
            return self._fixed_side
        longest = max(height, width)
        return min(self._config.input_size, max(32, -(-longest // 32) * 32))

    def raw(self, blob: FloatArray) -> FloatArray:
        """The model's output for an NCHW float32 batch (for benchmarks and tests)."""
        outputs = self._session.run(None, {self._input_name: blob})
        return np.asarray(outputs[0], dtype=np.float32)

    def detect(self, images: Sequence[Image]) -> list[list[Detection]]:
        """Colour pass for the colour classes, greyscale pass for ``grey_classes``."""
        grey = set(self._config.grey_classes) & set(self._classes)
        if not grey:
            return self._detect_pass(images)
        grey_images = [_grey(image) for image in images]
        if grey == set(self._classes):
            return self._detect_pass(grey_images)
        colour = self._detect_pass(images)
        shades = self._detect_pass(grey_images)
        return [
            [d for d in c if d.damage not in grey] + [d for d in g if d.damage in grey]
            for c, g in zip(colour, shades, strict=True)
        ]

    def _detect_pass(self, images: Sequence[Image]) -> list[list[Detection]]:
        results: list[list[Detection]] = [[] for _ in images]
        # Group by input side so that each batch is one tensor.
        groups: dict[int, list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault(self.side_for(*image.shape[:2]), []).append(index)
        step = self._config.batch_size
        for side, indices in groups.items():
            for start in range(0, len(indices), step):
                chunk = indices[start : start + step]
                fitted = [letterbox(images[i], side) for i in chunk]
                output = self.raw(to_blob([f[0] for f in fitted]))
                for row, index in enumerate(chunk):
                    results[index] = self._postprocess(output[row], fitted[row][1], images[index])
        return results

    def _postprocess(self, output: FloatArray, box_map: Letterbox, image: Image) -> list[Detection]:
        cfg = self._config
        decoded = decode(output, min([cfg.confidence, *cfg.class_confidence.values()]))
        keep = batched_nms(decoded.boxes, decoded.scores, decoded.classes, self._config.iou)
        keep = keep[: self._config.max_detections]
        boxes = box_map.unmap(decoded.boxes[keep])
        height, width = image.shape[:2]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, width)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, height)
        found = []
        for box, score, cls in zip(boxes, decoded.scores[keep], decoded.classes[keep], strict=True):
            if int(cls) >= len(self._classes):
                continue
            damage = self._classes[int(cls)]
            if float(score) < cfg.threshold(damage):
                continue
            found.append(Detection(damage, float(score), *(float(v) for v in box)))
        return found
