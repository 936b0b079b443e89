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

Because attention is block-causal, the cache is exact rather than approximate: a finished
block's keys and values never change, so nothing needs refreshing. Across the turns of a chat
the keys and values of the earlier turns are reused too (`PromptCache`): they depend only on
their own and earlier segments, which the next turn's prompt repeats verbatim.

`iter_generate` is a generator of `StepEvent`s (for streaming) that returns the `Generated`
reply; `generate` runs it to the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Generator as Gen

import torch
from torch import Tensor

from nextomni.dfm import choose_x1, euler_steps
from nextomni.model.config import AUDIO, IMAGE, TEXT, OmniConfig
from nextomni.model.graphs import StaticCache, TextStep
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
    confidence: float = 0.9       # stop a block once every choice is this sure (1: never early)
    max_text_blocks: int = 8
    max_audio_blocks: int = 16
    cache: bool = True
    dynamic: bool = True          # grow by blocks; False: a fixed number of blocks
    fixed_blocks: int = 3         # with dynamic=False
    guidance: float = 0.0         # classifier-free guidance scale for image / audio codes
    # the scale for audio codes; None: `guidance` (the eval's default; the engine's Settings
    # give speech a default of its own)
    speech_guidance: float | None = None
    block_size: int | None = None  # text / audio growth unit; None: the one trained with
    graphs: bool = False          # preallocated cache; text steps replay as CUDA graphs (on
                                  # CUDA; the same code runs eagerly elsewhere)

    def __post_init__(self):
        def bad(name, why):
            raise ValueError(f"{name} {why} (got {getattr(self, name)!r})")

        if not 1 <= self.steps <= 1024:
            bad("steps", "must be between 1 and 1024")
        if self.temperature < 0:
            bad("temperature", "must be >= 0")
        if self.top_k is not None and self.top_k < 1:
            bad("top_k", "must be >= 1 or None")
        if not 0 <= self.confidence <= 1:
            bad("confidence", "must be between 0 and 1")
        for name in ("max_text_blocks", "max_audio_blocks", "fixed_blocks"):
            if not 1 <= getattr(self, name) <= 4096:
                bad(name, "must be between 1 and 4096")
        if not 0 <= self.guidance <= 20:
            bad("guidance", "must be between 0 and 20")
        if self.speech_guidance is not None and not 0 <= self.speech_guidance <= 20:
            bad("speech_guidance", "must be between 0 and 20, or None")
        if self.block_size is not None and not 1 <= self.block_size <= 256:
            bad("block_size", "must be between 1 and 256")

    def guidance_for(self, layout: str) -> float:
        """The guidance scale of a reply of this layout (text replies are never guided)."""
        if layout == "audio" and self.speech_guidance is not None:
            return self.speech_guidance
        return self.guidance if layout in ("image", "audio") else 0.0

    @property
    def guided(self) -> bool:
        """Whether some reply (an image or speech) would be guided: the unconditional prompt
        is then needed."""
        return max(self.guidance_for("image"), self.guidance_for("audio")) > 0


@dataclass
class PromptCache:
    """Keys/values of a sequence decoded earlier, kept to start the next turn from."""

    seq: dict                      # ids / kind / mpos / segment, each [1, L]
    cache: object                  # DynamicCache / StaticCache holding exactly those positions
    steps: dict = field(default_factory=dict)  # a static cache's captured text steps

    def recycled(self) -> "PromptCache":
        """The same buffers (and captured steps) holding no reusable position: the next reply
        recomputes its whole prompt without allocating or capturing again."""
        return PromptCache({k: v[:, :0] for k, v in self.seq.items()}, self.cache, self.steps)

    def reusable(self, seq: dict) -> int:
        """How many leading positions of `seq` this cache holds exactly: equal inputs, ending
        on a segment boundary in both sequences."""
        old, new = self.seq, seq
        n = min(old["kind"].shape[1], new["kind"].shape[1])
        if n == 0:
            return 0
        same = torch.ones(n, dtype=torch.bool, device=new["kind"].device)
        for k in ("ids", "kind", "mpos", "segment"):
            a, b = old[k][0, :n].to(same.device), new[k][0, :n]
            same &= (a == b).reshape(n, -1).all(-1)
        m = n if bool(same.all()) else int((~same).nonzero()[0])
        for cut in range(m, 0, -1):
            if _boundary(old["segment"][0], cut) and _boundary(new["segment"][0], cut):
                return cut
        return 0


def _boundary(segment: Tensor, i: int) -> bool:
    return i == len(segment) or bool(segment[i] != segment[i - 1])


@dataclass
class Generated:
    layout: str
    text_ids: list[int]           # reply text up to <eos>
    image_codes: Tensor | None    # [grid^2, G] or None
    audio_codes: Tensor | None    # [P, G] without trailing silence, or None
    stats: dict = field(default_factory=dict)
    state: PromptCache | None = None  # prompt + reply, to start the next turn from


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
    """A prompt plus the reply decoded so far; `decode(block)` denoises one more block.

    `reuse` starts from an earlier turn's cache. For guidance, `iter_generate` sets `uncond`
    (a decoder over the unconditional prompt that every block is also committed to) and
    `guidance` (the scale of the reply's layout) once it knows the layout."""

    def __init__(self, model: OmniModel, prompt: Sequence, options: DecodeOptions,
                 generator: torch.Generator | None = None, reuse: PromptCache | None = None):
        self.model, self.opt, self.generator = model, options, generator
        self.uncond: "BlockDecoder | None" = None
        self.guidance = 0.0
        self.device = next(model.parameters()).device
        self.seq = {k: getattr(prompt, k).to(self.device)[None] for k in
                    ("ids", "kind", "mpos", "segment")}
        self.paths = [p.to(self.device) for p in model.paths()]
        self.stats = {"forward_passes": 0, "positions_computed": 0, "cached_positions_reused": 0,
                      "steps": 0, "blocks": 0, "prompt_positions": len(prompt),
                      "prompt_positions_reused": 0}
        self.cache = None
        self._text_steps: dict[int, TextStep] = {}
        if options.cache:
            from transformers import DynamicCache

            capacity = len(prompt) + reply_capacity(model.config, options)
            # a static cache is sized in powers of two (at least 1024 positions), so the next
            # turns of a chat fit in it and replay the steps captured for it
            bucket = max(1024, 1 << (capacity - 1).bit_length())
            reused = reuse.reusable(self.seq) if reuse is not None else 0
            static = reuse is not None and isinstance(reuse.cache, StaticCache)
            # a static cache (and its captured steps) is taken over whenever the reply fits
            # in it, even with no position to reuse; it never serves the dynamic mode
            recycle = options.graphs and static and reuse.cache.capacity >= capacity
            if static != recycle:
                reused = 0
            if reused or recycle:
                self.cache = reuse.cache
                extra = self.cache.get_seq_length() - reused
                if extra:
                    self.cache.crop(-extra)
                if recycle:
                    self._text_steps = reuse.steps
            elif options.graphs:
                self.cache = StaticCache(model.backbone.config, bucket, self.device,
                                         model.backbone.embed_tokens.weight.dtype)
            else:
                self.cache = DynamicCache()
            self.stats["prompt_positions_reused"] = reused
            if reused < len(prompt):
                self._forward({k: v[:, reused:] for k, v in self.seq.items()}, past=True,
                              keep=True)

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

    def _graphed(self, block: dict, keep: bool) -> Tensor | None:
        """Hidden states of an all-text block through its captured step (None when graphs
        are off or the block holds codes)."""
        if not isinstance(self.cache, StaticCache) or bool((block["kind"] != TEXT).any()):
            return None
        n = block["kind"].shape[1]
        if n not in self._text_steps:
            self._text_steps[n] = TextStep(self.model, self.cache, n)
        self.stats["forward_passes"] += 1
        self.stats["positions_computed"] += n
        self.stats["cached_positions_reused"] += self.cache.get_seq_length()
        h = self._text_steps[n](block["ids"][0, :, 0])
        if not keep:
            self.cache.crop(-n)
        return h

    def _hidden(self, block: dict) -> Tensor:
        """Hidden states of the current block's positions."""
        if (h := self._graphed(block, keep=False)) is not None:
            return h
        if self.cache is not None:
            return self._forward(block, past=True, keep=False)[0]
        full = {k: torch.cat([self.seq[k], block[k]], 1) for k in self.seq}
        n = block["kind"].shape[1]
        return self._forward(full, past=False, keep=False)[0, -n:]

    def _commit(self, block: dict) -> None:
        if self.cache is not None and self._graphed(block, keep=True) is None:
            self._forward(block, past=True, keep=True)
        self.seq = {k: torch.cat([self.seq[k], block[k]], 1) for k in self.seq}

    def state(self) -> PromptCache | None:
        return PromptCache(self.seq, self.cache, self._text_steps) \
            if self.cache is not None else None

    # ------------------------------------------------------------------ one block
    def _as_tensors(self, blk: Block) -> dict:
        seg = int(self.seq["segment"].max()) + 1
        return {"ids": torch.tensor(blk.ids, device=self.device)[None],
                "kind": torch.tensor(blk.kind, device=self.device)[None],
                "mpos": torch.tensor(blk.mpos, device=self.device)[None],
                "segment": torch.full((1, len(blk)), seg, device=self.device)}

    def decode(self, blk: Block, layout: str, index: int, steps: int | None = None,
               on_step: Callable[[StepEvent], None] | None = None) -> Tensor:
        """`steps_of` run to the end."""
        return _drain(self.steps_of(blk, layout, index, steps), on_step)

    def steps_of(self, blk: Block, layout: str, index: int,
                 steps: int | None = None) -> Gen[StepEvent, None, Tensor]:
        """Denoise `blk` (its ids are ignored unless fixed) yielding every step, commit it,
        return its ids [n, G]."""
        block = self._as_tensors(blk)
        if blk.fixed:
            self._commit_all(block, blk)
            return block["ids"][0]
        n, g = block["ids"].shape[1:]
        space = variable_spaces(self.model.config, block["kind"]).reshape(1, n * g)
        fixed = space < 0
        confident = [0.0]
        guide = self.uncond is not None and self.guidance > 0
        ublock = self.uncond._as_tensors(blk) if guide else None

        def choose(logits: Tensor) -> Tensor:
            probs = torch.softmax(logits.float(), -1)
            confident[0] = min(confident[0], float(probs.max(-1).values.min()))
            return choose_x1(logits.float(), self.opt.temperature, self.opt.top_k, self.generator)

        # which positions hold what, found once per block (each test waits for the device)
        kind = block["kind"][0]
        c = self.model.config
        heads = [(sel, head, groups) for sel, head, groups in (
            (kind == IMAGE, self.model.image_head, c.image_groups),
            (kind == AUDIO, self.model.audio_head, c.audio_groups)) if bool(sel.any())]
        text = kind == TEXT
        all_text, any_text = bool(text.all()), bool(text.any())

        def denoise(x_t: Tensor) -> Tensor:
            confident[0] = 1.0
            ids = x_t.reshape(1, n, g)
            h = self._hidden({**block, "ids": ids})
            h_u = self.uncond._hidden({**ublock, "ids": ids}) if guide and heads else None
            x1 = ids[0].clone()
            if all_text:
                x1[:, 0] = choose(self.model.lm_head(h))
            elif any_text:
                x1[text, 0] = choose(self.model.lm_head(h[text]))
            for sel, head, groups in heads:
                x1[sel, :groups] = head.sample(h[sel], choose,
                                               h_u[sel] if h_u is not None else None,
                                               self.guidance)
            return x1.reshape(1, n * g)

        total = steps or self.opt.steps
        final = None
        for state in euler_steps(denoise, block["ids"].reshape(1, n * g), self.paths, space=space,
                                 fixed=fixed, steps=total, temperature=self.opt.temperature,
                                 top_k=self.opt.top_k, generator=self.generator):
            self.stats["steps"] += 1
            done = state.step == total or confident[0] >= self.opt.confidence
            final = state.x1 if done else state.x_t
            yield StepEvent(layout, index, state.step, total, final.reshape(n, g),
                            state.x1.reshape(n, g))
            if done:
                break
        block["ids"] = torch.where(fixed, block["ids"].reshape(1, n * g), final).reshape(1, n, g)
        self._commit_all(block, blk)
        self.stats["blocks"] += 1
        return block["ids"][0]

    def _commit_all(self, block: dict, blk: Block) -> None:
        self._commit(block)
        if self.uncond is not None:
            self.uncond._commit({**self.uncond._as_tensors(blk), "ids": block["ids"]})


def _drain(gen: Gen, on_step: Callable | None = None):
    """Run a generator to the end, handing what it yields to `on_step`; its return value."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(event)


# ---------------------------------------------------------------------- a whole reply

def decide_layout(decoder: BlockDecoder) -> Gen[StepEvent, None, tuple[str, int]]:
    """Decode block 0 (one text position): its token says which layout the reply takes."""
    ids = yield from decoder.steps_of(text_block(decoder.model.config, [PAD]), "text", 0, steps=1)
    first = int(ids[0, 0])
    layout = "image" if first == IMAGE_START else "audio" if first == AUDIO_START else "text"
    return layout, first


def generate(model: OmniModel, prompt: SequenceBuilder | Sequence, options: DecodeOptions =
             DecodeOptions(), generator: torch.Generator | None = None, layout: str | None = None,
             on_step: Callable[[StepEvent], None] | None = None, **kwargs) -> Generated:
    """`iter_generate` run to the end; `on_step` sees every step."""
    return _drain(iter_generate(model, prompt, options, generator, layout, **kwargs), on_step)


@torch.no_grad()  # torch re-enters it on every resume of the generator
def iter_generate(model: OmniModel, prompt: SequenceBuilder | Sequence,
                  options: DecodeOptions = DecodeOptions(),
                  generator: torch.Generator | None = None, layout: str | None = None, *,
                  uncond_prompt: SequenceBuilder | Sequence | None = None,
                  reuse: PromptCache | None = None) -> Gen[StepEvent, None, Generated]:
    """A whole reply, yielding a `StepEvent` per denoising step. `layout` forces text / image /
    audio (the first block is then written, not predicted); by default the model decides.
    `uncond_prompt` enables guidance (`options.guidance_for`) of image / audio codes;
    `reuse` is an earlier turn's `Generated.state`. A causal checkpoint (the autoregressive
    baseline) is decoded token by token instead (`autoregressive.iter_generate_ar`)."""
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
    if model.config.causal:  # the autoregressive baseline reads token i off state i - 1
        from nextomni.model.autoregressive import iter_generate_ar

        return (yield from iter_generate_ar(model, prompt, options, generator, layout))
    started = time.perf_counter()
    seq = _built(prompt)
    dec = BlockDecoder(model, seq, options, generator, reuse=reuse)
    c = model.config
    if layout in ("image", "audio"):  # forced: write the opening marker
        first = IMAGE_START if layout == "image" else AUDIO_START
        yield from dec.steps_of(text_block(c, [first], fixed=True), layout, 0)
    else:
        decided, first = yield from decide_layout(dec)
        layout = layout or decided
    uncond = None
    scale = options.guidance_for(layout)
    if uncond_prompt is not None and scale > 0:
        # guidance is for codes: the unconditional decoder starts once the reply is known
        # to be an image or speech, from the same opening marker
        uncond = BlockDecoder(model, _built(uncond_prompt), options, generator)
        opening = text_block(c, [first], fixed=True)
        uncond._commit({**uncond._as_tensors(opening)})
        dec.uncond, dec.guidance = uncond, scale
    text_ids = [first] if layout == "text" else []
    image = audio = None
    if layout == "text":
        text_ids = yield from _decode_text(dec, text_ids, options)
    elif layout == "image":
        blank = torch.zeros(c.image_positions, c.image_groups, dtype=torch.long)
        image = yield from dec.steps_of(code_block(c, blank, IMAGE), "image", 1)
        image = image[:, : c.image_groups].cpu()
        yield from dec.steps_of(closing_block(c, IMAGE_END), "image", 2)
    else:
        audio = yield from _decode_audio(dec, options)
        yield from dec.steps_of(closing_block(c, AUDIO_END), "audio", 2)
    stats = {**dec.stats, "layout": layout, "latency_s": time.perf_counter() - started,
             "response_positions": int(dec.seq["kind"].shape[1] - len(seq))}
    if uncond is not None:
        stats["guidance_forward_passes"] = uncond.stats["forward_passes"]
    return Generated(layout, text_ids, image, audio, stats, dec.state())


def reply_capacity(c: OmniConfig, options: DecodeOptions) -> int:
    """The most positions a reply can take (the size of a static cache beyond the prompt):
    the layout block, then the longest of text, image and speech, then a closing block."""
    size = options.block_size or c.block_size
    text = (options.max_text_blocks if options.dynamic else options.fixed_blocks) * size
    audio = (options.max_audio_blocks if options.dynamic else options.fixed_blocks) * size
    return 1 + max(text, c.image_positions, audio) + c.block_size


def _built(prompt: SequenceBuilder | Sequence) -> Sequence:
    return prompt.build() if isinstance(prompt, SequenceBuilder) else prompt


def _decode_text(dec: BlockDecoder, text_ids: list[int], options: DecodeOptions):
    """Text blocks until one holds `<eos>` (dynamic), or a fixed number of them."""
    c = dec.model.config
    if text_ids and text_ids[0] == EOS:
        return []
    size = options.block_size or c.block_size
    limit = options.max_text_blocks if options.dynamic else options.fixed_blocks
    for i in range(limit):
        ids = yield from dec.steps_of(text_block(c, [PAD] * size), "text", i + 1)
        text_ids += ids[:, 0].tolist()
        if options.dynamic and EOS in text_ids:
            break
    return text_ids[: text_ids.index(EOS)] if EOS in text_ids else text_ids


def _decode_audio(dec: BlockDecoder, options: DecodeOptions):
    """Audio blocks until one is entirely silence (dynamic), or a fixed number of them;
    trailing silence is dropped."""
    c = dec.model.config
    silence = torch.tensor(c.audio_silence)
    size = options.block_size or c.block_size
    blocks = []
    limit = options.max_audio_blocks if options.dynamic else options.fixed_blocks
    for i in range(limit):
        blank = torch.zeros(size, c.audio_groups, dtype=torch.long)
        codes = yield from dec.steps_of(code_block(c, blank, AUDIO, i * size), "audio", i + 1)
        codes = codes[:, : c.audio_groups].cpu()
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
