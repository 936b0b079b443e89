"""OmniWorld text: captions, questions and answers, drawing instructions, edits, speech styles.

Every function that varies its wording takes a `numpy.random.Generator`, so a task item is a
pure function of its seed. Canonical forms (no generator) are what evaluation compares to.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nextomni.data.world import (
    BACKGROUNDS, COLORS, MAX_SHAPES, POSITION_NAMES, SHAPES, Scene, Shape, random_shape,
)

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# How a cell is said after a noun: "a red circle in the top left".
_POSITION_PHRASE = {
    "top left": "in the top left", "top": "at the top", "top right": "in the top right",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "in the bottom left", "bottom": "at the bottom",
    "bottom right": "in the bottom right",
}

# Single-cell moves for "move it left".
DIRECTION_STEPS = {"left": (0, -1), "right": (0, 1), "up": (-1, 0), "down": (1, 0)}


def pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def position_phrase(shape: Shape) -> str:
    return _POSITION_PHRASE[shape.position]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def shape_phrase(shape: Shape) -> str:
    """'a large red circle in the top left'."""
    return f"a {shape.noun()} {position_phrase(shape)}"


def join_and(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def region_phrase(scene: Scene, cell: tuple[int, int]) -> str:
    """What one grid cell holds: 'large red circle' or 'empty', and the background."""
    shape = scene.at(cell)
    return f"{shape.noun() if shape else 'empty'} on {scene.background}"


def scene_phrase(scene: Scene) -> str:
    """Everything in the scene, row-major: 'a small blue star at the top and ... on a black
    background'."""
    body = join_and([shape_phrase(s) for s in scene.shapes]) or "nothing"
    return f"{body} on a {scene.background} background"


def canonical_caption(scene: Scene) -> str:
    return scene_phrase(scene) + "."


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption with varied framing; the content is always the full scene."""
    frame = pick(rng, ("{}.", "an image of {}.", "a picture showing {}.", "there is {}.",
                       "this image shows {}."))
    return frame.format(scene_phrase(scene))


# --------------------------------------------------------------------------- referring

def refer(scene: Scene, shape: Shape) -> str:
    """The shortest unambiguous way to point at `shape`: 'it', 'the circle', 'the red shape',
    'the red circle' or 'the shape in the top left'."""
    others = [s for s in scene.shapes if s != shape]
    if not others:
        return "it"
    if all(s.kind != shape.kind for s in others):
        return f"the {shape.kind}"
    if all(s.color != shape.color for s in others):
        return f"the {shape.color} shape"
    if all((s.color, s.kind) != (shape.color, shape.kind) for s in others):
        return f"the {shape.color} {shape.kind}"
    return f"the shape {position_phrase(shape)}"


def _subject(scene: Scene, shape: Shape) -> str:
    """Like `refer`, but never 'it' (questions read better with a noun)."""
    ref = refer(scene, shape)
    return f"the {shape.kind}" if ref == "it" else ref


# --------------------------------------------------------------------------- questions

@dataclass(frozen=True)
class QA:
    question: str
    answer: str
    kind: str  # one of QA_KINDS


QA_KINDS = ("color", "shape", "count", "position", "yesno", "size", "background")


def question(scene: Scene, rng: np.random.Generator, kind: str | None = None) -> QA:
    """One question about `scene` with its exact short answer."""
    kind = kind or pick(rng, QA_KINDS)
    shape = scene.shapes[int(rng.integers(len(scene.shapes)))] if scene.shapes else None
    if shape is None and kind in ("color", "shape", "position", "size"):
        kind = "count"
    if kind == "color":
        q = pick(rng, ("what color is {}?", "which color is {}?", "what is the color of {}?"))
        return QA(q.format(_subject(scene, shape)), shape.color, kind)
    if kind == "shape":
        q = pick(rng, ("what shape is {}?", "which shape is {}?"))
        where = position_phrase(shape)
        return QA(q.format(where), shape.kind, kind)
    if kind == "size":
        q = pick(rng, ("is {} small or large?", "how big is {}?", "what size is {}?"))
        return QA(q.format(_subject(scene, shape)), shape.size, kind)
    if kind == "position":
        q = pick(rng, ("where is {}?", "in which part of the image is {}?"))
        subject = _subject(scene, shape)
        if subject.startswith("the shape "):  # position would give the answer away
            subject = f"the {shape.color} {shape.kind}"
            matches = [s for s in scene.shapes if (s.color, s.kind) == (shape.color, shape.kind)]
            if len(matches) > 1:
                return question(scene, rng, "count")
        return QA(q.format(subject), shape.position, kind)
    if kind == "count":
        return _count_question(scene, rng)
    if kind == "yesno":
        return _yesno_question(scene, rng)
    if kind == "background":
        q = pick(rng, ("what color is the background?", "what is the background color?"))
        return QA(q, scene.background, kind)
    raise ValueError(f"unknown question kind {kind!r}")


def _count_question(scene: Scene, rng: np.random.Generator) -> QA:
    mode = pick(rng, ("all", "color", "kind"))
    if mode == "all":
        q = pick(rng, ("how many shapes are there?", "how many shapes are in the image?"))
        return QA(q, NUMBER_WORDS[len(scene.shapes)], "count")
    if mode == "color":
        color = pick(rng, tuple(COLORS))
        n = sum(s.color == color for s in scene.shapes)
        return QA(f"how many {color} shapes are there?", NUMBER_WORDS[n], "count")
    kind = pick(rng, SHAPES)
    n = sum(s.kind == kind for s in scene.shapes)
    plural = "crosses" if kind == "cross" else kind + "s"
    return QA(f"how many {plural} are there?", NUMBER_WORDS[n], "count")


def _yesno_question(scene: Scene, rng: np.random.Generator) -> QA:
    if scene.shapes and rng.random() < 0.5:
        s = scene.shapes[int(rng.integers(len(scene.shapes)))]
        color, kind = s.color, s.kind
    else:
        color, kind = pick(rng, tuple(COLORS)), pick(rng, SHAPES)
    present = any((s.color, s.kind) == (color, kind) for s in scene.shapes)
    q = pick(rng, ("is there {} {} {}?", "do you see {} {} {}?", "is there {} {} {} in the image?"))
    return QA(q.format(article(color), color, kind), "yes" if present else "no", "yesno")


# --------------------------------------------------------------------------- instructions

def generation_instruction(scene: Scene, rng: np.random.Generator) -> str:
    """A request to draw exactly `scene`."""
    frame = pick(rng, ("draw {}.", "generate an image of {}.", "show me {}.",
                       "create a picture with {}.", "make an image of {}.",
                       "can you draw {}?"))
    return frame.format(scene_phrase(scene))


@dataclass(frozen=True)
class Edit:
    instruction: str
    before: Scene
    after: Scene
    kind: str  # recolor | move | add | remove | resize | background


EDIT_KINDS = ("recolor", "move", "add", "remove", "resize", "background")


def edit(scene: Scene, rng: np.random.Generator, kind: str | None = None) -> Edit:
    """One edit instruction and the scene it produces. Impossible edits (remove the only
    shape, add to a full scene, move into a wall) fall back to another kind."""
    kinds = [kind] if kind else list(EDIT_KINDS)
    order = [kinds[i] for i in rng.permutation(len(kinds))]
    for k in order + list(EDIT_KINDS):
        result = _EDITS[k](scene, rng)
        if result is not None:
            instruction, after = result
            return Edit(instruction, scene, after, k)
    raise ValueError(f"no edit applies to {scene}")  # unreachable: recolor always applies


def _target(scene: Scene, rng: np.random.Generator) -> Shape | None:
    if not scene.shapes:
        return None
    return scene.shapes[int(rng.integers(len(scene.shapes)))]


def _replace_shape(scene: Scene, old: Shape, new: Shape) -> Scene:
    return scene.with_shapes([new if s == old else s for s in scene.shapes])


def _recolor(scene, rng):
    s = _target(scene, rng)
    if s is None:
        return None
    color = pick(rng, tuple(c for c in COLORS if c != s.color))
    frame = pick(rng, ("make {} {}.", "color {} {}.", "change {} to {}.", "turn {} {}."))
    after = _replace_shape(scene, s, Shape(s.row, s.col, s.kind, color, s.size))
    return frame.format(refer(scene, s), color), after


def _move(scene, rng):
    s = _target(scene, rng)
    if s is None:
        return None
    if rng.random() < 0.5:  # relative: "move it left"
        moves = [(d, (s.row + dr, s.col + dc)) for d, (dr, dc) in DIRECTION_STEPS.items()]
        moves = [(d, c) for d, c in moves if c in scene.free_cells()]
        if not moves:
            return None
        direction, cell = moves[int(rng.integers(len(moves)))]
        text = pick(rng, ("move {} {}.", "shift {} {}.", "move {} one step {}."))
        text = text.format(refer(scene, s), direction)
    else:
        free = scene.free_cells()
        if not free:
            return None
        cell = free[int(rng.integers(len(free)))]
        target = POSITION_NAMES[cell]
        text = pick(rng, ("move {} to the {}.", "put {} in the {}.")).format(
            refer(scene, s), target)
    return text, _replace_shape(scene, s, Shape(cell[0], cell[1], s.kind, s.color, s.size))


def _add(scene, rng):
    free = scene.free_cells()
    if len(scene.shapes) >= MAX_SHAPES or not free:
        return None
    new = random_shape(rng, free[int(rng.integers(len(free)))])
    text = pick(rng, ("add {}.", "also draw {}.", "put {} too.")).format(shape_phrase(new))
    return text, scene.with_shapes(scene.shapes + (new,))


def _remove(scene, rng):
    if len(scene.shapes) < 2:
        return None
    s = _target(scene, rng)
    text = pick(rng, ("remove {}.", "delete {}.", "take away {}.")).format(refer(scene, s))
    return text, scene.with_shapes([x for x in scene.shapes if x != s])


def _resize(scene, rng):
    s = _target(scene, rng)
    if s is None:
        return None
    bigger = s.size == "small"
    word = pick(rng, ("bigger", "larger")) if bigger else "smaller"
    new = Shape(s.row, s.col, s.kind, s.color, "large" if bigger else "small")
    return f"make {refer(scene, s)} {word}.", _replace_shape(scene, s, new)


def _background(scene, rng):
    color = pick(rng, tuple(b for b in BACKGROUNDS if b != scene.background))
    text = pick(rng, ("change the background to {}.", "make the background {}."))
    return text.format(color), Scene(scene.shapes, color)


_EDITS = {"recolor": _recolor, "move": _move, "add": _add, "remove": _remove,
          "resize": _resize, "background": _background}


def edit_chain(scene: Scene, rng: np.random.Generator, turns: int) -> list[Edit]:
    """`turns` successive edits, each applied to the previous result."""
    edits = []
    for _ in range(turns):
        e = edit(scene, rng)
        edits.append(e)
        scene = e.after
    return edits


# --------------------------------------------------------------------------- speech styles

def spoken_style(text: str, rng: np.random.Generator) -> str:
    """How a person might say a written prompt out loud."""
    text = text.rstrip(".")
    frame = pick(rng, ("{}", "hey, {}", "um, {}", "okay, {}", "so, {}", "please, {}",
                       "could you tell me, {}"))
    return frame.format(text)


def speech_request(text: str, rng: np.random.Generator) -> str:
    """Ask for `text` to be spoken (text-to-speech task)."""
    frame = pick(rng, ("say: {}", "read this aloud: {}", "speak: {}", "say '{}'",
                       "please say: {}"))
    return frame.format(text.rstrip("."))
