"""The reply's layout, as training taught it (`sequence.response_blocks`), for both decoders.

Position 0 of a reply says what the reply is: `<|image_start|>`, `<|audio_start|>`, or the
first word of a text reply. It opens the reply's opening block (`OmniConfig.opening_block`
positions: that token alone, or the start of the text after it). Left to the model (layout
None) the block is sampled like any other. A reply of a chosen kind fixes it instead: an
image or speech reply has its opening marker written, a text reply has its first word
sampled among words only (no marker, no special token), so the model answers in text even
where it would have drawn or spoken.
"""

from __future__ import annotations

from typing import Callable, Generator as Gen

import torch
from torch import Tensor

from nextomni.model.decoding import LAYOUTS, StepEvent
from nextomni.tokenizers.special import AUDIO_START, IMAGE_START, PAD, SPECIAL_TOKENS

OPENING = {"image": IMAGE_START, "audio": AUDIO_START}  # the marker that opens each segment
NOT_A_WORD = tuple(range(len(SPECIAL_TOKENS)))  # never the first token of a text reply

# samples the opening block, never choosing the `banned` ids at its first position; yields its
# steps and returns its ids
Opening = Callable[[tuple[int, ...]], Gen[StepEvent, None, list[int]]]


def check_layout(layout: str | None) -> None:
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS} or None")


def layout_of(first: int) -> str:
    """The layout a reply takes whose position 0 holds `first`."""
    return "image" if first == IMAGE_START else "audio" if first == AUDIO_START else "text"


def decide_layout(layout: str | None, opening: Opening, size: int = 1
                  ) -> Gen[StepEvent, None, tuple[str, list[int]]]:
    """(layout, the ids of the opening block, `size` positions): the model's choice when
    `layout` is None, else the chosen layout with its fixed opening (see the module
    docstring). An image or speech reply's opening is always the marker and <pad>, as
    training wrote it, whatever else the model put beside the marker. The decoder writes
    the block as the reply's first."""
    check_layout(layout)
    if layout in OPENING:
        return layout, _media_opening(layout, size)
    ids = yield from opening(NOT_A_WORD if layout == "text" else ())
    chosen = layout or layout_of(ids[0])
    if chosen in OPENING:
        ids = _media_opening(chosen, size)
    return chosen, ids


def _media_opening(layout: str, size: int) -> list[int]:
    """An image or speech reply's opening block: its marker, then <pad>."""
    return [OPENING[layout]] + [PAD] * (size - 1)


def trim_silence(codes: Tensor, silence: tuple[int, ...]) -> Tensor:
    """Drop trailing positions equal to the silence code."""
    quiet = (codes == torch.tensor(silence)).all(-1)
    keep = len(codes)
    while keep > 1 and bool(quiet[keep - 1]):
        keep -= 1
    return codes[:keep]
