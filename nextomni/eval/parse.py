"""Read scenes back out of generated text (the inverse of `text.scene_phrase`), and score
what was read (or detected in a generated image) attribute by attribute."""

from __future__ import annotations

import re

from nextomni.data.text import _POSITION_PHRASE
from nextomni.data.world import BACKGROUNDS, COLORS, POSITION_CELLS, SHAPES, SIZES

_PHRASE_TO_POSITION = {v: k for k, v in _POSITION_PHRASE.items()}
_SHAPE = re.compile(
    r"(?:an?\s+)?(?P<size>{})\s+(?P<color>{})\s+(?P<kind>{})\s+(?P<where>{})".format(
        "|".join(SIZES), "|".join(COLORS), "|".join(SHAPES),
        "|".join(sorted(map(re.escape, _PHRASE_TO_POSITION), key=len, reverse=True))))
_BACKGROUND = re.compile(r"on an? ({}) background".format("|".join(BACKGROUNDS)))


def parse_description(text: str) -> tuple[list[dict], str | None]:
    """Shapes ({size, color, kind, cell}) and background named in a caption, in order."""
    text = text.lower()
    shapes = []
    for m in _SHAPE.finditer(text):
        cell = POSITION_CELLS[_PHRASE_TO_POSITION[m.group("where")]]
        shapes.append({"size": m.group("size"), "color": m.group("color"),
                       "kind": m.group("kind"), "cell": cell})
    bg = _BACKGROUND.search(text)
    return shapes, (bg.group(1) if bg else None)


def caption_attribute_accuracy(scene, text: str) -> tuple[int, int]:
    """(correct, total) attributes: for each true shape its kind, colour and size (matched by
    cell) and the background; extra shapes named count as errors."""
    shapes, bg = parse_description(text)
    return attribute_accuracy(scene, shapes, bg)


def scene_attribute_accuracy(scene, drawn) -> tuple[int, int]:
    """The same score for a generated image, read back as the scene `drawn` (the detector's)."""
    return attribute_accuracy(scene, _shapes(drawn), drawn.background)


def scene_attribute_breakdown(scene, drawn) -> dict[str, tuple[int, int]]:
    """`attribute_breakdown` of a generated image read back as the scene `drawn`."""
    return attribute_breakdown(scene, _shapes(drawn), drawn.background)


def _shapes(drawn) -> list[dict]:
    return [{"cell": s.cell, "kind": s.kind, "color": s.color, "size": s.size}
            for s in drawn.shapes]


def attribute_accuracy(scene, shapes: list[dict], bg: str | None) -> tuple[int, int]:
    """(correct, total): the background, each asked shape's kind, colour and size, and three
    errors for every shape in a cell the scene leaves empty."""
    by = attribute_breakdown(scene, shapes, bg)
    correct = sum(by[a][0] for a in ("background", "kind", "color", "size"))
    extra = sum(scene.at(c) is None for c in {s["cell"] for s in shapes})
    return correct, 1 + 3 * len(scene.shapes) + 3 * extra


def attribute_breakdown(scene, shapes: list[dict], bg: str | None) -> dict[str, tuple[int, int]]:
    """(correct, total) by attribute, to tell what a model gets wrong: the background; of the
    asked shapes, those with something in their cell (`placed`) and those whose kind, colour,
    size is right there; of the cells the scene leaves free, those left empty."""
    by_cell = {s["cell"]: s for s in shapes}
    asked = [(s, by_cell.get(s.cell)) for s in scene.shapes]
    counts = {"background": (int(bg == scene.background), 1),
              "placed": (sum(got is not None for _, got in asked), len(asked))}
    for attr in ("kind", "color", "size"):
        counts[attr] = (sum(got is not None and got[attr] == getattr(s, attr)
                            for s, got in asked), len(asked))
    free = scene.free_cells()
    counts["empty"] = (sum(c not in by_cell for c in free), len(free))
    return counts
