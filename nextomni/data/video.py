"""OmniWorld videos: 1-2 shapes gliding together in one direction, optionally with a tone.

The shapes start in grid cells and travel one cell ("slow") or two cells ("fast") over the
clip. The optional tone track tells the same story by ear: its pitch rises while the shapes
move up, falls while they move down, and is a steady low / high note for left / right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextomni.data.speech import SAMPLE_RATE
from nextomni.data.world import (
    BACKGROUNDS, COLORS, DEFAULT_SIZE, GRID, Scene, Shape, blank, cell_center, draw_shape,
    random_shape, shape_radius,
)

DIRECTIONS = ("left", "right", "up", "down")
SPEEDS = ("slow", "fast")
_STEP = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}
FPS = 8
FRAMES = (8, 16)  # inclusive range of clip lengths


@dataclass(frozen=True)
class Motion:
    """A clip: `scene` is the first frame; every shape moves by `cells` cells in `direction`."""

    scene: Scene
    direction: str
    speed: str
    frames: int
    tone: bool = False
    fps: int = FPS

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; expected one of {DIRECTIONS}")
        if self.speed not in SPEEDS:
            raise ValueError(f"unknown speed {self.speed!r}; expected one of {SPEEDS}")
        if not FRAMES[0] <= self.frames <= FRAMES[1]:
            raise ValueError(f"a clip has {FRAMES[0]}-{FRAMES[1]} frames, got {self.frames}")

    @property
    def cells(self) -> int:
        return 1 if self.speed == "slow" else 2

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    @property
    def end_scene(self) -> Scene:
        dr, dc = _STEP[self.direction]
        k = self.cells
        return self.scene.with_shapes(
            [Shape(s.row + dr * k, s.col + dc * k, s.kind, s.color, s.size)
             for s in self.scene.shapes])


def _start_cells(direction: str, cells: int) -> list[tuple[int, int]]:
    """Cells from which a shape can travel `cells` steps in `direction` and stay in view."""
    dr, dc = _STEP[direction]
    out = []
    for r in range(GRID):
        for c in range(GRID):
            if 0 <= r + dr * cells < GRID and 0 <= c + dc * cells < GRID:
                out.append((r, c))
    return out


def random_motion(seed: int | np.random.Generator) -> Motion:
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    direction = DIRECTIONS[int(rng.integers(len(DIRECTIONS)))]
    speed = SPEEDS[int(rng.integers(len(SPEEDS)))]
    cells = _start_cells(direction, 1 if speed == "slow" else 2)
    n = min(int(rng.integers(1, 3)), len(cells))
    chosen = rng.choice(len(cells), size=n, replace=False)
    shapes = [random_shape(rng, cells[int(i)]) for i in chosen]
    background = list(BACKGROUNDS)[int(rng.integers(len(BACKGROUNDS)))]
    frames = int(rng.integers(FRAMES[0], FRAMES[1] + 1))
    tone = bool(rng.random() < 0.5)
    return Motion(Scene(tuple(shapes), background), direction, speed, frames, tone)


def render_video(motion: Motion, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Frames as uint8 [T, H, W, 3]; shapes move linearly from start to end cell."""
    dr, dc = _STEP[motion.direction]
    step = size / GRID * motion.cells
    out = np.empty((motion.frames, size, size, 3), np.uint8)
    for i in range(motion.frames):
        f = i / (motion.frames - 1)
        canvas = blank(motion.scene.background, size)
        for s in motion.scene.shapes:
            cx, cy = cell_center(s.cell, size)
            draw_shape(canvas, s.kind, COLORS[s.color], shape_radius(s.size, size),
                       cx + dc * step * f, cy + dr * step * f)
        out[i] = canvas
    return out


TONE_HZ = {"left": (330.0, 330.0), "right": (660.0, 660.0), "up": (330.0, 660.0),
           "down": (660.0, 330.0)}


def tone_track(motion: Motion) -> np.ndarray | None:
    """The clip's sound track (16 kHz float32), or None for a silent clip."""
    if not motion.tone:
        return None
    n = int(round(motion.duration * SAMPLE_RATE))
    f0, f1 = TONE_HZ[motion.direction]
    freq = np.linspace(f0, f1, n)
    phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
    fade = np.minimum(1.0, np.minimum(np.arange(n), np.arange(n)[::-1]) / (0.01 * SAMPLE_RATE))
    return (0.3 * np.sin(phase) * fade).astype(np.float32)


def motion_question(motion: Motion, rng: np.random.Generator):
    """A question about the clip's motion, with its answer (a `text.QA`)."""
    from nextomni.data.text import QA, pick

    kind = pick(rng, ("direction", "direction", "speed", "what"))
    if kind == "direction":
        q = pick(rng, ("which way is the shape moving?", "where are the shapes going?",
                       "in which direction do the shapes move?", "which way do they move?"))
        return QA(q, motion.direction, "direction")
    if kind == "speed":
        q = pick(rng, ("is it moving slow or fast?", "how fast do the shapes move?"))
        return QA(q, motion.speed, "speed")
    shape = motion.scene.shapes[int(rng.integers(len(motion.scene.shapes)))]
    if sum(s.kind == shape.kind for s in motion.scene.shapes) > 1:
        return QA("which way is the shape moving?", motion.direction, "direction")
    q = pick(rng, ("what color is the moving {}?", "what color is the {}?"))
    return QA(q.format(shape.kind), shape.color, "color")
