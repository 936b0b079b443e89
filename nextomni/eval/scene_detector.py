"""Recover an OmniWorld `Scene` from a picture: the judge for every generated image.

Rules, no learning: the background is the median colour; a pixel is foreground when its colour
is far from it; each of the 9 grid cells holding enough foreground holds one shape. The shape's
colour is the nearest palette colour to the mean of its inner pixels, and its kind and size are
those of the drawn template (every kind x size at that cell) with the highest intersection over
union with the foreground mask. Exact on clean renders; blur, noise and the colour drift of a
decoder move the mask and the mean a little, not the argmax.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from nextomni.data.world import (
    BACKGROUNDS, COLORS, GRID, SHAPES, SIZES, Scene, Shape, cell_center, draw_shape,
    shape_radius,
)

FOREGROUND_DISTANCE = 60.0  # RGB distance from the background that counts as a shape
MIN_AREA_FRACTION = 0.04  # of a cell; the smallest drawn shape covers ~0.12

_BG_NAMES = list(BACKGROUNDS)
_BG_RGB = np.array([BACKGROUNDS[n] for n in _BG_NAMES], np.float32)
_FG_NAMES = list(COLORS)
_FG_RGB = np.array([COLORS[n] for n in _FG_NAMES], np.float32)


def _cell_box(cell: tuple[int, int], size: int) -> tuple[slice, slice]:
    step = size / GRID
    r0, r1 = int(round(cell[0] * step)), int(round((cell[0] + 1) * step))
    c0, c1 = int(round(cell[1] * step)), int(round((cell[1] + 1) * step))
    return slice(r0, r1), slice(c0, c1)


@lru_cache(maxsize=8)
def _templates(size: int) -> dict[tuple[int, int], list[tuple[str, str, np.ndarray]]]:
    """For each cell: (kind, size, boolean mask of the cell window) of every drawable shape."""
    out = {}
    for r in range(GRID):
        for c in range(GRID):
            rows, cols = _cell_box((r, c), size)
            items = []
            for kind in SHAPES:
                for sz in SIZES:
                    canvas = np.zeros((size, size, 3), np.uint8)
                    cx, cy = cell_center((r, c), size)
                    draw_shape(canvas, kind, (255, 255, 255), shape_radius(sz, size), cx, cy)
                    items.append((kind, sz, canvas[rows, cols, 0] > 0))
            out[(r, c)] = items
    return out


def _as_array(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"expected a square H x W x 3 image, got shape {arr.shape}")
    if arr.shape[0] < 24:
        raise ValueError(f"image of {arr.shape[0]} pixels is too small to hold shapes")
    if arr.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {arr.dtype}")
    return arr


def _nearest(rgb: np.ndarray, palette: np.ndarray) -> int:
    return int(np.argmin(((palette - rgb) ** 2).sum(1)))


def detect(image) -> Scene:
    """The scene drawn in `image` (H x W x 3 uint8 array or PIL image, H == W)."""
    img = _as_array(image)
    size = img.shape[0]
    pixels = img.astype(np.float32)
    bg = np.median(pixels.reshape(-1, 3), axis=0)
    background = _BG_NAMES[_nearest(bg, _BG_RGB)]
    fg = np.sqrt(((pixels - bg) ** 2).sum(-1)) > FOREGROUND_DISTANCE
    inner = cv2.erode(fg.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    min_area = MIN_AREA_FRACTION * (size / GRID) ** 2
    shapes = []
    for cell, templates in _templates(size).items():
        rows, cols = _cell_box(cell, size)
        if fg[rows, cols].sum() < min_area:
            continue
        window = pixels[rows, cols]
        core = inner[rows, cols]
        ink = window[core if core.sum() >= 4 else fg[rows, cols]].mean(0)
        color = _FG_NAMES[_nearest(ink, _FG_RGB)]
        # Fraction of the way from background to ink colour: a blurred edge crosses 0.5
        # where the sharp edge was, whatever the contrast.
        ramp = ink - bg
        level = ((window - bg) @ ramp) / max(float(ramp @ ramp), 1e-6)
        kind, sz = _best_template(np.clip(level, 0.0, 1.0), templates)
        shapes.append(Shape(cell[0], cell[1], kind, color, sz))
    return Scene(tuple(shapes), background)


def _best_template(level: np.ndarray, templates) -> tuple[str, str]:
    """The template with the highest soft intersection over union with `level` in [0, 1]."""
    best, best_iou = None, -1.0
    for kind, sz, t in templates:
        iou = np.minimum(level, t).sum() / np.maximum(level, t).sum()
        if iou > best_iou:
            best, best_iou = (kind, sz), iou
    return best
