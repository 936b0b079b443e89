"""What a decode takes and gives: its options, the events it streams, the reply and what the
reply cost. Shared by the block decoder (DFM) and the next-token decoder (the causal baseline),
so the engine, the eval and the benchmarks read both alike.

`DecodeOptions` holds no checks of its own: user input is checked once, by the engine's
`Settings`; the sampler refuses impossible values (no steps, a negative temperature) itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Generator as Gen

from torch import Tensor

LAYOUTS = ("text", "image", "audio")  # what a reply can be


@dataclass(frozen=True)
class DecodeOptions:
    steps: int = 16               # Euler steps per block (at most)
    image_steps: int | None = None  # Euler steps of an image block; None: `steps`
    temperature: float = 0.0      # 0: greedy
    top_k: int | None = None
    confidence: float = 0.9       # stop a block once every choice is this sure (1: never early)
    settle: bool = False          # also stop a block once its prediction repeats a step
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
class DecodeStats:
    """What one reply cost, counted by its decoder and passed on unchanged: the engine hands
    it to the app, which stores `to_dict()` with the turn (so the names are the stored ones)."""

    mode: str = "dfm"             # "dfm", or "ar" for the causal baseline
    layout: str = ""              # text / image / audio, once known
    seed: int | None = None       # the seed the generator started from (None: no generator)
    device: str = "cpu"
    steps: int = 0                # denoising steps (AR: tokens) over all blocks
    blocks: int = 0               # blocks denoised (fixed ones, written not sampled, excluded)
    tokens: int = 0               # reply length: text tokens, image or audio positions
    forward_passes: int = 0
    positions_computed: int = 0   # positions run through the backbone
    cache_hits: int = 0           # cached positions attended to, over all forward passes
    prompt_positions: int = 0
    prompt_reused: int = 0        # prompt positions taken from an earlier turn's cache
    response_positions: int = 0   # positions the reply added to the sequence
    guidance_forward_passes: int = 0  # forward passes over the unconditional prompt
    latency_s: float = 0.0        # time spent decoding (not waiting for the consumer)
    cpu_s: float = 0.0            # the decoding thread's CPU time of it: other work on the
                                  # machine moves it less than the wall-clock latency

    @property
    def tokens_per_s(self) -> float | None:
        return round(self.tokens / self.latency_s, 2) if self.latency_s > 0 else None

    def to_dict(self) -> dict:
        """Plain JSON, as stored with a turn."""
        return {**asdict(self), "latency_s": round(self.latency_s, 4),
                "cpu_s": round(self.cpu_s, 4),
                "tokens_per_s": self.tokens_per_s}


@dataclass
class StepEvent:
    """Progress inside a block, for streaming: current tokens and predicted data."""

    layout: str
    block: int
    step: int
    total: int
    x_t: Tensor                    # [n, G] current block tokens
    x1: Tensor                     # [n, G] predicted block tokens
    final: bool = False            # the block's last step: x_t holds its final tokens


@dataclass
class Generated:
    layout: str
    text_ids: list[int]           # reply text up to <eos>
    image_codes: Tensor | None    # [grid^2, G] or None
    audio_codes: Tensor | None    # [P, G] without trailing silence, or None
    stats: DecodeStats = field(default_factory=DecodeStats)
    state: object | None = None   # a `PromptCache` of prompt + reply, to start the next turn from


def finished(layout: str, text_ids: list[int], image: Tensor | None, audio: Tensor | None,
             stats: DecodeStats, state=None) -> Generated:
    """The reply, its statistics completed with what only the end knows (layout, length)."""
    stats.layout = layout
    stats.tokens = {"text": len(text_ids), "image": 0 if image is None else len(image),
                    "audio": 0 if audio is None else len(audio)}[layout]
    return Generated(layout, text_ids, image, audio, stats, state)


def drain(gen: Gen, on_step: Callable | None = None):
    """Run a generator to the end, handing what it yields to `on_step`; its return value."""
    while True:
        try:
            event = next(gen)
        except StopIteration as stop:
            return stop.value
        if on_step is not None:
            on_step(event)
