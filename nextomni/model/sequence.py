"""Token sequences the backbone reads: chat turns of text, image, audio and video positions.

A sequence of L positions is
    ids    [L, G]  token id in column 0 for text; G sub-codes for image / audio positions
    kind   [L]     TEXT, IMAGE or AUDIO
    mpos   [L]     index into the modality position table (image cell, video frame x cell,
                   audio step); 0 for text
    target [L]     the response canvas: what DFM noises and scores (never the prompt)

Chat layout (Qwen style):
    <|im_start|>user\n  parts  <|im_end|>\n<|im_start|>assistant\n  RESPONSE
A response is its parts, `<eos>`, then `<pad>` up to a multiple of the block size; in the
history, earlier responses end in `<|im_end|>\n` instead. An image part is
`<|image_start|>` + grid^2 positions + `<|image_end|>`; audio likewise, padded with the audio
tokenizer's silence code to whole blocks in a response; a video part is its frames (pooled
image codes) and then its sound.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from nextomni.model.config import AUDIO, IMAGE, TEXT, OmniConfig
from nextomni.tokenizers.special import (
    AUDIO_END, AUDIO_START, EOS, IMAGE_END, IMAGE_START, IM_END, IM_START, PAD, VIDEO_END,
    VIDEO_START,
)


@dataclass
class Sequence:
    ids: Tensor
    kind: Tensor
    mpos: Tensor
    target: Tensor

    def __len__(self) -> int:
        return self.kind.shape[0]


@dataclass
class SequenceBuilder:
    """Appends positions; `target=True` marks response positions."""

    config: OmniConfig
    ids: list[list[int]] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    mpos: list[int] = field(default_factory=list)
    target: list[bool] = field(default_factory=list)

    def _g(self) -> int:
        return self.config.max_groups

    def text(self, ids, target: bool = False) -> "SequenceBuilder":
        for i in ids:
            self.ids.append([int(i)] + [0] * (self._g() - 1))
            self.kind.append(TEXT)
            self.mpos.append(0)
            self.target.append(target)
        return self

    def _codes(self, codes: Tensor, kind: int, groups: int, offset: int, target: bool):
        codes = torch.as_tensor(codes)
        if codes.dim() != 2 or codes.shape[1] != groups:
            raise ValueError(f"expected codes [P, {groups}], got {tuple(codes.shape)}")
        pad = [0] * (self._g() - groups)
        for p, row in enumerate(codes.tolist()):
            self.ids.append(row + pad)
            self.kind.append(kind)
            self.mpos.append(offset + p)
            self.target.append(target)

    def image(self, codes: Tensor, target: bool = False) -> "SequenceBuilder":
        """codes [grid^2, G_image]."""
        if len(codes) != self.config.image_positions:
            raise ValueError(f"an image has {self.config.image_positions} positions, "
                             f"got {len(codes)}")
        self.text([IMAGE_START], target)
        self._codes(codes, IMAGE, self.config.image_groups, 0, target)
        return self.text([IMAGE_END], target)

    def audio(self, codes: Tensor, target: bool = False) -> "SequenceBuilder":
        """codes [P, G_audio]."""
        if len(codes) > self.config.modality_positions:
            raise ValueError(f"audio of {len(codes)} positions is longer than the "
                             f"{self.config.modality_positions} the model can place")
        self.text([AUDIO_START], target)
        self._codes(codes, AUDIO, self.config.audio_groups, 0, target)
        return self.text([AUDIO_END], target)

    def video(self, frames: Tensor, sound: Tensor | None = None,
              target: bool = False) -> "SequenceBuilder":
        """frames [F, cells, G_image] pooled image codes; sound [P, G_audio] or None."""
        self.text([VIDEO_START], target)
        cells = self.config.video_grid ** 2
        for f, codes in enumerate(frames):
            if len(codes) != cells:
                raise ValueError(f"a video frame has {cells} positions, got {len(codes)}")
            self._codes(codes, IMAGE, self.config.image_groups,
                        self.config.image_positions + f * cells, target)
        if sound is not None:
            self._codes(sound, AUDIO, self.config.audio_groups, 0, target)
        return self.text([VIDEO_END], target)

    def turn_start(self, role_ids: list[int]) -> "SequenceBuilder":
        """`<|im_start|>role\\n` (role_ids: the text tokens of 'role\\n')."""
        return self.text([IM_START] + list(role_ids))

    def turn_end(self, newline_ids: list[int]) -> "SequenceBuilder":
        return self.text([IM_END] + list(newline_ids))

    def end_response(self) -> "SequenceBuilder":
        """`<eos>` then `<pad>` up to a multiple of the block size, counted from the first
        response position."""
        self.text([EOS], target=True)
        start = self.target.index(True)
        extra = (-(len(self.target) - start)) % self.config.block_size
        return self.text([PAD] * extra, target=True)

    def build(self) -> Sequence:
        return Sequence(torch.tensor(self.ids, dtype=torch.long).reshape(-1, self._g()),
                        torch.tensor(self.kind, dtype=torch.long),
                        torch.tensor(self.mpos, dtype=torch.long),
                        torch.tensor(self.target, dtype=torch.bool))


@dataclass
class Batch:
    ids: Tensor             # [B, L, G]
    kind: Tensor            # [B, L]
    mpos: Tensor            # [B, L]
    target: Tensor          # [B, L]
    attention_mask: Tensor  # [B, L] 1 = real position

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.ids, self.kind, self.mpos, self.target,
                                               self.attention_mask)))


def collate(seqs: list[Sequence]) -> Batch:
    """Right-pad to the longest sequence (padding is masked out of attention)."""
    length = max(len(s) for s in seqs)
    g = seqs[0].ids.shape[1]
    b = len(seqs)
    ids = torch.full((b, length, g), PAD, dtype=torch.long)
    kind = torch.full((b, length), TEXT, dtype=torch.long)
    mpos = torch.zeros(b, length, dtype=torch.long)
    target = torch.zeros(b, length, dtype=torch.bool)
    mask = torch.zeros(b, length, dtype=torch.long)
    for i, s in enumerate(seqs):
        n = len(s)
        ids[i, :n], kind[i, :n], mpos[i, :n], target[i, :n] = s.ids, s.kind, s.mpos, s.target
        mask[i, :n] = 1
    return Batch(ids, kind, mpos, target, mask)


def variable_spaces(config: OmniConfig, kind: Tensor) -> Tensor:
    """DFM space of every (position, group) slot: [B, L, G]; -1 for unused slots."""
    g = torch.arange(config.max_groups, device=kind.device)
    space = torch.full((*kind.shape, config.max_groups), -1, dtype=torch.long,
                       device=kind.device)
    text = (kind == TEXT)[..., None] & (g == 0)
    image = (kind == IMAGE)[..., None] & (g < config.image_groups)
    audio = (kind == AUDIO)[..., None] & (g < config.audio_groups)
    space = torch.where(text, 0, space)
    space = torch.where(image, 1 + g, space)
    return torch.where(audio, 1 + config.image_groups + g, space)
