"""OmniEngine: a loaded checkpoint behind the interface the app, the session store, the
benchmarks and the tests use (DESIGN.md section 6).

    engine = OmniEngine.load("checkpoints/nano")
    for event in engine.chat([Message("user", ["draw a red circle"])], Settings(seed=1)):
        ...   # Progress per step, then TextSegment / ImageSegment / AudioSegment, then Finished

Decisions recorded here:
- One reply holds one segment (text, an image or speech): that is what the nano model was
  trained to produce; its kind is the model's own choice (its first token) unless
  `Settings.reply` fixes it.
- A `session` key keeps the keys/values of the conversation so far; the next turn reuses the
  exact prefix (see `model.prompt_cache.PromptCache`) and computes only what is new.
- The decoder's statistics (`model.decoding.DecodeStats`) reach `Finished` as they came; the
  engine adds only its own time, spent turning tokens into text, previews and media.
- When a conversation outgrows the model's positions the oldest turns are left out (a system
  message stays); a single message too long to fit is refused with its length.
- `mode="ar"` decodes the autoregressive baseline (a causal checkpoint given as `baseline`)
  token by token with a key/value cache (`model.autoregressive`), behind the same events.
- Model calls are serialised by a lock, step by step (the app's queue runs one reply at a
  time anyway).
- On a CPU the model computes with all cores but one (`cpu_threads`): the web server, the
  page's media and the speech stream's encoder run beside it, and a thread pool as wide as
  the machine stalls on every operation whenever anything else runs (on 2 cores an image
  reply took 0.8 s on one thread and 17 s on two while one other process was busy; idle,
  0.43 s on one and 0.51 s on two). numpy's BLAS (under the speech decoder) gets as many:
  on 2 cores its second thread spun through 30% more CPU for no shorter speech replies.
- Speech streams: once a speech block is final its waveform rides on that step's
  `Progress.audio` (`engine.streams`); the whole reply still comes as one `AudioSegment`.
- `warm_up()` does once, at start, the first-time work of the media decoders (the first
  speech decode compiles librosa's kernels: ~3 s of CPU), so the first speech reply does not.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from nextomni.chat import Part, Turn
from nextomni.engine.events import (
    AudioSegment, Event, Finished, ImageSegment, Progress, TextSegment,
)
from nextomni.engine.messages import MessageError, as_part, to_turns
from nextomni.engine.settings import Settings, SettingsError
from nextomni.engine.streams import AudioStream, TextStream, image_preview
from nextomni.model.embedding import embed_parts
from nextomni.model.generate import DecodeOptions, StepEvent, iter_generate
from nextomni.model.loading import load_checkpoint

log = logging.getLogger("nextomni.engine")

NULL_PROMPT = "<|null|>"  # the unconditional prompt guidance was trained with
KEPT_SESSIONS = 16          # conversations whose keys/values are kept ...
KEPT_POSITIONS = 64 * 1024  # ... and at most this many positions of them in all


@dataclass
class Hit:
    index: int
    score: float


class OmniEngine:
    def __init__(self, model, fmt, *, name: str = "", quantization: str | None = None,
                 baseline=None):
        self.model, self.fmt = model, fmt
        self.baseline = baseline  # (model, formatter) of the causal baseline, or None
        self.name, self.quantization = name, quantization
        self.device = next(model.parameters()).device
        # CUDA graphs for text steps: on one GPU (a model sharded over several keeps the
        # dynamic cache, whose layers follow their devices)
        self.graphs = self.device.type == "cuda" and \
            len({p.device for p in model.parameters()}) == 1
        self._states: OrderedDict = OrderedDict()
        self._lock = threading.RLock()

    @classmethod
    def load(cls, path_or_hub_id: str = "checkpoints/nano", device: str = "auto",
             quantization: str | None = None, baseline: str | None = None) -> "OmniEngine":
        """A checkpoint folder or hub id; `device="auto"` takes the GPU(s) when present (a
        large backbone is sharded over several) and the CPU otherwise."""
        started = time.perf_counter()
        model, fmt = load_checkpoint(path_or_hub_id, device=device, quantization=quantization)
        base = load_checkpoint(baseline, device=device, quantization=quantization) \
            if baseline else None
        if base is not None and not base[0].config.causal:
            raise ValueError(f"{baseline} is not an autoregressive (causal) checkpoint")
        if next(model.parameters()).device.type == "cpu":
            from threadpoolctl import threadpool_limits

            torch.set_num_threads(cpu_threads())
            threadpool_limits(cpu_threads(), user_api="blas")  # numpy's, under the decoders
        log.info("loaded %s on %s in %.1f s", path_or_hub_id, next(model.parameters()).device,
                 time.perf_counter() - started)
        return cls(model, fmt, name=str(path_or_hub_id), quantization=quantization,
                   baseline=base)

    def warm_up(self) -> None:
        """Decode a block of silence and a blank picture once, so that the first reply of
        each kind does not pay for the decoders' first-time work."""
        c = self.model.config
        with self._lock:
            self.fmt.tok.audio.decode(torch.tensor(c.audio_silence).expand(c.block_size, -1))
            self.fmt.tok.image.decode(torch.zeros(1, c.image_positions, c.image_groups,
                                                  dtype=torch.long))

    # ------------------------------------------------------------------ info
    def info(self) -> dict:
        c = self.model.config
        return {"model": self.name, "device": str(self.device), "quantization": self.quantization,
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "block_size": c.block_size, "max_positions": c.max_positions,
                "image_size": self.fmt.tok.image.config.image_size,
                "ar_baseline": self.baseline is not None}

    # ------------------------------------------------------------------ chat
    def chat(self, messages, settings: Settings | dict | None = None,
             session: str | None = None) -> Iterator[Event]:
        """Answer the last (user) message. Bad messages or settings raise `MessageError` /
        `SettingsError` (and unreadable files `MediaError`) before any work starts."""
        settings = Settings.from_dict(settings)
        turns = to_turns(messages)
        model, fmt = self._pick(settings.mode)
        options = self.options(settings, model.config)
        prompt = self._fit(fmt, turns, options, settings.max_tokens)
        uncond = fmt.prompt([Turn("user", [Part("text", NULL_PROMPT)])]) \
            if options.guided else None
        return self._run(model, fmt, prompt, uncond, options, settings, session)

    def _run(self, model, fmt, prompt, uncond, options, settings, session):
        """The lock is held for each step, never across a `yield`: a consumer that stops
        iterating (a closed browser tab) cannot block the next reply."""
        key = (session, settings.mode)
        with self._lock:
            reuse = self._states.pop(key, None) if session is not None and options.cache else None
        generator = torch.Generator(self.device).manual_seed(settings.seed)
        steps = iter_generate(model, prompt, options, generator, settings.layout,
                              uncond_prompt=uncond, reuse=reuse)
        text, speech = TextStream(fmt), AudioStream(fmt)
        media = 0.0  # time spent turning tokens into text, previews and media
        while True:
            with self._lock:
                try:
                    event = next(steps)
                except StopIteration as stop:
                    out = stop.value
                    break
                t0 = time.perf_counter()
                progress = self._progress(event, fmt, text, speech)
                media += time.perf_counter() - t0
            yield progress
        with self._lock:
            t0 = time.perf_counter()
            segments = list(self._segments(out, fmt))
            media += time.perf_counter() - t0
            if session is not None and out.state is not None:
                self._keep(key, out.state)
        yield from segments
        yield Finished(out.stats, media_s=media)

    def _keep(self, key, state) -> None:
        """Remember a conversation's cache; the oldest go first beyond the budget."""
        self._states[key] = state
        while len(self._states) > 1 and (
                len(self._states) > KEPT_SESSIONS
                or sum(_held(s) for s in self._states.values()) > KEPT_POSITIONS):
            self._states.popitem(last=False)

    def forget(self, session: str) -> None:
        """Drop a session's cached keys/values (its history was edited or deleted)."""
        with self._lock:
            for key in [k for k in self._states if k[0] == session]:
                del self._states[key]

    def options(self, s: Settings, config) -> DecodeOptions:
        if s.mode == "ar":  # next-token decoding: one-token blocks, one step each
            size, steps, image_steps, confidence = 1, 1, 1, 1.0
            opening = 0  # the baseline counts its first token among the blocks' tokens
        else:
            size, steps, image_steps = s.block_size or config.block_size, s.steps, s.image_steps
            confidence = s.confidence
            opening = config.opening_block  # text the opening block holds, before the blocks
        text_blocks = math.ceil(max(0, s.max_tokens - opening) / size)
        audio_blocks = math.ceil(2 * s.max_tokens / size)
        return DecodeOptions(steps=steps, image_steps=image_steps, temperature=s.temperature,
                             confidence=confidence, settle=s.settle,
                             max_text_blocks=text_blocks, max_audio_blocks=audio_blocks,
                             fixed_blocks=text_blocks, cache=s.cache, dynamic=s.dynamic,
                             guidance=s.guidance, speech_guidance=s.speech_guidance,
                             block_size=size, graphs=self.graphs and s.cache)

    def _pick(self, mode: str):
        if mode == "ar":
            if self.baseline is None:
                raise SettingsError("mode 'ar' needs the autoregressive baseline; start the app "
                                    "with --baseline checkpoints/nano-ar")
            return self.baseline
        return self.model, self.fmt

    def _fit(self, fmt, turns: list[Turn], options: DecodeOptions, max_tokens: int):
        """The prompt, leaving out the oldest turns when the conversation outgrows the model."""
        c = fmt.config
        size = options.block_size or c.block_size
        room = max(options.max_text_blocks * size, options.max_audio_blocks * size,
                   c.image_positions) + 2 * size + 8
        limit = c.max_positions - room
        if limit < 64:
            raise SettingsError(f"max_tokens={max_tokens} asks for a longer "
                                f"reply than this model's {c.max_positions} positions allow")
        system = [t for t in turns[:1] if t.role == "system"]
        rest = turns[len(system):]
        for start in range(len(rest)):
            if rest[start].role != "user":
                continue
            seq = fmt.prompt(system + rest[start:]).build()
            if len(seq) <= limit:
                if start:
                    log.info("left out the %d oldest turn(s) to fit %d positions", start, limit)
                return seq
        n = len(fmt.prompt(system + rest[-1:]).build())
        raise MessageError(f"the message is too long: {n} positions, and this model reads at "
                           f"most {limit} in a prompt (shorten it or ask for a shorter reply)")

    # ------------------------------------------------------------------ events
    def _progress(self, ev: StepEvent, fmt, text: TextStream, speech: AudioStream) -> Progress:
        partial = text.update(ev) if ev.layout == "text" else ""
        return Progress(ev.layout, ev.block, ev.step, ev.total, partial, image_preview(ev, fmt),
                        speech.update(ev))

    def _segments(self, out, fmt):
        if out.layout == "text":
            yield TextSegment(fmt.tok.text.decode(out.text_ids))
        elif out.layout == "image":
            yield ImageSegment(fmt.tok.image.decode(out.image_codes[None])[0])
        else:
            yield AudioSegment(fmt.tok.audio.decode(out.audio_codes).astype(np.float32))

    # ------------------------------------------------------------------ retrieval
    def embed(self, part) -> np.ndarray:
        """The unified representation of one item (text, image, audio or video), unit length."""
        return self.embed_many([part])[0]

    def embed_many(self, parts, batch: int = 32) -> np.ndarray:
        parts = [as_part(p) for p in parts]
        with self._lock:
            return embed_parts(self.model, self.fmt, parts, batch).cpu().numpy()

    def search(self, query, gallery, top: int | None = None) -> list[Hit]:
        """Rank `gallery` items (any modality) by similarity to `query`, best first."""
        if not gallery:
            return []
        q = self.embed(query)
        scores = self.embed_many(gallery) @ q
        order = np.argsort(-scores, kind="stable")[:top]
        return [Hit(int(i), float(scores[i])) for i in order]


def cpu_threads(cpus: int | None = None) -> int:
    """Threads for the model on a CPU: every core but one, at least one."""
    cpus = cpus or os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), cpus - 1))


def _held(state) -> int:
    """Positions a kept cache holds memory for: a static cache its whole capacity."""
    return getattr(state.cache, "capacity", state.seq["kind"].shape[1])
