"""One prompt and the reply decoded so far, denoised one block at a time (DFM).

The model attends block-causally (see `sequence`), so the prompt and every finished block are
run once and cached (`prompt_cache`); each denoising step of the current block runs only that
block against the cache. Within a block the Euler sampler runs up to `steps` steps and stops
early once every position's choice is confident (probability >= `confidence`): easy blocks
take a step or two. With `settle`, a block also stops once the predicted block is the same
two steps running (it would most likely stay so; the output can differ, hence an option).

Committing is lazy: a block written (the prompt, the layout token, a finished block) is not
run on its own; its keys and values are computed in the same forward pass as the first step
of the next block, which sees it through the block-causal mask exactly as if it had been
cached first. A forward pass of 16 positions costs far less than 16 of one position (it
reads every weight and pays its per-call overhead once; the nano model on one CPU thread:
9 ms for 1 position, 15 ms for 17, 27 ms for 86), so this saves a pass per block; and what
the reply's last blocks would have cached is left to the next turn, which computes it with
its prompt. For the same reason a reply opens with a whole block when the model was trained
so (`OmniConfig.opening_block`): its layout token and the start of its text in one block.
"""

from __future__ import annotations

from typing import Generator as Gen

import torch
from torch import Tensor

from nextomni.dfm import choose_x1, draw_source, euler_steps, make_time_grid, space_masks
from nextomni.model.config import AUDIO, IMAGE, TEXT
from nextomni.model.decoding import DecodeOptions, DecodeStats, StepEvent
from nextomni.model.graphs import StaticCache, TextDenoiseStep
from nextomni.model.modeling import OmniModel
from nextomni.model.prompt_cache import PromptCache, choose_cache
from nextomni.model.sequence import Block, Sequence, text_block, variable_spaces
from nextomni.tokenizers.special import PAD


class BlockDecoder:
    """`steps_of(block)` denoises one more block and commits it; `write(block)` commits a
    block whose tokens are known. `reuse` starts from an earlier turn's cache. With `guide`,
    a decoder over the unconditional prompt follows every commit and guides the codes."""

    def __init__(self, model: OmniModel, prompt: Sequence, options: DecodeOptions,
                 generator: torch.Generator | None = None, reuse: PromptCache | None = None):
        self.model, self.opt, self.generator = model, options, generator
        self.uncond: BlockDecoder | None = None
        self.guidance = 0.0
        self.device = next(model.parameters()).device
        self.seq = {k: getattr(prompt, k).to(self.device)[None] for k in
                    ("ids", "kind", "mpos", "segment")}
        self.paths = [p.to(self.device) for p in model.paths()]
        self.stats = DecodeStats(mode="dfm", device=str(self.device),
                                 seed=generator.initial_seed() if generator else None,
                                 prompt_positions=len(prompt))
        chosen = choose_cache(model, self.seq, options, reuse)
        self.cache, self._text_steps = chosen.cache, chosen.text_steps
        self.stats.prompt_reused = chosen.reused  # the rest runs with the first step

    def guide(self, uncond: "BlockDecoder", scale: float) -> None:
        """Guide the codes of every later block against `uncond` with this scale."""
        self.uncond, self.guidance = uncond, scale

    def state(self) -> PromptCache | None:
        """The cache and the positions it holds (blocks still pending are not among them)."""
        if self.cache is None:
            return None
        held = self.cache.get_seq_length()
        return PromptCache({k: v[:, :held] for k, v in self.seq.items()}, self.cache,
                           self._text_steps)

    def _pending(self) -> dict | None:
        """Positions written but not yet cached (ids / kind / mpos / segment, [1, p])."""
        held = self.cache.get_seq_length()
        if held == self.seq["kind"].shape[1]:
            return None
        return {k: v[:, held:] for k, v in self.seq.items()}

    # ------------------------------------------------------------------ model calls
    def _count(self, n: int, cached: int) -> None:
        self.stats.forward_passes += 1
        self.stats.positions_computed += n
        self.stats.cache_hits += cached

    def _forward(self, part: dict, past: bool, keep: bool) -> Tensor:
        """Hidden states of `part`, attending to the cache when `past`; keeps its keys and
        values in the cache only when `keep`."""
        cached = self.cache.get_seq_length() if (past and self.cache is not None) else 0
        out = self.model(part["ids"], part["kind"], part["mpos"], segment=part["segment"],
                         past_key_values=self.cache,
                         past_segment=self.seq["segment"][:, :cached] if cached else None,
                         use_cache=self.cache is not None)
        n = part["kind"].shape[1]
        self._count(n, cached)
        if self.cache is not None and not keep:
            self.cache.crop(-n)
        return out.last_hidden_state

    def hidden(self, block: dict) -> Tensor:
        """Hidden states [n, H] of the current block's positions; the block is not kept,
        the pending positions before it are (computed in the same pass)."""
        n = block["kind"].shape[1]
        if self.cache is None:
            full = {k: torch.cat([self.seq[k], block[k]], 1) for k in self.seq}
            return self._forward(full, past=False, keep=False)[0, -n:]
        pending = self._pending()
        if pending is None:
            return self._forward(block, past=True, keep=False)[0]
        both = {k: torch.cat([pending[k], block[k]], 1) for k in block}
        h = self._forward(both, past=True, keep=True)[0, -n:]
        self.cache.crop(-n)
        return h

    def _commit(self, block: dict) -> None:
        """Append a block to the sequence; the cache takes it with the next forward pass."""
        self.seq = {k: torch.cat([self.seq[k], block[k]], 1) for k in self.seq}

    # ------------------------------------------------------------------ blocks
    def tensors(self, blk: Block) -> dict:
        """`blk` as the next segment of this sequence: ids / kind / mpos / segment, [1, n]."""
        seg = int(self.seq["segment"].max()) + 1
        return {"ids": torch.tensor(blk.ids, device=self.device)[None],
                "kind": torch.tensor(blk.kind, device=self.device)[None],
                "mpos": torch.tensor(blk.mpos, device=self.device)[None],
                "segment": torch.full((1, len(blk)), seg, device=self.device)}

    def write(self, blk: Block, ids: Tensor | None = None) -> Tensor:
        """Commit `blk` (with `ids` [n, G] in place of its own, if given), to the
        unconditional decoder too; its ids [n, G]."""
        block = self.tensors(blk)
        if ids is not None:
            block["ids"] = ids.reshape(block["ids"].shape)
        self._commit(block)
        if self.uncond is not None:
            self.uncond._commit({**self.uncond.tensors(blk), "ids": block["ids"]})
        return block["ids"][0]

    def opening(self, banned: tuple[int, ...] = ()) -> Gen[StepEvent, None, list[int]]:
        """The reply's opening block (`opening_block` text positions; its first says what the
        reply is), not yet written: one step when it is that token alone."""
        c = self.model.config
        ids = yield from self.denoise(text_block(c, [PAD] * c.opening_block), "text", 0,
                                      steps=1 if c.opening_block == 1 else None, banned=banned)
        return ids[:, 0].tolist()

    def steps_of(self, blk: Block, layout: str, index: int,
                 steps: int | None = None) -> Gen[StepEvent, None, Tensor]:
        """Denoise `blk` (its ids are ignored unless fixed), yielding every step; commit it;
        return its ids [n, G]."""
        if blk.fixed:
            return self.write(blk)
        ids = yield from self.denoise(blk, layout, index, steps)
        return self.write(blk, ids)

    def denoise(self, blk: Block, layout: str, index: int, steps: int | None = None,
                banned: tuple[int, ...] = ()) -> Gen[StepEvent, None, Tensor]:
        """Denoise `blk` without committing it, yielding every step; its ids [n, G]."""
        block = self.tensors(blk)
        n, g = block["ids"].shape[1:]
        x_init = block["ids"].reshape(1, n * g)
        space = variable_spaces(self.model.config, block["kind"]).reshape(1, n * g)
        fixed = space < 0
        total = steps or self.opt.steps
        if self._graphable(block, banned):
            final = yield from self._denoise_whole(block, layout, index, total, x_init, space,
                                                   fixed)
        else:
            step = BlockStep(self, blk, block, banned)
            final = before = None
            for state in euler_steps(step, x_init, self.paths, space=space, fixed=fixed,
                                     steps=total, generator=self.generator):
                self.stats.steps += 1
                done = self._done(state.step, total, step.confidence, state.x1, before)
                final, before = (state.x1 if done else state.x_t), state.x1
                yield StepEvent(layout, index, state.step, total, final.reshape(n, g),
                                state.x1.reshape(n, g), final=done)
                if done:
                    break
        self.stats.blocks += 1
        return torch.where(fixed, x_init, final).reshape(n, g)

    def _done(self, step: int, total: int, confidence: float, x1: Tensor,
              before: Tensor | None) -> bool:
        """Whether a block stops after this step: its last, every choice sure enough (never
        with `confidence` 1), or (with `settle`) the same prediction two steps running."""
        sure = self.opt.confidence < 1 and confidence >= self.opt.confidence
        settled = self.opt.settle and before is not None and torch.equal(x1, before)
        return step == total or sure or settled

    # ------------------------------------------------------------------ whole text steps
    def _graphable(self, block: dict, banned: tuple[int, ...]) -> bool:
        """Whether the block's steps run as `TextDenoiseStep`s (graphs on: a static cache, a
        backbone on one device with full attention in every layer): text only, nothing
        banned, and what waits to be cached is text of one segment (the step lets it attend
        within itself) and of a size that recurs: the layout token or the block before, not a
        prompt, whose every length would capture a graph of its own."""
        backbone = self.model.backbone
        if not isinstance(self.cache, StaticCache) or banned \
                or hasattr(backbone, "hf_device_map") \
                or getattr(backbone, "has_sliding_layers", False) \
                or bool((block["kind"] != TEXT).any()):
            return False
        pending = self._pending()
        if pending is None:
            return True
        p, segment = pending["kind"].shape[1], pending["segment"]
        return p in (1, block["kind"].shape[1]) and not bool((pending["kind"] != TEXT).any()) \
            and bool((segment == segment[:, :1]).all())

    def _denoise_whole(self, block: dict, layout: str, index: int, total: int,
                       x_init: Tensor, space: Tensor, fixed: Tensor
                       ) -> Gen[StepEvent, None, Tensor]:
        """`euler_steps` over an all-text block, each step one `TextDenoiseStep` (one graph
        replay on a GPU); the source drawn and the steps taken as `euler_steps` would."""
        n, g = block["ids"].shape[1:]
        masks = space_masks(space, x_init.shape, len(self.paths))
        x_t = draw_source(x_init, masks, fixed, self.paths, self.generator)
        grid = make_time_grid(total)
        pending = self._pending()
        x, before, final = x_t.reshape(n, g)[:, 0], None, None
        for i in range(total):
            t, t_next = float(grid[i]), float(grid[i + 1])
            p = 0 if pending is None else pending["kind"].shape[1]
            key = (n, p, t_next >= 1.0, self.opt.temperature, self.opt.top_k)
            if key not in self._text_steps:
                self._text_steps[key] = TextDenoiseStep(
                    self.model, self.cache, self.paths[0], n, pending=p, final=key[2],
                    temperature=self.opt.temperature, top_k=self.opt.top_k)
            self._count(p + n, self.cache.get_seq_length())
            x1, x, confidence = self._text_steps[key](
                None if pending is None else pending["ids"][0, :, 0], x, t, t_next - t,
                self.generator)
            pending = None
            self.stats.steps += 1
            # read back only when it decides something: each read waits for the device
            sure = float(confidence) if self.opt.confidence < 1 else 0.0
            done = self._done(i + 1, total, sure, x1, before)
            before = x1
            final = self._with(x_init, x1 if done else x)
            yield StepEvent(layout, index, i + 1, total, final, self._with(x_init, x1),
                            final=done)
            if done:
                break
        return final.reshape(1, n * g)

    @staticmethod
    def _with(x_init: Tensor, text: Tensor) -> Tensor:
        """x_init [1, n * G] as [n, G] with the text ids in column 0."""
        out = x_init.reshape(text.shape[0], -1).clone()
        out[:, 0] = text
        return out


class BlockStep:
    """The denoiser of one block: x_t -> x1, each position through the head of its kind (text:
    the LM head; image / audio: the sub-code head, guided when the decoder guides), never
    choosing a `banned` text id at the block's first position (a reply's opening, whose first
    token says what the reply is). `confidence` is the least sure choice of the last call."""

    def __init__(self, dec: BlockDecoder, blk: Block, block: dict, banned: tuple[int, ...]):
        self.dec, self.block, self.banned = dec, block, list(banned)
        m, c = dec.model, dec.model.config
        self.opt, self.generator = dec.opt, dec.generator
        guide = dec.uncond is not None and dec.guidance > 0
        self.ublock = dec.uncond.tensors(blk) if guide else None
        # which positions hold what, found once per block (each test waits for the device)
        kind = block["kind"][0]
        self.heads = [(sel, head, groups) for sel, head, groups in (
            (kind == IMAGE, m.image_head, c.image_groups),
            (kind == AUDIO, m.audio_head, c.audio_groups)) if bool(sel.any())]
        self.text = kind == TEXT
        self.all_text, self.any_text = bool(self.text.all()), bool(self.text.any())
        self.confidence = 1.0

    def choose(self, logits: Tensor) -> Tensor:
        probs = torch.softmax(logits.float(), -1)
        self.confidence = min(self.confidence, float(probs.max(-1).values.min()))
        return choose_x1(logits.float(), self.opt.temperature, self.opt.top_k, self.generator)

    def words(self, h: Tensor) -> Tensor:
        """Text ids of states h [m, H]."""
        logits = self.dec.model.lm_head(h)
        if self.banned:
            logits[0, self.banned] = float("-inf")
        return self.choose(logits)

    def __call__(self, x_t: Tensor) -> Tensor:
        """x_t [1, n * G] -> x1 [1, n * G] (tokens: the heads choose them)."""
        dec, block = self.dec, self.block
        n, g = block["ids"].shape[1:]
        self.confidence = 1.0
        ids = x_t.reshape(1, n, g)
        h = dec.hidden({**block, "ids": ids})
        h_u = dec.uncond.hidden({**self.ublock, "ids": ids}) \
            if self.ublock is not None and self.heads else None
        x1 = ids[0].clone()
        if self.all_text:
            x1[:, 0] = self.words(h)
        elif self.any_text:
            x1[self.text, 0] = self.words(h[self.text])
        for sel, head, groups in self.heads:
            x1[sel, :groups] = head.sample(h[sel], self.choose,
                                           h_u[sel] if h_u is not None else None, dec.guidance)
        return x1.reshape(1, n * g)
