"""What a reply shows while it is still being decoded: its text so far, a preview of a
partial image now and then, and speech block by block as each block becomes final.

The engine feeds every `StepEvent` of a reply through these; they turn tokens into what a
person sees or hears, and leave the finished segments to the engine.
"""

from __future__ import annotations

import numpy as np
import torch

from nextomni.engine.events import AudioChunk
from nextomni.model.decoding import StepEvent
from nextomni.tokenizers.special import EOS

# An image preview is decoded every this many steps: decoding one costs about as much as a
# denoising step of the nano model, and a page cannot show more than a few per second anyway.
# The last step gets none: the finished image follows it at once.
PREVIEW_EVERY = 4
# Mel frames of finished speech decoded again before a new block, so that its phase (found by
# Griffin-Lim) starts where the previous block's left off instead of from scratch.
CONTEXT_FRAMES = 8


class TextStream:
    """The text of a reply while it is being denoised: finished blocks plus the current
    block's prediction, cut at `<eos>`."""

    def __init__(self, fmt):
        self.fmt, self.done, self.block, self.last = fmt, [], 0, None

    def update(self, ev: StepEvent) -> str:
        if ev.block != self.block and self.last is not None:
            self.done += self.last
        self.block = ev.block
        self.last = ev.x1[:, 0].tolist()  # a block's last event holds its final tokens
        ids = self.done + self.last
        if EOS in ids:
            ids = ids[: ids.index(EOS)]
        return self.fmt.tok.text.decode(ids)


def image_preview(ev: StepEvent, fmt) -> np.ndarray | None:
    """The partial image predicted at this step (H x W x 3 uint8), on every
    `PREVIEW_EVERY`-th step of an image block; None otherwise."""
    c = fmt.config
    if ev.layout != "image" or ev.x1.shape[0] != c.image_positions or ev.final \
            or ev.step % PREVIEW_EVERY:
        return None
    return fmt.tok.image.decode(ev.x1[None, :, : c.image_groups].cpu())[0]


class AudioStream:
    """Speech as it becomes final: each finished block of codes (at least one block's worth
    of positions: the baseline finishes one position at a time) comes out as an
    `AudioChunk`. An all-silent block ends speech in both decoders, so it yields nothing.
    The chunks play one after another; the reply's `AudioSegment`, decoded whole, stays the
    one that is stored."""

    def __init__(self, fmt):
        self.tok, c = fmt.tok.audio, fmt.config
        self.size, self.groups = c.block_size, c.audio_groups
        self.silence = torch.tensor(c.audio_silence)
        self.codes: list[torch.Tensor] = []
        self.sent = 0   # positions already streamed
        self.chunks = 0

    def update(self, ev: StepEvent) -> AudioChunk | None:
        if ev.layout != "audio" or not ev.final:
            return None
        self.codes.append(ev.x_t[:, : self.groups].cpu())
        codes = torch.cat(self.codes)
        new = codes[self.sent:]
        if len(new) < self.size:
            return None
        start, self.sent = self.sent, len(codes)
        if bool((new == self.silence).all()):
            return None
        self.chunks += 1
        return AudioChunk(self._decode(codes, start), index=self.chunks - 1,
                          sample_rate=self.tok.config.sample_rate)

    def _decode(self, codes: torch.Tensor, start: int) -> np.ndarray:
        """The waveform of positions start.. of `codes` [P, G], with earlier frames as
        context; the last frame is repeated once so that the chunk spans all its frames."""
        cfg = self.tok.config
        mel = self.tok.decode_mel(codes)                       # [n_mels, P * frames]
        a, b = start * cfg.frames_per_position, mel.shape[1]
        ctx = min(a, CONTEXT_FRAMES)
        wav = self.tok.mel_to_audio(np.concatenate([mel[:, a - ctx:], mel[:, b - 1:]], 1))
        return wav[ctx * cfg.hop_length:(ctx + b - a) * cfg.hop_length].astype(np.float32)
