"""Letterbox, decoding and NMS against outputs worked out by hand."""

from __future__ import annotations

import numpy as np

from inspection_models.yolo import batched_nms, decode, letterbox, nms, to_blob


def _output(rows: list[tuple[float, float, float, float, float, float]]) -> np.ndarray:
    """(4 + 2 classes, anchors) from (cx, cy, w, h, score0, score1) rows."""
    return np.array(rows, dtype=np.float32).T


def test_decode_converts_centres_to_corners_and_filters_by_confidence() -> None:
    out = _output(
        [
            (50, 40, 20, 10, 0.9, 0.1),
            (10, 10, 4, 4, 0.05, 0.2),  # below 0.25 in both classes
            (100, 100, 10, 30, 0.1, 0.6),
        ]
    )
    decoded = decode(out, confidence=0.25)
    np.testing.assert_allclose(decoded.boxes, [[40, 35, 60, 45], [95, 85, 105, 115]])
    np.testing.assert_allclose(decoded.scores, [0.9, 0.6], rtol=1e-6)
    assert decoded.classes.tolist() == [0, 1]


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 9]], dtype=np.float32
    )
    scores = np.array([0.8, 0.9, 0.7, 0.3], dtype=np.float32)
    # IoU(0, 1) = 81 / 119 = 0.68; IoU(1, 3) = 72 / 118 = 0.61; box 2 stands alone.
    assert nms(boxes, scores, 0.5).tolist() == [1, 2]
    # At 0.7 box 0 survives box 1, and then suppresses box 3 (IoU 90 / 100).
    assert nms(boxes, scores, 0.7).tolist() == [1, 0, 2]


def test_nms_threshold_is_exclusive_of_lower_overlap() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)  # IoU = 1/3
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [0]
    assert nms(boxes, scores, 0.34).tolist() == [0, 1]


def test_batched_nms_never_suppresses_across_classes() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert batched_nms(boxes, scores, np.array([0, 1]), 0.5).tolist() == [0, 1]
    assert batched_nms(boxes, scores, np.array([1, 1]), 0.5).tolist() == [0]


def test_empty_inputs() -> None:
    empty = np.zeros((0, 4), dtype=np.float32)
    assert nms(empty, np.zeros(0, np.float32), 0.5).size == 0
    assert decode(_output([(1, 1, 1, 1, 0.0, 0.0)]), 0.5).boxes.shape == (0, 4)


def test_letterbox_round_trip_maps_boxes_back() -> None:
    image = np.zeros((300, 600, 3), dtype=np.uint8)
    fitted, mapping = letterbox(image, 320)
    assert fitted.shape == (320, 320, 3)
    assert mapping.scale == 320 / 600
    # The picture's corner (600, 300) lands at (320, 160 + pad) and maps back.
    in_model = np.array([[0, mapping.pad_y, 320, mapping.pad_y + 160]], dtype=np.float32)
    np.testing.assert_allclose(mapping.unmap(in_model), [[0, 0, 600, 300]], atol=1e-3)


def test_letterbox_never_enlarges_a_small_tile() -> None:
    image = np.full((100, 200, 3), 7, dtype=np.uint8)
    fitted, mapping = letterbox(image, 256)
    assert mapping.scale == 1.0
    assert (int(mapping.pad_x), int(mapping.pad_y)) == (28, 78)
    assert (fitted[78 + 50, 28 + 100] == 7).all()
    assert (fitted[10, 10] == 114).all()


def test_to_blob_is_rgb_nchw_in_unit_range() -> None:
    image = np.zeros((2, 3, 3), dtype=np.uint8)
    image[..., 0] = 255  # blue in BGR
    blob = to_blob([image])
    assert blob.shape == (1, 3, 2, 3)
    assert blob.dtype == np.float32
    assert blob[0, 2].max() == 1.0  # blue is the last channel in RGB
    assert blob[0, 0].max() == 0.0
