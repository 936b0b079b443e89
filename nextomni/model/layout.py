"""The reply's layout, as training taught it (`sequence.response_blocks`), for both decoders.

Position 0 of a reply says what the reply is: `<|image_start|>`, `<|audio_start|>`, or the
first word of a text reply. Left to the model (layout None) it is sampled like any token. A
reply of a chosen kind fixes it instead: an image or speech reply has its opening marker
written, a text reply has its first word sampled among words only (no marker, no special
token), so the model answers in text even where it would have drawn or spoken.
"""

from __future__ import annotations

from typing import Callable, Generator as Gen

import torch
from torch import Tensor

from nextomni.model.decoding import LAYOUTS, StepEvent
from nextomni.tokenizers.special import AUDIO_START, IMAGE_START, SPECIAL_TOKENS

OPENING = {"image": IMAGE_START, "audio": AUDIO_START}  # the marker that opens each segment
NOT_A_WORD = tuple(range(len(SPECIAL_TOKENS)))  # never the first token of a text reply

# samples the layout position, never choosing the `banned` ids; yields its steps
FirstToken = Callable[[tuple[int, ...]], Gen[StepEvent, None, int]]


def check_layout(layout: str | None) -> None:
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS} or None")


def layout_of(first: int) -> str:
    """The layout a reply takes whose position 0 holds `first`."""
    return "image" if first == IMAGE_START else "audio" if first == AUDIO_START else "text"


def decide_layout(layout: str | None, first_token: FirstToken
                  ) -> Gen[StepEvent, None, tuple[str, int]]:
    """(layout, token at position 0): the model's choice when `layout` is None, else the
    chosen layout with its fixed opening (see the module docstring). The decoder writes
    that token as the reply's first position."""
    check_layout(layout)
    if layout in OPENING:
        return layout, OPENING[layout]
    first = yield from first_token(NOT_A_WORD if layout == "text" else ())
    return layout or layout_of(first), first


def trim_silence(codes: Tensor, silence: tuple[int, ...]) -> Tensor:
    """Drop trailing positions equal to the silence code."""
    quiet = (codes == torch.tensor(silence)).all(-1)
    keep = len(codes)
    while keep > 1 and bool(quiet[keep - 1]):
        keep -= 1
    return codes[:keep]
