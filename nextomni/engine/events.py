"""What `OmniEngine.chat` yields, in order: `Progress` per denoising step, then the finished
segments of the reply, then one `Finished`. Plain data (numpy arrays, no tensors) so that the
UI and the session store can use them without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the record comes with the event; the UI needs no torch to read it
    from nextomni.model.decoding import DecodeStats


@dataclass
class AudioChunk:
    """Speech that has become final while the reply goes on: the next piece to play, carried
    by the `Progress` of the step that finished it. Not a segment: the reply's `AudioSegment`
    (decoded whole) is what is stored."""

    audio: np.ndarray           # float32 mono, the samples that follow the previous chunk
    index: int = 0              # 0, 1, ... in playing order
    sample_rate: int = 16_000


@dataclass
class Progress:
    layout: str                 # what the reply is becoming: text / image / audio
    block: int                  # block index within the reply
    step: int                   # step within the block
    total: int                  # steps planned for the block (it may stop early)
    text: str = ""              # the reply's text so far, current block included
    image: np.ndarray | None = None  # preview of an image being denoised (H x W x 3 uint8)
    audio: AudioChunk | None = None  # speech that became final at this step


@dataclass
class TextSegment:
    text: str
    kind: str = "text"


@dataclass
class ImageSegment:
    image: np.ndarray           # H x W x 3 uint8
    kind: str = "image"


@dataclass
class AudioSegment:
    audio: np.ndarray           # float32 mono
    sample_rate: int = 16_000
    kind: str = "audio"


@dataclass
class Finished:
    """The end of a reply: what it cost."""

    stats: DecodeStats          # the decoder's record as it came: steps, tokens, latency_s, ...
    media_s: float = 0.0        # the engine's time turning tokens into text, previews, media

    def metrics(self) -> dict:
        """Plain JSON, stored with the turn and shown under it."""
        return {**self.stats.to_dict(), "media_s": round(self.media_s, 4)}


Event = Progress | TextSegment | ImageSegment | AudioSegment | Finished
Segment = TextSegment | ImageSegment | AudioSegment
