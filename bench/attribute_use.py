"""Which words of a text -> image prompt an image reply reads: the DFM loss of held-out
replies under their own prompt and under the same prompt with one attribute's words
changed, the first shape's colour, kind, size or place, or the background (a place can take
more words, "at the top" -> "in the top left", and reorder the shapes).

    python -m bench.attribute_use [--checkpoint checkpoints/nano] [--n 48] [--t 0.05,0.5]
        [--json FILE]

A changed prompt asks for a picture the reply is not; if the model reads that word, the
reply costs more under it (changed / own > 1), and if it does not, the two losses are the
same. `bench.condition_use` asks whether the prompt is read at all; this asks which of its
words. The loss is each reply's mean over all its variables (one shape is a small part of a
picture, so the ratios are smaller than with another example's whole prompt), at one fixed
t for every block and the same generator seed under every prompt.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from bench import report

CHANGES = ("color", "kind", "size", "place", "background")


def changed_scene(scene, what: str):
    """`scene` with one attribute changed to the next value of its list (the first shape's,
    except the background); None where a scene has no such attribute to change."""
    from nextomni.data.world import BACKGROUNDS, COLORS, SHAPES, SIZES, Scene

    def following(values, value):
        values = list(values)
        return values[(values.index(value) + 1) % len(values)]

    if what == "background":
        return replace(scene, background=following(BACKGROUNDS, scene.background))
    if not scene.shapes:
        return None
    first, rest = scene.shapes[0], scene.shapes[1:]
    if what == "place":
        free = scene.free_cells()
        if not free:
            return None
        first = replace(first, row=free[0][0], col=free[0][1])
    else:
        values = {"color": COLORS, "kind": SHAPES, "size": SIZES}[what]
        first = replace(first, **{what: following(values, getattr(first, what))})
    return Scene((first, *rest), scene.background)


def plain_prompt(example, scene=None):
    """The text -> image example with its reply kept and the plainest prompt, "draw <the
    scene>.", for `scene` (default: the one drawn): the examples' own wordings vary (synonyms,
    capitals), and a one-word change is only one word against a fixed wording."""
    from nextomni.chat import Turn, text
    from nextomni.data.tasks import Example
    from nextomni.data.text import scene_phrase

    prompt = f"draw {scene_phrase(scene or example.answer)}."
    return Example(example.task, [Turn("user", [text(prompt)]), example.turns[-1]],
                   example.answer)


def with_changed_prompt(example, what: str):
    """`plain_prompt` describing the changed scene (None where the change does not apply)."""
    other = changed_scene(example.answer, what)
    return None if other is None else plain_prompt(example, other)


def main(argv=None) -> dict:
    from bench.condition_use import load_dfm, reply_loss
    from nextomni.data.splits import heldout
    from nextomni.data.tasks import make_example

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--n", type=int, default=48, help="held-out text -> image examples")
    p.add_argument("--t", default="0.05,0.5", help="noise levels (0: all noise, 1: clean)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    model, fmt = load_dfm(p, a.checkpoint)
    # scenes with a shape and a free cell, so that every change applies to every example
    examples = [plain_prompt(e) for e in (make_example("t2i", s) for s in heldout(4 * a.n))
                if e.answer.shapes and e.answer.free_cells()][: a.n]

    result = {}
    for t in (float(x) for x in a.t.split(",")):
        own = reply_loss(model, fmt, examples, t)
        row = {"own": round(own, 4)}
        for what in CHANGES:
            changed = reply_loss(model, fmt, [with_changed_prompt(e, what) for e in examples], t)
            row[what] = round(changed, 4)
            row[f"{what}/own"] = round(changed / own, 4)
        result[f"t={t:g}"] = row
    result["n"] = len(examples)
    return report(result, a.json)


if __name__ == "__main__":
    main()
