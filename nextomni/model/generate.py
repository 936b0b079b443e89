"""A whole reply: block by block with DFM, or token by token for the causal baseline.

A reply is laid out as training taught it (`sequence.response_blocks`):

    1. position 0 says what the reply is (`layout`): `<|image_start|>`, `<|audio_start|>`
       or the first word of a text reply; the model's choice unless the caller fixes it. It
       opens the opening block (`OmniConfig.opening_block` positions), which holds the start
       of a text reply, so a short answer ends in it;
    2. text grows by blocks until a block holds `<eos>`; an image is one block of grid^2
       positions; speech grows by blocks until a block is silent;
    3. closing markers (`<|image_end|>` / `<|audio_end|>`, `<eos>`) are written, not sampled.

`iter_generate` is a generator of `StepEvent`s (for streaming) that returns the `Generated`
reply; `generate` runs it to the end. Which decoder runs is chosen here, once, from the
checkpoint: a causal one (the autoregressive baseline) is decoded by `autoregressive`, any
other by `block_decoder`. The parts live in their own modules: options, events and results in
`decoding`, the cache choice in `prompt_cache`, the layout in `layout`.
"""

from __future__ import annotations

import time
from typing import Callable, Generator as Gen

import torch

from nextomni.model.autoregressive import iter_generate_ar
from nextomni.model.block_decoder import BlockDecoder
from nextomni.model.config import AUDIO, IMAGE
from nextomni.model.decoding import (
    LAYOUTS, DecodeOptions, Generated, StepEvent, drain, finished,
)
from nextomni.model.layout import check_layout, decide_layout, trim_silence
from nextomni.model.modeling import OmniModel
from nextomni.model.prompt_cache import PromptCache
from nextomni.model.sequence import (
    Sequence, SequenceBuilder, closing_block, code_block, text_block,
)
from nextomni.tokenizers.special import AUDIO_END, EOS, IMAGE_END, PAD

__all__ = ["generate", "iter_generate", "DecodeOptions", "Generated", "StepEvent", "LAYOUTS",
           "PromptCache"]


def generate(model: OmniModel, prompt: SequenceBuilder | Sequence, options: DecodeOptions =
             DecodeOptions(), generator: torch.Generator | None = None, layout: str | None = None,
             on_step: Callable[[StepEvent], None] | None = None, **kwargs) -> Generated:
    """`iter_generate` run to the end; `on_step` sees every step."""
    return drain(iter_generate(model, prompt, options, generator, layout, **kwargs), on_step)


def iter_generate(model: OmniModel, prompt: SequenceBuilder | Sequence,
                  options: DecodeOptions = DecodeOptions(),
                  generator: torch.Generator | None = None, layout: str | None = None, *,
                  uncond_prompt: SequenceBuilder | Sequence | None = None,
                  reuse: PromptCache | None = None) -> Gen[StepEvent, None, Generated]:
    """A whole reply, yielding a `StepEvent` per denoising step (per token for the causal
    baseline). `layout` fixes text / image / audio; None lets the model choose.
    `uncond_prompt` enables guidance (`options.guidance_for`) of image / audio codes, and
    `reuse` is an earlier turn's `Generated.state` (DFM only: the baseline has neither).
    The reply's `stats.latency_s` is the time spent decoding, not waiting for the consumer;
    `stats.cpu_s` the decoding thread's CPU time of it (torch's pool on one thread)."""
    check_layout(layout)
    seq = prompt.build() if isinstance(prompt, SequenceBuilder) else prompt
    if model.config.causal:  # the autoregressive baseline reads token i off state i - 1
        steps = iter_generate_ar(model, seq, options, generator, layout)
    else:
        steps = _iter_dfm(model, seq, options, generator, layout, uncond_prompt, reuse)
    busy = cpu = 0.0
    while True:
        started, started_cpu = time.perf_counter(), time.thread_time()
        try:
            event = next(steps)
        except StopIteration as stop:
            out = stop.value
            out.stats.latency_s = busy + time.perf_counter() - started
            out.stats.cpu_s = cpu + time.thread_time() - started_cpu
            return out
        busy += time.perf_counter() - started
        cpu += time.thread_time() - started_cpu
        yield event


@torch.no_grad()  # torch re-enters it on every resume of the generator
def _iter_dfm(model: OmniModel, seq: Sequence, options: DecodeOptions,
              generator: torch.Generator | None, layout: str | None,
              uncond_prompt: SequenceBuilder | Sequence | None,
              reuse: PromptCache | None) -> Gen[StepEvent, None, Generated]:
    dec = BlockDecoder(model, seq, options, generator, reuse=reuse)
    c = model.config
    layout, opening = yield from decide_layout(layout, dec.opening, c.opening_block)
    dec.write(text_block(c, opening))
    scale = options.guidance_for(layout)
    if uncond_prompt is not None and scale > 0:
        # guidance is for codes: the unconditional decoder starts once the reply is known
        # to be an image or speech, from the same opening marker
        if isinstance(uncond_prompt, SequenceBuilder):
            uncond_prompt = uncond_prompt.build()
        uncond = BlockDecoder(model, uncond_prompt, options, generator)
        uncond.write(text_block(c, opening))
        dec.guide(uncond, scale)
    text_ids, image, audio = [], None, None
    if layout == "text":
        text_ids = yield from _decode_text(dec, opening, options)
    elif layout == "image":
        blank = torch.zeros(c.image_positions, c.image_groups, dtype=torch.long)
        image = yield from dec.steps_of(code_block(c, blank, IMAGE), "image", 1,
                                        steps=options.image_steps)
        image = image[:, : c.image_groups].cpu()
        yield from dec.steps_of(closing_block(c, IMAGE_END), "image", 2)
    else:
        audio = yield from _decode_audio(dec, options)
        yield from dec.steps_of(closing_block(c, AUDIO_END), "audio", 2)
    stats = dec.stats
    stats.response_positions = int(dec.seq["kind"].shape[1] - len(seq))
    if dec.uncond is not None:
        stats.guidance_forward_passes = dec.uncond.stats.forward_passes
    return finished(layout, text_ids, image, audio, stats, dec.state())


def _decode_text(dec: BlockDecoder, text_ids: list[int], options: DecodeOptions):
    """Text blocks after the opening one (`text_ids`) until one holds `<eos>` (dynamic), or
    a fixed number of them."""
    c = dec.model.config
    text_ids = list(text_ids)
    if EOS in text_ids:
        return text_ids[: text_ids.index(EOS)]
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
