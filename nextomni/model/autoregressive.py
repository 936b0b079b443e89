"""Next-token decoding of the causal baseline (config.causal), with a key/value cache.

The reply follows the same layout as DFM replies (`sequence.response_blocks`), one token per
forward pass: the state at the last position picks the next token through the head of that
position's kind (text: LM head; image / audio: the sub-code head), the token is appended
and its keys/values cached. Text stops at `<eos>`; an image is its grid^2 positions; speech
stops after a block's worth of silence (the layout ends speech with a silent block).
Yields one `StepEvent` per token so the engine streams both modes alike.
"""

from __future__ import annotations

from typing import Generator as Gen

import torch
from torch import Tensor

from nextomni.dfm import choose_x1
from nextomni.model.config import AUDIO, IMAGE, TEXT
from nextomni.model.decoding import DecodeOptions, DecodeStats, Generated, StepEvent, finished
from nextomni.model.layout import decide_layout, trim_silence
from nextomni.model.modeling import OmniModel
from nextomni.model.sequence import Sequence, SequenceBuilder
from nextomni.tokenizers.special import EOS


class NextToken:
    """A prompt plus the reply so far, with the state that predicts the next token."""

    def __init__(self, model: OmniModel, prompt: Sequence, options: DecodeOptions,
                 generator: torch.Generator | None):
        from transformers import DynamicCache

        self.model, self.opt, self.generator = model, options, generator
        self.device = next(model.parameters()).device
        self.cache = DynamicCache() if options.cache else None
        self.seq = {k: getattr(prompt, k).to(self.device)[None] for k in ("ids", "kind", "mpos")}
        self.stats = DecodeStats(mode="ar", device=str(self.device),
                                 seed=generator.initial_seed() if generator else None,
                                 prompt_positions=len(prompt))
        self.h = self._run(self.seq)

    def _run(self, part: dict) -> Tensor:
        """The last state after `part` (just `part` against the cache, or everything)."""
        if self.cache is not None:
            past = self.cache.get_seq_length()
            out = self.model(part["ids"], part["kind"], part["mpos"], past_key_values=self.cache,
                             past_segment=torch.zeros(1, past, dtype=torch.long,
                                                      device=self.device) if past else None,
                             use_cache=True)
            n = part["kind"].shape[1]
        else:
            past, n = 0, self.seq["kind"].shape[1]
            out = self.model(self.seq["ids"], self.seq["kind"], self.seq["mpos"])
        self.stats.forward_passes += 1
        self.stats.positions_computed += n
        self.stats.cache_hits += past
        return out.last_hidden_state[0, -1]

    def choose(self, logits: Tensor) -> Tensor:
        return choose_x1(logits.float(), self.opt.temperature, self.opt.top_k, self.generator)

    def next(self, kind: int, banned: tuple[int, ...] = ()) -> Tensor:
        """The next position's ids [G] if it is of `kind` (text never one of `banned`)."""
        c, h = self.model.config, self.h[None]
        row = torch.zeros(c.max_groups, dtype=torch.long, device=self.device)
        if kind == TEXT:
            logits = self.model.lm_head(h)
            if banned:
                logits[..., list(banned)] = float("-inf")
            row[0] = self.choose(logits)[0]
        elif kind == IMAGE:
            row[: c.image_groups] = self.model.image_head.sample(h, self.choose)[0]
        else:
            row[: c.audio_groups] = self.model.audio_head.sample(h, self.choose)[0]
        self.stats.steps += 1
        self.stats.blocks += 1
        return row

    def opening(self, banned: tuple[int, ...] = ()) -> Gen[StepEvent, None, list[int]]:
        """The reply's layout position (the baseline's opening is that token alone),
        streamed, not yet pushed."""
        row = self.next(TEXT, banned)
        yield _event(row, "text", 0)
        return [int(row[0])]

    def push(self, row: Tensor, kind: int, mpos: int = 0) -> None:
        part = {"ids": row.reshape(1, 1, -1).to(self.device),
                "kind": torch.full((1, 1), kind, device=self.device),
                "mpos": torch.full((1, 1), mpos, device=self.device)}
        self.seq = {k: torch.cat([self.seq[k], part[k]], 1) for k in self.seq}
        self.h = self._run(part)


def _event(row: Tensor, layout: str, index: int) -> StepEvent:
    r = row[None, :].cpu()
    return StepEvent(layout, index, 1, 1, r, r, final=True)  # a token is final once chosen


@torch.no_grad()  # torch re-enters it on every resume of the generator
def iter_generate_ar(model: OmniModel, prompt: SequenceBuilder | Sequence,
                     options: DecodeOptions = DecodeOptions(),
                     generator: torch.Generator | None = None, layout: str | None = None
                     ) -> Gen[StepEvent, None, Generated]:
    """A whole reply token by token; the contract of `generate.iter_generate`, which is the
    entry point (it picks this decoder for a causal checkpoint)."""
    prompt = prompt.build() if isinstance(prompt, SequenceBuilder) else prompt
    dec = NextToken(model, prompt, options, generator)
    c = model.config
    layout, (tok,) = yield from decide_layout(layout, dec.opening)
    first = torch.zeros(c.max_groups, dtype=torch.long)
    first[0] = tok
    text_ids, image, audio = [], None, None
    if layout == "text":
        text_ids = yield from _text(dec, first, options)
    elif layout == "image":
        dec.push(first, TEXT)
        rows = []
        for p in range(c.image_positions):
            row = dec.next(IMAGE)
            yield _event(row, "image", p + 1)
            rows.append(row[: c.image_groups])
            dec.push(row, IMAGE, p)
        image = torch.stack(rows).cpu()
    else:
        dec.push(first, TEXT)
        audio = yield from _audio(dec, options)
    dec.stats.response_positions = int(dec.seq["kind"].shape[1] - len(prompt))
    return finished(layout, text_ids, image, audio, dec.stats)


def _text(dec: NextToken, row: Tensor, options: DecodeOptions):
    """Tokens until `<eos>`, or as many as the text blocks hold."""
    text_ids = []
    limit = options.max_text_blocks * (options.block_size or dec.model.config.block_size)
    while int(row[0]) != EOS and len(text_ids) < limit:
        text_ids.append(int(row[0]))
        dec.push(row, TEXT)
        row = dec.next(TEXT)
        yield _event(row, "text", len(text_ids))
    return text_ids


def _audio(dec: NextToken, options: DecodeOptions):
    """Audio positions until a block's worth of silence (dynamic), or as many as the audio
    blocks hold; trailing silence dropped."""
    c = dec.model.config
    size = c.block_size
    silence = torch.tensor(c.audio_silence, device=dec.device)
    rows, quiet = [], 0
    limit = options.max_audio_blocks * (options.block_size or size)
    while len(rows) < limit:
        row = dec.next(AUDIO)
        yield _event(row, "audio", len(rows) + 1)
        rows.append(row[: c.audio_groups])
        quiet = quiet + 1 if bool((row[: c.audio_groups] == silence).all()) else 0
        if options.dynamic and quiet >= size:
            break
        dec.push(row, AUDIO, len(rows) - 1)
    return trim_silence(torch.stack(rows).cpu(), c.audio_silence)
