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
    shapes = [{"cell": s.cell, "kind": s.kind, "color": s.color, "size": s.size}
              for s in drawn.shapes]
    return attribute_accuracy(scene, shapes, drawn.background)


def attribute_accuracy(scene, shapes: list[dict], bg: str | None) -> tuple[int, int]:
    by_cell = {s["cell"]: s for s in shapes}
    correct, total = int(bg == scene.background), 1
    for s in scene.shapes:
        got = by_cell.get(s.cell)
        for attr in ("kind", "color", "size"):
            total += 1
            correct += int(got is not None and got[attr] == getattr(s, attr))
    extra = len([c for c in by_cell if scene.at(c) is None])
    return correct, total + 3 * extra
