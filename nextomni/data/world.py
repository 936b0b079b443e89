"""OmniWorld scenes: 1-3 coloured shapes on a 3x3 grid over a plain background.

A `Scene` is the ground truth every other modality is derived from (captions, questions,
speech, videos), and `render` draws it without anti-aliasing so that the scene detector can
recover it exactly. Everything is a pure function of an integer seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import cv2
import numpy as np

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 230),
    "yellow": (240, 220, 40),
    "purple": (140, 60, 200),
    "orange": (245, 140, 30),
    "cyan": (40, 210, 220),
    "pink": (245, 130, 200),
}

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "gray": (120, 120, 120),
    "white": (250, 250, 250),
    "navy": (25, 30, 80),
}

SIZES: tuple[str, ...] = ("small", "large")
# Half-extent of a shape as a fraction of a grid cell: a large shape stays inside its cell.
SIZE_SCALE: dict[str, float] = {"small": 0.27, "large": 0.43}

GRID = 3
MAX_SHAPES = 3
DEFAULT_SIZE = 64

# (row, col) -> name used in text. Row 0 is the top, col 0 the left.
POSITION_NAMES: dict[tuple[int, int], str] = {
    (0, 0): "top left", (0, 1): "top", (0, 2): "top right",
    (1, 0): "left", (1, 1): "center", (1, 2): "right",
    (2, 0): "bottom left", (2, 1): "bottom", (2, 2): "bottom right",
}
POSITION_CELLS: dict[str, tuple[int, int]] = {v: k for k, v in POSITION_NAMES.items()}


@dataclass(frozen=True, order=True)
class Shape:
    """One shape; `row`/`col` index the 3x3 grid (0 = top / left)."""

    row: int
    col: int
    kind: str
    color: str
    size: str

    def __post_init__(self) -> None:
        if self.kind not in SHAPES:
            raise ValueError(f"unknown shape kind {self.kind!r}; expected one of {SHAPES}")
        if self.color not in COLORS:
            raise ValueError(f"unknown colour {self.color!r}; expected one of {tuple(COLORS)}")
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}; expected one of {SIZES}")
        if not (0 <= self.row < GRID and 0 <= self.col < GRID):
            raise ValueError(f"cell ({self.row}, {self.col}) is outside the {GRID}x{GRID} grid")

    @property
    def cell(self) -> tuple[int, int]:
        return (self.row, self.col)

    @property
    def position(self) -> str:
        return POSITION_NAMES[self.cell]

    def noun(self) -> str:
        """'large red circle'."""
        return f"{self.size} {self.color} {self.kind}"


@dataclass(frozen=True)
class Scene:
    """A background and 0-3 shapes in distinct cells, kept in row-major order.

    The order is canonical, so two scenes with the same content compare equal however
    they were built.
    """

    shapes: tuple[Shape, ...] = field(default_factory=tuple)
    background: str = "black"

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(
                f"unknown background {self.background!r}; expected one of {tuple(BACKGROUNDS)}"
            )
        shapes = tuple(sorted(self.shapes))
        cells = [s.cell for s in shapes]
        if len(set(cells)) != len(cells):
            raise ValueError(f"two shapes share a cell: {cells}")
        object.__setattr__(self, "shapes", shapes)

    def at(self, cell: tuple[int, int]) -> Shape | None:
        return next((s for s in self.shapes if s.cell == cell), None)

    def free_cells(self) -> list[tuple[int, int]]:
        taken = {s.cell for s in self.shapes}
        return [(r, c) for r in range(GRID) for c in range(GRID) if (r, c) not in taken]

    def with_shapes(self, shapes) -> "Scene":
        return replace(self, shapes=tuple(shapes))


def random_shape(rng: np.random.Generator, cell: tuple[int, int]) -> Shape:
    return Shape(
        row=int(cell[0]),
        col=int(cell[1]),
        kind=SHAPES[rng.integers(len(SHAPES))],
        color=list(COLORS)[rng.integers(len(COLORS))],
        size=SIZES[rng.integers(len(SIZES))],
    )


def random_scene(seed: int | np.random.Generator) -> Scene:
    """A scene drawn uniformly: 1-3 shapes, distinct cells, any kind/colour/size/background."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = int(rng.integers(1, MAX_SHAPES + 1))
    cells = rng.choice(GRID * GRID, size=n, replace=False)
    shapes = [random_shape(rng, (int(i) // GRID, int(i) % GRID)) for i in cells]
    background = list(BACKGROUNDS)[rng.integers(len(BACKGROUNDS))]
    return Scene(tuple(shapes), background)


# --------------------------------------------------------------------------- drawing

def _unit_polygon(kind: str) -> np.ndarray:
    """Outline of a shape of half-extent 1 centred at the origin, y pointing down."""
    if kind == "circle":
        a = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        return np.stack([np.cos(a), np.sin(a)], 1)
    if kind == "square":
        s = 0.85
        return np.array([[-s, -s], [s, -s], [s, s], [-s, s]])
    if kind == "triangle":
        return np.array([[0.0, -1.0], [0.95, 0.75], [-0.95, 0.75]])
    if kind == "diamond":
        return np.array([[0.0, -1.0], [0.72, 0.0], [0.0, 1.0], [-0.72, 0.0]])
    if kind == "star":
        a = -np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if kind == "cross":
        w = 0.32
        return np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1],
                         [-w, w], [-1, w], [-1, -w], [-w, -w]])
    raise ValueError(f"unknown shape kind {kind!r}")


_SHIFT = 4  # cv2.fillPoly sub-pixel bits


def draw_shape(canvas: np.ndarray, kind: str, color: tuple[int, int, int], radius: float,
               cx: float, cy: float) -> None:
    """Fill one shape into `canvas` (H x W x 3 uint8) in place, hard edges."""
    pts = _unit_polygon(kind) * radius + np.array([cx, cy]) - 0.5
    pts = np.round(pts * (1 << _SHIFT)).astype(np.int32)
    cv2.fillPoly(canvas, [pts], color, lineType=cv2.LINE_8, shift=_SHIFT)


def cell_center(cell: tuple[int, int], size: int) -> tuple[float, float]:
    step = size / GRID
    return ((cell[1] + 0.5) * step, (cell[0] + 0.5) * step)


def shape_radius(size_name: str, size: int) -> float:
    return SIZE_SCALE[size_name] * size / GRID


def blank(background: str, size: int = DEFAULT_SIZE) -> np.ndarray:
    canvas = np.empty((size, size, 3), np.uint8)
    canvas[:] = BACKGROUNDS[background]
    return canvas


def render(scene: Scene, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Draw `scene` as a size x size x 3 uint8 RGB array."""
    if size < 24:
        raise ValueError(f"image size {size} is too small to draw shapes (need >= 24)")
    canvas = blank(scene.background, size)
    for s in scene.shapes:
        cx, cy = cell_center(s.cell, size)
        draw_shape(canvas, s.kind, COLORS[s.color], shape_radius(s.size, size), cx, cy)
    return canvas
