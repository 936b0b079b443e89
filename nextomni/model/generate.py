"""Block-by-block DFM generation with an exact key/value cache.

The model attends block-causally (see `sequence`), so the prompt and every finished block are
run once and cached; each denoising step of the current block runs only that block against
the cache. A reply is laid out as training taught it (`sequence.response_blocks`):

    1. block 0 is one position; its prediction says what the reply is: `<|image_start|>`,
       `<|audio_start|>` or the first word of a text reply;
    2. text grows by blocks until a block holds `<eos>`; an image is one block of grid^2
       positions; speech grows by blocks until a block is silent;
    3. closing markers (`<|image_end|>` / `<|audio_end|>`, `<eos>`) are written, not sampled.

Within a block the Euler sampler runs `steps` steps, and stops early once every position's
choice is confident (probability >= `confidence`): easy blocks take a step or two.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from nextomni.dfm import choose_x1, euler_steps
from nextomni.model.config import AUDIO, IMAGE, TEXT
from nextomni.model.modeling import OmniModel
from nextomni.model.sequence import (
    Block, Sequence, SequenceBuilder, closing_block, code_block, text_block, variable_spaces,
)
from nextomni.tokenizers.special import (
    AUDIO_END, AUDIO_START, EOS, IMAGE_END, IMAGE_START, PAD,
)

LAYOUTS = ("text", "image", "audio")


@dataclass(frozen=True)
class DecodeOptions:
    steps: int = 16               # Euler steps per block (at most)
    temperature: float = 0.0
    top_k: int | None = None
    confidence: float = 0.9       # stop a block early once every choice is this sure; 1 = never
    max_text_blocks: int = 8
    max_audio_blocks: int = 16
    cache: bool = True
    dynamic: bool = True          # grow by blocks; False: a fixed number of blocks
    fixed_blocks: int = 3         # with dynamic=False


@dataclass
class Generated:
    layout: str
    text_ids: list[int]           # reply text up to <eos>
    image_codes: Tensor | None    # [grid^2, G] or None
    audio_codes: Tensor | None    # [P, G] without trailing silence, or None
    stats: dict = field(default_factory=dict)


@dataclass
class StepEvent:
    """Progress inside a block, for streaming: current tokens and predicted data."""

    layout: str
    block: int
    step: int
    total: int
    x_t: Tensor                    # [n, G] current block tokens
    x1: Tensor                     # [n, G] predicted block tokens


class BlockDecoder:
    """A prompt plus the reply decoded so far; `decode(block)` denoises one more block."""

    def __init__(self, model: OmniModel, prompt: Sequence, options: DecodeOptions,
                 generator: torch.Generator | None = None):
        self.model, self.opt, self.generator = model, options, generator
        self.device = next(model.parameters()).device
        self.seq = {k: getattr(prompt, k).to(self.device)[None] for k in
                    ("ids", "kind", "mpos", "segment")}
        self.paths = [p.to(self.device) for p in model.paths()]
        self.stats = {"forward_passes": 0, "positions_computed": 0, "cached_positions_reused": 0,
                      "steps": 0, "blocks": 0}
        self.cache = None
        if options.cache:
            from transformers import DynamicCache

            self.cache = DynamicCache()
            self._forward(self.seq, past=False, keep=True)

    # ------------------------------------------------------------------ model calls
    def _forward(self, part: dict, past: bool, keep: bool) -> Tensor:
        """Hidden states of `part`, attending to the cache when `past`; keeps its keys and
        values in the cache only when `keep`."""
        cached = self.cache.get_seq_length() if (past and self.cache is not None) else 0
        out = self.model(part["ids"], part["kind"], part["mpos"], segment=part["segment"],
                         past_key_values=self.cache,
                         past_segment=self.seq["segment"][:, :cached] if cached else None,
                         use_cache=self.cache is not None)
        n = part["kind"].shape[1]
        self.stats["forward_passes"] += 1
        self.stats["positions_computed"] += n
        self.stats["cached_positions_reused"] += cached
        if self.cache is not None and not keep:
            self.cache.crop(-n)
        return out.last_hidden_state

    def _hidden(self, block: dict) -> Tensor:
        """Hidden states of the current block's positions."""
        if self.cache is not None:
            return self._forward(block, past=True, keep=False)[0]
        full = {k: torch.cat([self.seq[k], block[k]], 1) for k in self.seq}
        n = block["kind"].shape[1]
        return self._forward(full, past=False, keep=False)[0, -n:]

    def _commit(self, block: dict) -> None:
        if self.cache is not None:
            self._forward(block, past=True, keep=True)
        self.seq = {k: torch.cat([self.seq[k], block[k]], 1) for k in self.seq}

    # ------------------------------------------------------------------ one block
    def _as_tensors(self, blk: Block) -> dict:
        seg = int(self.seq["segment"].max()) + 1
        return {"ids": torch.tensor(blk.ids, device=self.device)[None],
                "kind": torch.tensor(blk.kind, device=self.device)[None],
                "mpos": torch.tensor(blk.mpos, device=self.device)[None],
                "segment": torch.full((1, len(blk)), seg, device=self.device)}

    def decode(self, blk: Block, layout: str, index: int, steps: int | None = None,
               on_step: Callable[[StepEvent], None] | None = None) -> Tensor:
        """Denoise `blk` (its ids are ignored unless fixed), commit it, return its ids [n, G]."""
        block = self._as_tensors(blk)
        if blk.fixed:
            self._commit(block)
            return block["ids"][0]
        n, g = block["ids"].shape[1:]
        space = variable_spaces(self.model.config, block["kind"]).reshape(1, n * g)
        fixed = space < 0
        confident = [0.0]

        def choose(logits: Tensor) -> Tensor:
            probs = torch.softmax(logits.float(), -1)
            confident[0] = min(confident[0], float(probs.max(-1).values.min()))
            return choose_x1(logits.float(), self.opt.temperature, self.opt.top_k, self.generator)

        def denoise(x_t: Tensor) -> Tensor:
            confident[0] = 1.0
            ids = x_t.reshape(1, n, g)
            h = self._hidden({**block, "ids": ids})
            x1 = ids[0].clone()
            text = block["kind"][0] == TEXT
            if text.any():
                x1[text, 0] = choose(self.model.lm_head(h[text]))
            for kind, head, groups in ((IMAGE, self.model.image_head, self.model.config.image_groups),
                                       (AUDIO, self.model.audio_head, self.model.config.audio_groups)):
                sel = block["kind"][0] == kind
                if sel.any():
                    x1[sel, :groups] = head.sample(h[sel], choose)
            return x1.reshape(1, n * g)

        total = steps or self.opt.steps
        final = None
        for state in euler_steps(denoise, block["ids"].reshape(1, n * g), self.paths, space=space,
                                 fixed=fixed, steps=total, temperature=self.opt.temperature,
                                 top_k=self.opt.top_k, generator=self.generator):
            self.stats["steps"] += 1
            done = state.step == total or confident[0] >= self.opt.confidence
            final = state.x1 if done else state.x_t
            if on_step is not None:
                on_step(StepEvent(layout, index, state.step, total, final.reshape(n, g),
                                  state.x1.reshape(n, g)))
            if done:
                break
        block["ids"] = torch.where(fixed, block["ids"].reshape(1, n * g), final).reshape(1, n, g)
        self._commit(block)
        self.stats["blocks"] += 1
        return block["ids"][0]


# ---------------------------------------------------------------------- a whole reply

def decide_layout(decoder: BlockDecoder, on_step=None) -> tuple[str, int]:
    """Decode block 0 (one text position): its token says which layout the reply takes."""
    first = int(decoder.decode(text_block(decoder.model.config, [PAD]), "text", 0, steps=1,
                               on_step=on_step)[0, 0])
    layout = "image" if first == IMAGE_START else "audio" if first == AUDIO_START else "text"
    return layout, first


@torch.no_grad()
def generate(model: OmniModel, prompt: SequenceBuilder | Sequence, options: DecodeOptions =
             DecodeOptions(), generator: torch.Generator | None = None, layout: str | None = None,
             on_step: Callable[[StepEvent], None] | None = None) -> Generated:
    """A whole reply. `layout` forces text / image / audio (the first block is then written,
    not predicted); by default the model decides."""
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    started = time.perf_counter()
    seq = prompt.build() if isinstance(prompt, SequenceBuilder) else prompt
    dec = BlockDecoder(model, seq, options, generator)
    c = model.config
    if layout in ("image", "audio"):  # forced: write the opening marker
        first = IMAGE_START if layout == "image" else AUDIO_START
        dec.decode(text_block(c, [first], fixed=True), layout, 0)
    else:
        decided, first = decide_layout(dec, on_step)
        layout = layout or decided
    text_ids = [first] if layout == "text" else []
    image = audio = None
    if layout == "text":
        text_ids = _decode_text(dec, text_ids, options, on_step)
    elif layout == "image":
        blank = torch.zeros(c.image_positions, c.image_groups, dtype=torch.long)
        image = dec.decode(code_block(c, blank, IMAGE), "image", 1, on_step=on_step)
        image = image[:, : c.image_groups].cpu()
        dec.decode(closing_block(c, IMAGE_END), "image", 2)
    else:
        audio = _decode_audio(dec, options, on_step)
        dec.decode(closing_block(c, AUDIO_END), "audio", 2)
    stats = {**dec.stats, "layout": layout, "latency_s": time.perf_counter() - started,
             "response_positions": int(dec.seq["kind"].shape[1] - len(seq))}
    return Generated(layout, text_ids, image, audio, stats)


def _decode_text(dec: BlockDecoder, text_ids: list[int], options: DecodeOptions, on_step):
    """Text blocks until one holds `<eos>` (dynamic), or a fixed number of them."""
    c = dec.model.config
    if text_ids and text_ids[0] == EOS:
        return []
    limit = options.max_text_blocks if options.dynamic else options.fixed_blocks
    for i in range(limit):
        ids = dec.decode(text_block(c, [PAD] * c.block_size), "text", i + 1, on_step=on_step)
        text_ids += ids[:, 0].tolist()
        if options.dynamic and EOS in text_ids:
            break
    return text_ids[: text_ids.index(EOS)] if EOS in text_ids else text_ids


def _decode_audio(dec: BlockDecoder, options: DecodeOptions, on_step) -> Tensor:
    """Audio blocks until one is entirely silence (dynamic), or a fixed number of them;
    trailing silence is dropped."""
    c = dec.model.config
    silence = torch.tensor(c.audio_silence)
    blocks = []
    limit = options.max_audio_blocks if options.dynamic else options.fixed_blocks
    for i in range(limit):
        blank = torch.zeros(c.block_size, c.audio_groups, dtype=torch.long)
        codes = dec.decode(code_block(c, blank, AUDIO, i * c.block_size), "audio", i + 1,
                           on_step=on_step)[:, : c.audio_groups].cpu()
        quiet = (codes == silence).all(-1)
        if options.dynamic and bool(quiet.all()):
            break
        blocks.append(codes)
    codes = torch.cat(blocks) if blocks else silence[None].clone()
    return trim_silence(codes, c.audio_silence)


def trim_silence(codes: Tensor, silence: tuple[int, ...]) -> Tensor:
    """Drop trailing positions equal to the silence code."""
    quiet = (codes == torch.tensor(silence)).all(-1)
    keep = len(codes)
    while keep > 1 and bool(quiet[keep - 1]):
        keep -= 1
    return codes[:keep]
