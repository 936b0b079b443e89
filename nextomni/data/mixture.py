"""Task mixtures of the three training stages (PT -> CPT -> SFT).

PT aligns modalities with short single-turn tasks; CPT adds longer and mixed contexts (video,
multi-turn edits, speech about images); SFT covers every task in chat form with the held
instructions. Weights are relative sampling frequencies.
"""

from __future__ import annotations

import numpy as np

from nextomni.data.splits import TRAIN_SEEDS
from nextomni.data.tasks import (
    REPLY_MODALITY, TASKS, Example, make_example, retrieval_pair, retrieval_siblings,
)

STAGES: dict[str, dict[str, float]] = {
    "pt": {"caption": 2, "vqa": 1, "t2i": 2, "asr": 2, "tts": 2},
    "cpt": {"caption": 1, "vqa": 2, "t2i": 2, "asr": 1, "tts": 1, "video": 2, "edit": 2,
            "spoken_vqa": 1, "a2i": 1, "i2s": 1},
    "sft": {"caption": 1, "vqa": 2, "t2i": 2, "asr": 1.5, "tts": 1.5, "video": 1.5,
            "edit": 2.5, "spoken_vqa": 1, "a2i": 1, "i2s": 1},
}


def parse_mix(spec: str) -> dict[str, float]:
    """`"t2i=4,caption=1"` -> {"t2i": 4.0, "caption": 1.0}: a mixture given on the command line."""
    mix: dict[str, float] = {}
    for item in (x.strip() for x in spec.split(",") if x.strip()):
        name, _, weight = item.partition("=")
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; expected one of {sorted(TASKS)}")
        try:
            mix[name] = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"weight of {name!r} must be a number, got {weight!r}") from None
        if mix[name] < 0:
            raise ValueError(f"weight of {name!r} must be >= 0")
    if not mix or sum(mix.values()) <= 0:
        raise ValueError(f"a mixture needs a task of positive weight, got {spec!r}")
    return mix


def one_modality(weights: dict[str, float], rng: np.random.Generator) -> dict[str, float]:
    """The tasks of `weights` that reply in one modality, drawn with the share of the weight
    its tasks hold: batch by batch one kind of reply, and over many batches each modality
    gets its weight's share of the batches (not of the examples: batches are filled to a
    token budget, so a batch of short text replies holds more examples than one of
    pictures)."""
    groups: dict[str, dict[str, float]] = {}
    for task, w in weights.items():
        if w > 0:
            groups.setdefault(REPLY_MODALITY[task], {})[task] = w
    names = sorted(groups)
    totals = np.array([sum(groups[m].values()) for m in names])
    return groups[names[int(rng.choice(len(names), p=totals / totals.sum()))]]


def sample_tasks(stage: str, rng: np.random.Generator, n: int,
                 mix: dict[str, float] | None = None) -> list[Example]:
    """n training examples of `stage` (or of the task weights `mix`, which replace the
    stage's), each from a fresh training seed."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {list(STAGES)}")
    weights_of = mix or STAGES[stage]
    names = [k for k in weights_of if weights_of[k] > 0]
    weights = np.array([weights_of[k] for k in names], dtype=float)
    picks = rng.choice(len(names), size=n, p=weights / weights.sum())
    seeds = rng.integers(TRAIN_SEEDS.start, TRAIN_SEEDS.stop, size=n)
    return [make_example(names[i], int(s)) for i, s in zip(picks, seeds)]


def sample_retrieval_pairs(rng: np.random.Generator, n: int) -> list[tuple]:
    """n (item, description) pairs for the contrastive loss: n // 3 sibling groups (two
    images one edit apart, hard negatives for each other; 4 of the default 6 pairs), the
    rest of any modality."""
    seeds = [int(s) for s in rng.integers(TRAIN_SEEDS.start, TRAIN_SEEDS.stop, size=n)]
    groups = n // 3
    pairs = [p for s in seeds[:groups] for p in retrieval_siblings(s)]
    return pairs + [retrieval_pair(s) for s in seeds[groups: n - groups]]
