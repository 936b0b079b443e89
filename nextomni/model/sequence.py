"""Token sequences the backbone reads: chat turns of text, image, audio and video positions.

A sequence of L positions is
    ids     [L, G]  token id in column 0 for text; G sub-codes for image / audio positions
    kind    [L]     TEXT, IMAGE or AUDIO
    mpos    [L]     index into the modality position table (image cell, video frame x cell,
                    audio step); 0 for text
    segment [L]     attention block: a position sees its own segment and every earlier one
    target  [L]     what DFM noises and scores (one response block; never the prompt)

Attention is block-causal: bidirectional inside a segment, causal between segments. Every
prompt turn is a segment, and so is every block of a response. Keys and values of finished
segments never change, so the engine caches them exactly: the prompt once per turn, each
response block once it is decoded.

Chat layout (Qwen style):
    <|im_start|>user\n  parts  <|im_end|>\n<|im_start|>assistant\n  RESPONSE
Response blocks (see `response_blocks`):
    block 0   the opening block, `opening_block` positions: the first text token,
              <|image_start|> or <|audio_start|> (it tells the engine what kind of reply to
              lay out); after it, the start of the text (<eos>, <pad> once it ends) or <pad>
    text      the rest of the text, <eos>, then <pad> to full blocks of `block_size`
    image     all grid^2 image positions as one block; then <|image_end|> <eos> <pad>...
    audio     blocks of `block_size` audio positions: the speech, silence to a full block and
              one more block of silence (the engine stops at a silent block); then
              <|audio_end|> <eos> <pad>...
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
    segment: Tensor
    target: Tensor
    noisy: Tensor | None = None  # [L] bool: a noised copy of a response block (training)
    pos: Tensor | None = None    # [L] position ids (a copy shares its block's positions)

    def __post_init__(self):
        n = self.kind.shape[0]
        if self.noisy is None:
            self.noisy = torch.zeros(n, dtype=torch.bool)
        if self.pos is None:
            self.pos = torch.arange(n)

    def __len__(self) -> int:
        return self.kind.shape[0]


@dataclass
class Block:
    """Positions of one response block: id rows, kinds, modality positions; `fixed` blocks
    (markers the engine writes itself) are never denoised, so never trained on."""

    ids: list[list[int]]
    kind: list[int]
    mpos: list[int]
    fixed: bool = False

    def __len__(self) -> int:
        return len(self.kind)


@dataclass
class SequenceBuilder:
    """Appends positions to the current segment; `segment()` opens a new one."""

    config: OmniConfig
    ids: list[list[int]] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    mpos: list[int] = field(default_factory=list)
    seg: list[int] = field(default_factory=list)
    target: list[bool] = field(default_factory=list)
    noisy: list[bool] = field(default_factory=list)
    pos: list[int] = field(default_factory=list)
    blocks: list[tuple[int, int]] = field(default_factory=list)  # (start, length) of blocks
    current: int = 0

    def segment(self) -> "SequenceBuilder":
        if self.kind:
            self.current += 1
        return self

    def _add(self, row: list[int], kind: int, mpos: int, target: bool) -> None:
        self.ids.append(row)
        self.kind.append(kind)
        self.mpos.append(mpos)
        self.seg.append(self.current)
        self.target.append(target)
        self.noisy.append(False)
        self.pos.append(len(self.pos))

    def text(self, ids, target: bool = False) -> "SequenceBuilder":
        pad = [0] * (self.config.max_groups - 1)
        for i in ids:
            self._add([int(i)] + pad, TEXT, 0, target)
        return self

    def codes(self, codes: Tensor, kind: int, offset: int = 0,
              target: bool = False) -> "SequenceBuilder":
        """Append image (kind IMAGE) or audio (AUDIO) positions, codes [P, G_kind]."""
        groups = self.config.image_groups if kind == IMAGE else self.config.audio_groups
        codes = torch.as_tensor(codes)
        if codes.dim() != 2 or codes.shape[1] != groups:
            raise ValueError(f"expected codes [P, {groups}], got {tuple(codes.shape)}")
        pad = [0] * (self.config.max_groups - groups)
        for p, row in enumerate(codes.tolist()):
            self._add(row + pad, kind, offset + p, target)
        return self

    def image(self, codes: Tensor) -> "SequenceBuilder":
        """An image in a prompt: codes [grid^2, G_image] between its markers."""
        if len(codes) != self.config.image_positions:
            raise ValueError(f"an image has {self.config.image_positions} positions, "
                             f"got {len(codes)}")
        return self.text([IMAGE_START]).codes(codes, IMAGE).text([IMAGE_END])

    def audio(self, codes: Tensor) -> "SequenceBuilder":
        """Sound in a prompt: codes [P, G_audio] between its markers."""
        if len(codes) > self.config.modality_positions:
            raise ValueError(f"audio of {len(codes)} positions is longer than the "
                             f"{self.config.modality_positions} the model can place")
        return self.text([AUDIO_START]).codes(codes, AUDIO).text([AUDIO_END])

    def video(self, frames: Tensor, sound: Tensor | None = None) -> "SequenceBuilder":
        """A clip in a prompt: frames [F, cells, G_image] pooled image codes, then its sound."""
        self.text([VIDEO_START])
        cells = self.config.video_grid ** 2
        for f, codes in enumerate(frames):
            if len(codes) != cells:
                raise ValueError(f"a video frame has {cells} positions, got {len(codes)}")
            self.codes(codes, IMAGE, self.config.image_positions + f * cells)
        if sound is not None:
            self.codes(sound, AUDIO)
        return self.text([VIDEO_END])

    def turn_start(self, role_ids: list[int]) -> "SequenceBuilder":
        """A new segment opening with `<|im_start|>role\\n` (role_ids: tokens of 'role\\n')."""
        return self.segment().text([IM_START] + list(role_ids))

    def turn_end(self, newline_ids: list[int]) -> "SequenceBuilder":
        return self.text([IM_END] + list(newline_ids))

    def block(self, block: Block, target: bool = False) -> "SequenceBuilder":
        """A response block as a segment of its own."""
        self.segment()
        self.blocks.append((len(self.kind), len(block)))
        for row, kind, mpos in zip(block.ids, block.kind, block.mpos):
            self._add(row, kind, mpos, target)
        return self

    def noisy_copies(self) -> "SequenceBuilder":
        """Teach every target block at once: each is appended again as a copy that DFM
        noises (same segment, same positions), which attends to the clean blocks before it
        and to itself; the clean blocks stay as context and are no longer targets. Training
        then matches decoding block by block (see `block_mask`)."""
        for start, n in list(self.blocks):
            if not self.target[start]:
                continue
            for i in range(start, start + n):
                self.ids.append(list(self.ids[i]))
                self.kind.append(self.kind[i])
                self.mpos.append(self.mpos[i])
                self.seg.append(self.seg[i])
                self.target.append(True)
                self.noisy.append(True)
                self.pos.append(self.pos[i])
                self.target[i] = False
        return self

    def build(self) -> Sequence:
        g = self.config.max_groups
        return Sequence(torch.tensor(self.ids, dtype=torch.long).reshape(-1, g),
                        torch.tensor(self.kind, dtype=torch.long),
                        torch.tensor(self.mpos, dtype=torch.long),
                        torch.tensor(self.seg, dtype=torch.long),
                        torch.tensor(self.target, dtype=torch.bool),
                        torch.tensor(self.noisy, dtype=torch.bool),
                        torch.tensor(self.pos, dtype=torch.long))


# --------------------------------------------------------------------------- responses

def text_block(config: OmniConfig, ids: list[int], fixed: bool = False) -> Block:
    pad = [0] * (config.max_groups - 1)
    return Block([[int(i)] + pad for i in ids], [TEXT] * len(ids), [0] * len(ids), fixed)


def code_block(config: OmniConfig, codes: Tensor, kind: int, offset: int = 0) -> Block:
    groups = config.image_groups if kind == IMAGE else config.audio_groups
    pad = [0] * (config.max_groups - groups)
    rows = [list(r) + pad for r in torch.as_tensor(codes)[:, :groups].tolist()]
    return Block(rows, [kind] * len(rows), list(range(offset, offset + len(rows))))


def closing_block(config: OmniConfig, marker: int) -> Block:
    """`<|image_end|>` / `<|audio_end|>`, `<eos>`, padding: written by the engine."""
    return text_block(config, [marker, EOS] + [PAD] * (config.block_size - 2), fixed=True)


def response_blocks(config: OmniConfig, kind: str, value) -> list[Block]:
    """The blocks of a response holding text (token ids), an image (codes [grid^2, G]) or
    speech (codes [P, G])."""
    b, k = config.block_size, config.opening_block
    if kind == "text":
        tokens = list(value) + [EOS]
        head, rest = tokens[:k], tokens[k:]
        rest += [PAD] * ((-len(rest)) % b)
        return [opening_block(config, head)] + [
            text_block(config, rest[i:i + b]) for i in range(0, len(rest), b)]
    if kind == "image":
        if len(value) != config.image_positions:
            raise ValueError(f"an image has {config.image_positions} positions, got {len(value)}")
        return [opening_block(config, [IMAGE_START]), code_block(config, value, IMAGE),
                closing_block(config, IMAGE_END)]
    if kind == "audio":
        codes = torch.as_tensor(value)
        silence = torch.tensor(config.audio_silence, dtype=codes.dtype)
        extra = (-len(codes)) % b + b  # fill the last block, then one silent block
        codes = torch.cat([codes, silence.expand(extra, -1)])
        blocks = [opening_block(config, [AUDIO_START])]
        blocks += [code_block(config, codes[i:i + b], AUDIO, i) for i in range(0, len(codes), b)]
        return blocks + [closing_block(config, AUDIO_END)]
    raise ValueError(f"a response holds text, an image or audio, not {kind!r}")


def opening_block(config: OmniConfig, ids: list[int], fixed: bool = False) -> Block:
    """A reply's first block: `ids` padded with <pad> to `opening_block` positions."""
    return text_block(config, list(ids) + [PAD] * (config.opening_block - len(ids)), fixed)


def pick_target(blocks: list[Block], rng) -> int:
    """Which response block a training example teaches: the layout-deciding first block 15%
    of the time, otherwise a trainable block chosen in proportion to its size."""
    trainable = [i for i, blk in enumerate(blocks) if not blk.fixed]
    if len(trainable) == 1 or rng.random() < 0.15:
        return trainable[0]
    later = trainable[1:]
    sizes = torch.tensor([len(blocks[i]) for i in later], dtype=torch.float)
    return later[int(torch.multinomial(sizes, 1, generator=_torch_rng(rng))[0])]


def _torch_rng(rng) -> torch.Generator:
    return torch.Generator().manual_seed(int(rng.integers(2**62)))


# --------------------------------------------------------------------------- batches

@dataclass
class Batch:
    ids: Tensor             # [B, L, G]
    kind: Tensor            # [B, L]
    mpos: Tensor            # [B, L]
    segment: Tensor         # [B, L]
    target: Tensor          # [B, L]
    attention_mask: Tensor  # [B, L] 1 = real position
    noisy: Tensor | None = None  # [B, L] noised copies of response blocks
    pos: Tensor | None = None    # [B, L] position ids

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) if t is not None else None
                       for t in (self.ids, self.kind, self.mpos, self.segment, self.target,
                                 self.attention_mask, self.noisy, self.pos)))


def collate(seqs: list[Sequence]) -> Batch:
    """Right-pad to the longest sequence (padding is masked out of attention)."""
    length = max(len(s) for s in seqs)
    g = seqs[0].ids.shape[1]
    b = len(seqs)
    ids = torch.full((b, length, g), PAD, dtype=torch.long)
    kind = torch.full((b, length), TEXT, dtype=torch.long)
    mpos = torch.zeros(b, length, dtype=torch.long)
    segment = torch.zeros(b, length, dtype=torch.long)
    target = torch.zeros(b, length, dtype=torch.bool)
    mask = torch.zeros(b, length, dtype=torch.long)
    noisy = torch.zeros(b, length, dtype=torch.bool)
    pos = torch.arange(length).repeat(b, 1)
    for i, s in enumerate(seqs):
        n = len(s)
        ids[i, :n], kind[i, :n], mpos[i, :n] = s.ids, s.kind, s.mpos
        segment[i, :n], target[i, :n] = s.segment, s.target
        segment[i, n:] = int(s.segment.max()) + 1 if n else 0
        noisy[i, :n], pos[i, :n] = s.noisy, s.pos
        mask[i, :n] = 1
    has_copies = bool(noisy.any())
    return Batch(ids, kind, mpos, segment, target, mask, noisy if has_copies else None,
                 pos if has_copies else None)


def block_mask(q_segment: Tensor, k_segment: Tensor, k_valid: Tensor | None = None,
               noisy: Tensor | None = None) -> Tensor:
    """Block-causal attention [B, 1, Q, K] (True = attend): a query sees keys of its own
    segment and earlier ones, never padding (padded queries see themselves at least).

    With `noisy` (queries = keys, training with `noisy_copies`): clean positions never see
    noised copies; a noised copy sees the clean segments before its own and itself, as its
    block does when it is decoded."""
    q, k = q_segment[:, :, None], k_segment[:, None, :]
    allowed = k <= q
    if noisy is not None:
        nq, nk = noisy[:, :, None], noisy[:, None, :]
        allowed = (~nk & ((k < q) | ((k == q) & ~nq))) | (nk & nq & (k == q))
    if k_valid is not None:
        allowed &= k_valid.bool()[:, None, :]
    if q_segment.shape[1] == k_segment.shape[1]:
        allowed |= torch.eye(q_segment.shape[1], dtype=torch.bool, device=allowed.device)
    return allowed[:, None]


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
