"""Procedural pictures of damaged concrete, for training and for tests with known answers.

There are no public photos of spalling, corrosion or efflorescence in ``shared/``, so the
shipped model learns those types from these drawings (the model card says so). Cracks
are drawn here only for tests (a line of known width and length); the model learns
cracks from real drone photos.

Everything is numpy and OpenCV, seeded: the same seed draws the same picture.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from core.damage import MODEL_CLASSES, DamageType

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class DrawnBox:
    damage: DamageType
    x1: float
    y1: float
    x2: float
    y2: float

    def yolo_line(self, width: int, height: int) -> str:
        cls = MODEL_CLASSES.index(self.damage)
        cx = (self.x1 + self.x2) / 2 / width
        cy = (self.y1 + self.y2) / 2 / height
        bw = (self.x2 - self.x1) / width
        bh = (self.y2 - self.y1) / height
        return f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}"


def concrete(rng: np.random.Generator, height: int, width: int) -> Image:
    """Grey, mottled concrete with pores and a little colour cast."""
    base = rng.uniform(105, 175)
    noise = rng.normal(0.0, 1.0, (height // 8 + 2, width // 8 + 2)).astype(np.float32)
    mottle = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(6, 14)
    fine = rng.normal(0.0, rng.uniform(3, 8), (height, width)).astype(np.float32)
    grey = base + mottle + fine
    # Pores: small dark dots that a crack finder must not take for cracks.
    for _ in range(int(height * width / 900)):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        cv2.circle(grey, (x, y), int(rng.integers(1, 3)), float(base - rng.uniform(20, 45)), -1)
    tint = np.array([rng.uniform(-6, 6), rng.uniform(-4, 4), rng.uniform(-6, 8)], np.float32)
    out = np.clip(grey[..., None] + tint, 0, 255)
    return np.asarray(out, dtype=np.uint8)


def _blob(
    rng: np.random.Generator, cx: float, cy: float, rx: float, ry: float
) -> npt.NDArray[np.int32]:
    n = int(rng.integers(9, 16))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = rng.uniform(0.6, 1.0, n)
    xs = cx + np.cos(angles) * rx * radii
    ys = cy + np.sin(angles) * ry * radii
    return np.stack([xs, ys], axis=1).astype(np.int32)


def _box_of(mask: npt.NDArray[np.uint8]) -> tuple[float, float, float, float] | None:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def draw_spalling(
    img: Image, rng: np.random.Generator, cx: float, cy: float, r: float
) -> DrawnBox | None:
    """A rough, shadowed hollow where the cover fell off, often with rusty rebar in it."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [_blob(rng, cx, cy, r, r * rng.uniform(0.5, 1.0))], 255)
    inside = mask > 0
    rough = rng.normal(0, 18, (h, w)).astype(np.float32)
    hollow = img.astype(np.float32)
    hollow[inside] = hollow[inside] * rng.uniform(0.55, 0.75) + rough[inside, None] + 10
    # Shadow on one rim: the hollow is deeper than the surface around it.
    rim = cv2.dilate(mask, np.ones((5, 5), np.uint8)) - mask
    hollow[rim > 0] *= 0.6
    if rng.random() < 0.7:
        ys, _xs = np.nonzero(mask)
        y0, y1 = int(ys.min()), int(ys.max())
        for k in range(int(rng.integers(1, 3))):
            yy = int(y0 + (y1 - y0) * (k + 1) / 3)
            bar = np.zeros_like(mask)
            cv2.line(
                bar, (0, yy), (w - 1, yy + int(rng.integers(-3, 4))), 255, int(rng.integers(3, 6))
            )
            bar &= mask
            colour = np.array([30, 60, rng.uniform(110, 150)], np.float32)
            hollow[bar > 0] = colour + rng.normal(0, 10, (int((bar > 0).sum()), 3))
    img[:] = np.clip(hollow, 0, 255).astype(np.uint8)
    box = _box_of(mask)
    return DrawnBox(DamageType.SPALLING, *box) if box else None


def draw_corrosion(
    img: Image, rng: np.random.Generator, cx: float, cy: float, r: float
) -> DrawnBox | None:
    """An orange-brown rust stain that bleeds downward from its source."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [_blob(rng, cx, cy, r * 0.7, r * 0.5)], 1.0)
    for _ in range(int(rng.integers(2, 6))):
        x = int(cx + rng.uniform(-0.6, 0.6) * r)
        length = int(r * rng.uniform(0.8, 2.2))
        cv2.line(
            mask,
            (x, int(cy)),
            (x + int(rng.integers(-4, 5)), int(cy) + length),
            0.8,
            int(rng.integers(2, 7)),
        )
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), rng.uniform(1.5, 4.0)), np.float32)
    rust = np.array([rng.uniform(20, 50), rng.uniform(60, 95), rng.uniform(120, 170)], np.float32)
    alpha = np.clip(mask * rng.uniform(0.6, 0.95), 0, 1)[..., None]
    out = img.astype(np.float32) * (1 - alpha) + rust * alpha
    img[:] = np.clip(out, 0, 255).astype(np.uint8)
    box = _box_of((mask > 0.15).astype(np.uint8))
    return DrawnBox(DamageType.CORROSION, *box) if box else None


def draw_efflorescence(
    img: Image, rng: np.random.Generator, cx: float, cy: float, r: float
) -> DrawnBox | None:
    """White, chalky lime deposit with drips, usually along a joint or a crack."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.fillPoly(mask, [_blob(rng, cx, cy, r, r * 0.35)], 1.0)
    for _ in range(int(rng.integers(3, 8))):
        x = int(cx + rng.uniform(-0.9, 0.9) * r)
        length = int(r * rng.uniform(0.5, 1.8))
        cv2.line(
            mask,
            (x, int(cy)),
            (x + int(rng.integers(-2, 3)), int(cy) + length),
            0.9,
            int(rng.integers(2, 6)),
        )
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), rng.uniform(1.0, 3.0)), np.float32)
    speckle = rng.uniform(0.7, 1.0, (h, w)).astype(np.float32)
    alpha = np.clip(mask * speckle * rng.uniform(0.7, 0.95), 0, 1)[..., None]
    white = np.float32(rng.uniform(215, 245))
    out = img.astype(np.float32) * (1 - alpha) + white * alpha
    img[:] = np.clip(out, 0, 255).astype(np.uint8)
    box = _box_of((mask > 0.15).astype(np.uint8))
    return DrawnBox(DamageType.EFFLORESCENCE, *box) if box else None


def draw_crack(
    img: Image,
    points: list[tuple[int, int]],
    width_px: int,
    darkness: float = 0.35,
) -> DrawnBox:
    """A dark polyline exactly ``width_px`` wide across its course (the known answer).

    OpenCV's ``thickness`` is not the width a ruler would read (thickness 3 draws five
    pixels), so the crack is every pixel whose centre lies within ``width_px / 2`` of
    the polyline; an even width puts the line between pixel rows.
    """
    height, width = img.shape[:2]
    shift = 0.5 if width_px % 2 == 0 else 0.0
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.full((height, width), np.inf, np.float32)
    for (ax, ay), (bx, by) in itertools.pairwise(points):
        ax_, ay_, bx_, by_ = ax + shift, ay + shift, bx + shift, by + shift
        dx, dy = bx_ - ax_, by_ - ay_
        t = ((xs - ax_) * dx + (ys - ay_) * dy) / max(dx * dx + dy * dy, 1e-9)
        t = np.clip(t, 0, 1)
        d = np.hypot(xs - (ax_ + t * dx), ys - (ay_ + t * dy))
        np.minimum(distance, d, out=distance)
    inside = distance < width_px / 2
    img[inside] = (img[inside].astype(np.float32) * darkness).astype(np.uint8)
    box = _box_of(inside.astype(np.uint8))
    assert box is not None
    return DrawnBox(DamageType.CRACK, *box)


_DRAWERS = {
    DamageType.SPALLING: draw_spalling,
    DamageType.CORROSION: draw_corrosion,
    DamageType.EFFLORESCENCE: draw_efflorescence,
}


def sample(
    rng: np.random.Generator,
    size: int = 256,
    max_items: int = 3,
    background: Image | None = None,
    avoid: tuple[tuple[float, float, float, float], ...] = (),
) -> tuple[Image, list[DrawnBox]]:
    """A concrete picture with 0 to ``max_items`` non-crack damages and their boxes.

    ``background`` (a real photo) replaces the procedural concrete, and damage is then
    placed clear of the ``avoid`` boxes (its labelled cracks), so the labels stay true.
    Without a background, about one picture in five is clean concrete: negatives that
    teach the model not to flag ordinary wear.
    """
    img = concrete(rng, size, size) if background is None else background.copy()
    height, width = img.shape[:2]
    boxes: list[DrawnBox] = []
    clean_share = 0.2 if background is None else 0.0
    count = 0 if rng.random() < clean_share else int(rng.integers(1, max_items + 1))
    kinds = list(_DRAWERS)
    for _ in range(count):
        kind = kinds[int(rng.integers(0, len(kinds)))]
        for _attempt in range(12):
            r = rng.uniform(min(height, width) * 0.08, min(height, width) * 0.2)
            cx = rng.uniform(r, width - r)
            cy = rng.uniform(r, height - r * 1.5)
            reach = (cx - r, cy - r, cx + r, cy + 2.3 * r)
            if not any(_overlaps(reach, other) for other in avoid) and not any(
                _overlaps(reach, (b.x1, b.y1, b.x2, b.y2)) for b in boxes
            ):
                break
        else:
            continue
        drawn = _DRAWERS[kind](img, rng, cx, cy, r)
        if drawn is not None and (drawn.x2 - drawn.x1) > 4 and (drawn.y2 - drawn.y1) > 4:
            boxes.append(drawn)
    return img, boxes


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def clean(rng: np.random.Generator, size: int = 256) -> Image:
    """Undamaged concrete (a negative for image-level evaluation)."""
    return concrete(rng, size, size)


__all__ = [
    "DrawnBox",
    "Image",
    "clean",
    "concrete",
    "draw_corrosion",
    "draw_crack",
    "draw_efflorescence",
    "draw_spalling",
    "sample",
]
