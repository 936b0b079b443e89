"""A training step's data, prepared outside the model: examples as media, then sequences.

Examples come from a source: `LiveSource` makes them as they are needed (OmniWorld rendering,
eSpeak, video), `ExampleBank` reads them back from shards made once
(`python -m nextomni.data.bank`), so a step costs model compute only. Either way the step's
user speech is heard through a fresh room (`data/augment.py`), generation prompts are dropped
for guidance, and the formatter turns the media into sequences, as it does a user's upload.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from nextomni.chat import Part, Turn, text
from nextomni.data.augment import augment_speech
from nextomni.data.bank import ExampleBank, record_turns
from nextomni.data.mixture import STAGES, one_modality
from nextomni.data.splits import TRAIN_SEEDS
from nextomni.data.tasks import REPLY_MODALITY
from nextomni.model.formatting import ChatFormatter
from nextomni.model.sequence import Batch, collate
from nextomni.threads import one_thread
from nextomni.tokenizers.special import NULL, SPECIAL_TOKENS
from nextomni.train.config import OmniTrainConfig

GENERATION_TASKS = ("t2i", "a2i", "tts", "i2s", "edit")
READING_TASKS = tuple(t for t, m in REPLY_MODALITY.items() if m == "text")


class LiveSource:
    """Records made on demand from fresh training seeds (the same kinds a bank holds)."""

    def draw(self, task: str, rng: np.random.Generator) -> list[Turn]:
        return record_turns(task, int(rng.integers(TRAIN_SEEDS.start, TRAIN_SEEDS.stop)))


def source_of(cfg: OmniTrainConfig):
    return ExampleBank(cfg.bank) if cfg.bank is not None else LiveSource()


@dataclass
class Inputs:
    dfm: Batch              # response-target sequences of the stage's tasks
    pairs: Batch            # 2n embedding sequences: item, description, item, ...
    images: torch.Tensor    # [b, 3, S, S] for the image decoder's reconstruction
    mels: torch.Tensor      # [b, n_mels, T] for the audio decoder's reconstruction
    frames: torch.Tensor    # [b] valid mel frames

    def to(self, device) -> "Inputs":
        return Inputs(self.dfm.to(device), self.pairs.to(device), self.images.to(device),
                      self.mels.to(device), self.frames.to(device))


def drop_condition(turns: list[Turn]) -> list[Turn]:
    """The unconditional version of a generation example (classifier-free guidance)."""
    return [Turn("user", [text(SPECIAL_TOKENS[NULL])]), turns[-1]]


def heard(turns: list[Turn], rng: np.random.Generator, p: float) -> list[Turn]:
    """`turns` with each user utterance, with probability `p`, through `augment_speech`."""
    if p <= 0:
        return turns
    return [Turn(t.role, [Part("audio", augment_speech(x.value, rng))
                          if t.role == "user" and x.kind == "audio" and rng.random() < p
                          else x for x in t.parts]) for t in turns]


def step_mix(stage: str, step: int, cfg: OmniTrainConfig, rng) -> dict[str, float]:
    """The task weights of one step: the stage's (or --mix), reading tasks alone in the
    curriculum's first third, one reply modality with --one-modality."""
    mix = dict(cfg.mix or STAGES[stage])
    if cfg.curriculum and step < cfg.total_steps // 3:
        mix = {t: w for t, w in mix.items() if t in READING_TASKS} or mix
    return one_modality(mix, rng) if cfg.one_modality else mix


def dfm_batch(fmt: ChatFormatter, source, mix: dict[str, float], rng,
              cfg: OmniTrainConfig) -> Batch:
    """Examples of `mix` until the padded batch would exceed `batch_tokens` (so long
    multi-turn examples come a few at a time and short ones many, with little padding)."""
    names = [t for t, w in mix.items() if w > 0]
    weights = np.array([mix[t] for t in names], dtype=float)
    seqs: list = []
    longest = 0
    while len(seqs) < cfg.batch:
        task = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        turns = heard(source.draw(task, rng), rng, cfg.speech_augment)
        if cfg.causal:  # next-token targets over the whole reply; no guidance to learn
            s = fmt.encode_full(turns)
        else:
            if task in GENERATION_TASKS and rng.random() < cfg.cond_dropout:
                turns = drop_condition(turns)
            s = fmt.encode_all(turns) if cfg.all_blocks else fmt.encode(turns, rng)
        if len(s) > cfg.max_len:
            continue
        if seqs and (len(seqs) + 1) * max(longest, len(s)) > cfg.batch_tokens:
            break
        seqs.append(s)
        longest = max(longest, len(s))
    return collate(seqs)


def pair_batch(fmt: ChatFormatter, source, rng, n: int) -> Batch:
    """n (item, description) pairs: n // 3 sibling groups (two images one edit apart, hard
    negatives for each other), the rest of any modality."""
    groups = n // 3
    parts = [p for _ in range(groups) for p in source.draw("siblings", rng)[0].parts]
    parts += [p for _ in range(n - 2 * groups) for p in source.draw("pair", rng)[0].parts]
    return collate([fmt.embedding_sequence(p) for p in parts])


def mel_batch(fmt: ChatFormatter, source, rng, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    tok = fmt.tok.audio
    mels = [torch.from_numpy(tok.mel(source.draw("utterance", rng)[0].parts[0].value))
            for _ in range(n)]
    frames = torch.tensor([m.shape[1] for m in mels])
    c = tok.config
    silence = float((np.log(c.log_floor) - c.mel_mean) / c.mel_std)
    out = torch.full((n, c.n_mels, int(frames.max())), silence)
    for i, m in enumerate(mels):
        out[i, :, : m.shape[1]] = m
    return out, frames


def prepare_inputs(fmt: ChatFormatter, stage: str, rng, cfg: OmniTrainConfig, source=None,
                   step: int = 0) -> Inputs:
    source = source if source is not None else LiveSource()
    pictures = [p.value for _ in range(4) for p in source.draw("siblings", rng)[0].parts
                if p.kind == "image"]
    images = fmt.tok.image.to_tensor(np.stack(pictures)).cpu()
    mels, frames = mel_batch(fmt, source, rng, 2)
    mix = step_mix(stage, step, cfg, rng)
    return Inputs(dfm_batch(fmt, source, mix, rng, cfg),
                  pair_batch(fmt, source, rng, cfg.retrieval_pairs), images, mels, frames)


def stage_of(step: int, cfg: OmniTrainConfig) -> str:
    bounds = np.cumsum([getattr(cfg, f"{s}_steps") for s in cfg.stages])
    return cfg.stages[min(len(cfg.stages) - 1, int(np.searchsorted(bounds, step, side="right")))]


class InputStream(torch.utils.data.IterableDataset):
    """(step, inputs) from `start` on, made in worker processes while the model trains."""

    def __init__(self, fmt: ChatFormatter, cfg: OmniTrainConfig, start: int, total: int,
                 process: int):
        self.fmt, self.cfg, self.start, self.total, self.process = fmt, cfg, start, total, process

    def __iter__(self):
        """Worker w of W makes steps start + w, start + w + W, ...; the loader takes the
        workers' outputs round-robin, so the steps arrive in order and none twice."""
        one_thread()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        seed = [self.cfg.seed, self.process, self.start] + ([worker] if workers > 1 else [])
        rng = np.random.default_rng(seed)
        source = source_of(self.cfg)
        for step in range(self.start + worker, self.total, workers):
            cfg = self.cfg
            if not cfg.all_blocks and step >= cfg.all_blocks_from:
                cfg = replace(cfg, all_blocks=True)
            yield step, prepare_inputs(self.fmt, stage_of(step, cfg), rng, cfg, source, step)
