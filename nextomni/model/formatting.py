"""Chat turns -> `Sequence`: tokenizes every part and lays the turns out in the chat format.

Parts are plain media (`nextomni.chat`): an RGB array or PIL image, a 16 kHz waveform, a
`media.VideoClip`. Training, evaluation and the engine all format through this one place, and
none of them hands it anything but what a user could upload.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from nextomni.chat import ROLES, Part, Turn
from nextomni.media import VideoClip
from nextomni.model.config import OmniConfig
from nextomni.model.sequence import Block, Sequence, SequenceBuilder, pick_target, response_blocks
from nextomni.tokenizers.special import EOS, PAD
from nextomni.tokenizers.video import encode_video


@dataclass
class Tokenizers:
    text: object
    image: object
    audio: object


class ChatFormatter:
    def __init__(self, config: OmniConfig, tokenizers: Tokenizers):
        self.config, self.tok = config, tokenizers
        self._newline = tokenizers.text.encode("\n")
        self._roles = {r: tokenizers.text.encode(r + "\n") for r in ROLES}

    # ------------------------------------------------------------------ parts
    def image_codes(self, value) -> torch.Tensor:
        if isinstance(value, Image.Image):
            value = np.asarray(value.convert("RGB"))
        return self.tok.image.encode([np.asarray(value)])[0]  # a list: any size is squared

    def audio_codes(self, value) -> torch.Tensor:
        return self.tok.audio.encode(np.asarray(value, dtype=np.float32))

    def video_tokens(self, value):
        if not isinstance(value, VideoClip):
            raise ValueError(f"a video part holds a VideoClip, not {type(value).__name__}")
        return encode_video(value.frames, value.audio, self.tok.image, self.tok.audio,
                            self.config.video_frames, self.config.image_grid // self.config.video_grid)

    def add_part(self, b: SequenceBuilder, part: Part) -> None:
        """A part of a prompt turn."""
        if part.kind == "text":
            b.text(self.tok.text.encode(str(part.value)))
        elif part.kind == "image":
            b.image(self.image_codes(part.value))
        elif part.kind == "audio":
            b.audio(self.audio_codes(part.value))
        elif part.kind == "video":
            v = self.video_tokens(part.value)
            b.video(v.frames, v.audio)
        else:
            raise ValueError(f"unknown part kind {part.kind!r}")

    def response_blocks(self, part: Part) -> list[Block]:
        """The blocks of a reply holding one part (text, an image or speech)."""
        if part.kind == "text":
            return response_blocks(self.config, "text", self.tok.text.encode(str(part.value)))
        if part.kind == "image":
            return response_blocks(self.config, "image", self.image_codes(part.value))
        if part.kind == "audio":
            return response_blocks(self.config, "audio", self.audio_codes(part.value))
        raise ValueError(f"a reply holds text, an image or audio, not {part.kind!r}")

    # ------------------------------------------------------------------ turns
    def prompt(self, turns: list[Turn]) -> SequenceBuilder:
        """Every turn in `turns` (a segment each), then the opening of the assistant's reply."""
        b = SequenceBuilder(self.config)
        for turn in turns:
            self._check_role(turn.role)
            b.turn_start(self._roles[turn.role])
            for part in turn.parts:
                self.add_part(b, part)
            b.turn_end(self._newline)
        return b.turn_start(self._roles["assistant"])

    def encode(self, turns: list[Turn], rng=None) -> Sequence:
        """A training sequence: the prompt, the reply's blocks up to one target block (chosen
        by `pick_target` with `rng`; the last trainable one without), clean blocks before it."""
        if not turns or turns[-1].role != "assistant":
            raise ValueError("the last turn of a training example must be the assistant's")
        if len(turns[-1].parts) != 1:
            raise ValueError("a training reply holds exactly one part")
        b = self.prompt(turns[:-1])
        blocks = self.response_blocks(turns[-1].parts[0])
        j = pick_target(blocks, rng) if rng is not None else \
            max(i for i, blk in enumerate(blocks) if not blk.fixed)
        for i in range(j + 1):
            b.block(blocks[i], target=i == j)
        return b.build()

    def encode_all(self, turns: list[Turn]) -> Sequence:
        """A training sequence that teaches every reply block at once: the prompt, the clean
        reply, then a noised copy of each trainable block (`SequenceBuilder.noisy_copies`)."""
        return self._whole_reply(turns).noisy_copies().build()

    def encode_full(self, turns: list[Turn]) -> Sequence:
        """A training sequence for the autoregressive baseline: the prompt and the whole
        reply, every reply position a target except the closing markers the engine writes
        and the padding after `<eos>`."""
        seq = self._whole_reply(turns).build()
        seq.target &= ~((seq.kind == 0) & (seq.ids[:, 0] == PAD))
        return seq

    def _whole_reply(self, turns: list[Turn]) -> SequenceBuilder:
        """The prompt, then every block of the reply (the trainable ones as targets)."""
        if not turns or turns[-1].role != "assistant" or len(turns[-1].parts) != 1:
            raise ValueError("the last turn must be the assistant's, with exactly one part")
        b = self.prompt(turns[:-1])
        for blk in self.response_blocks(turns[-1].parts[0]):
            b.block(blk, target=not blk.fixed)
        return b

    def embedding_sequence(self, part: Part) -> Sequence:
        """One item alone, then `<eos>` in a segment of its own: the state there (which sees
        the whole item) is the item's unified representation."""
        b = SequenceBuilder(self.config).turn_start(self._roles["user"])
        self.add_part(b, part)
        return b.turn_end(self._newline).segment().text([EOS]).build()

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
