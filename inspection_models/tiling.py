"""Large photos at native resolution: overlapping tiles, batched, merged back into one.

A drone photo is 12–20 megapixels and a crack a few pixels wide: shrinking the photo to
the model's input would erase the crack, so the photo is cut into ``tile_px`` squares
that overlap by ``overlap_px``. A crack that crosses a tile border is seen in pieces;
pieces of one class that were cut by an inner tile edge and that touch (within
``merge_gap_px``) are joined into one finding, and duplicates seen twice in an overlap
are joined too, and so are boxes of one class that mostly lie inside one another
(``nested_share`` of the smaller box): an inspector wants one finding per crack.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.inspection import TilingConfig
from inspection_models.detection import Detection, Detector, Image, iou

_EDGE_PX = 3.0  # a box this close to an inner tile edge was cut by it


@dataclass(frozen=True, slots=True)
class Tile:
    x0: int
    y0: int
    x1: int
    y1: int


def origins(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``[0, length)``; the last tile is flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def plan(height: int, width: int, config: TilingConfig) -> list[Tile]:
    return [
        Tile(x, y, min(x + config.tile_px, width), min(y + config.tile_px, height))
        for y in origins(height, config.tile_px, config.overlap_px)
        for x in origins(width, config.tile_px, config.overlap_px)
    ]


@dataclass(frozen=True, slots=True)
class _Piece:
    detection: Detection
    tile: int
    cut: bool


def _is_cut(det: Detection, tile: Tile, height: int, width: int) -> bool:
    return (
        (tile.x0 > 0 and det.x1 - tile.x0 <= _EDGE_PX)
        or (tile.y0 > 0 and det.y1 - tile.y0 <= _EDGE_PX)
        or (tile.x1 < width and tile.x1 - det.x2 <= _EDGE_PX)
        or (tile.y1 < height and tile.y1 - det.y2 <= _EDGE_PX)
    )


def _touch(a: Detection, b: Detection, gap: float) -> bool:
    return a.x1 - gap <= b.x2 and b.x1 - gap <= a.x2 and a.y1 - gap <= b.y2 and b.y1 - gap <= a.y2


def _overlap_of_smaller(a: Detection, b: Detection) -> float:
    """Intersection over the smaller box: 1.0 when one box lies inside the other."""
    ix = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    iy = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    smaller = min(a.area, b.area)
    return ix * iy / smaller if smaller > 0 else 0.0


def merge(
    pieces: list[_Piece], config: TilingConfig, duplicate_iou: float = 0.5
) -> list[Detection]:
    """Join pieces of one finding (union-find) into their union box, best confidence."""
    parent = list(range(len(pieces)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, a in enumerate(pieces):
        for j in range(i + 1, len(pieces)):
            b = pieces[j]
            if a.detection.damage != b.detection.damage:
                continue
            nested = _overlap_of_smaller(a.detection, b.detection) >= config.nested_share
            if a.tile == b.tile:
                joined = nested
            else:
                joined = (
                    nested
                    or iou(a.detection.xyxy(), b.detection.xyxy()) >= duplicate_iou
                    or ((a.cut or b.cut) and _touch(a.detection, b.detection, config.merge_gap_px))
                )
            if joined:
                parent[find(i)] = find(j)
    groups: dict[int, list[Detection]] = {}
    for i, piece in enumerate(pieces):
        groups.setdefault(find(i), []).append(piece.detection)
    merged = []
    for members in groups.values():
        best = max(members, key=lambda d: d.confidence)
        merged.append(
            Detection(
                best.damage,
                best.confidence,
                min(d.x1 for d in members),
                min(d.y1 for d in members),
                max(d.x2 for d in members),
                max(d.y2 for d in members),
            )
        )
    merged.sort(key=lambda d: (-d.confidence, d.y1, d.x1))
    return merged


def detect_tiled(
    image: Image, detector: Detector, config: TilingConfig, batch_size: int = 8
) -> tuple[list[Detection], int]:
    """Findings in the whole photo's coordinates, and how many tiles were run."""
    height, width = image.shape[:2]
    tiles = plan(height, width, config)
    if len(tiles) == 1:
        found = detector.detect([image])[0]
        return merge([_Piece(d, 0, cut=False) for d in found], config), 1
    pieces: list[_Piece] = []
    for start in range(0, len(tiles), batch_size):
        chunk = tiles[start : start + batch_size]
        crops = [image[t.y0 : t.y1, t.x0 : t.x1] for t in chunk]
        for offset, (tile, found) in enumerate(zip(chunk, detector.detect(crops), strict=True)):
            for det in found:
                moved = det.shifted(tile.x0, tile.y0)
                pieces.append(_Piece(moved, start + offset, _is_cut(moved, tile, height, width)))
    return merge(pieces, config), len(tiles)
