"""The "Try the world" buttons: a fresh OmniWorld input put into the message box.

The sample maker is handed in by app.py (`nextomni.data.samples.WorldSamples`), so the page
itself imports nothing of OmniWorld (and a page built without one has no buttons). It is
called as `samples(kind, seed)` and returns an object with `text`, `files`, `seed` and `about`.
"""

from __future__ import annotations

import logging

import gradio as gr

log = logging.getLogger("nextomni.ui")

# (kind the sample maker knows, button label)
BUTTONS = (("scene", "A scene and a question"), ("speech", "A spoken question"),
           ("clip", "A moving-shapes clip"))


class TryWorld:
    def __init__(self, samples):
        self.samples = samples
        self.first_seed = int(getattr(samples, "first_seed", 0))

    def make(self, kind: str, seed) -> tuple:
        """(message box value, what the sample holds, the next seed). The seed box then
        holds the next seed, so each click is a fresh sample and typing a seed back
        reproduces one."""
        try:
            seed = int(seed) if seed is not None and float(seed).is_integer() else seed
            sample = self.samples(kind, seed)
        except (ValueError, TypeError, RuntimeError, OSError) as e:  # bad seed, no espeak-ng
            log.warning("world sample %s/%s failed: %s", kind, seed, e)
            return gr.update(), f"⚠ {e}", gr.update()
        note = f"OmniWorld seed **{sample.seed}** · {sample.about}"
        return {"text": sample.text, "files": list(sample.files)}, note, sample.seed + 1

    def handler(self, kind: str):
        """The click handler of the button for `kind` (inputs: the seed box)."""
        def fill_box(seed):
            return self.make(kind, seed)

        fill_box.__name__ = f"try_{kind}"
        return fill_box
