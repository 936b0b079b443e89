"""Which key/value cache a reply decodes with: none, a fresh one, or an earlier turn's.

Attention is block-causal, so a finished segment's keys and values never change: the cache is
exact, and across the turns of a chat the keys/values of the earlier turns are reused too (they
depend only on their own and earlier segments, which the next prompt repeats verbatim).
With `graphs` the cache is preallocated (`graphs.StaticCache`) and its captured text steps
travel with it, so the next turns replay them without capturing again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from nextomni.model.config import OmniConfig
from nextomni.model.decoding import DecodeOptions
from nextomni.model.graphs import StaticCache


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
class CacheChoice:
    cache: object | None           # None: every step recomputes the whole sequence
    reused: int = 0                # leading prompt positions it already holds
    text_steps: dict = field(default_factory=dict)  # captured steps that came with it


def choose_cache(model, seq: dict, options: DecodeOptions,
                 reuse: PromptCache | None = None) -> CacheChoice:
    """The cache for decoding after the prompt `seq` (ids / kind / mpos / segment, [1, L]).

    An earlier turn's cache is taken over, cropped to the positions this prompt repeats. A
    static cache (and its captured steps) is taken over whenever the reply fits in it, even
    with no position to reuse; it never serves the dynamic mode, nor a dynamic cache the
    static one."""
    if not options.cache:
        return CacheChoice(None)
    from transformers import DynamicCache

    capacity = seq["kind"].shape[1] + reply_capacity(model.config, options)
    reused = reuse.reusable(seq) if reuse is not None else 0
    static = reuse is not None and isinstance(reuse.cache, StaticCache)
    recycle = options.graphs and static and reuse.cache.capacity >= capacity
    if static != recycle:
        reused = 0
    if reused or recycle:
        extra = reuse.cache.get_seq_length() - reused
        if extra:
            reuse.cache.crop(-extra)
        return CacheChoice(reuse.cache, reused, reuse.steps if recycle else {})
    if options.graphs:
        # sized in powers of two (at least 1024 positions), so the next turns of a chat fit
        # in it and replay the steps captured for it
        bucket = max(1024, 1 << (capacity - 1).bit_length())
        device = next(model.parameters()).device
        return CacheChoice(StaticCache(model.backbone.config, bucket, device,
                                       model.backbone.embed_tokens.weight.dtype))
    return CacheChoice(DynamicCache())


def reply_capacity(c: OmniConfig, options: DecodeOptions) -> int:
    """The most positions a reply can take (the size of a static cache beyond the prompt):
    the layout block, then the longest of text, image and speech, then a closing block."""
    size = options.block_size or c.block_size
    text = (options.max_text_blocks if options.dynamic else options.fixed_blocks) * size
    audio = (options.max_audio_blocks if options.dynamic else options.fixed_blocks) * size
    return 1 + max(text, c.image_positions, audio) + c.block_size
