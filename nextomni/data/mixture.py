"""Task mixtures of the three training stages (PT -> CPT -> SFT).

PT aligns modalities with short single-turn tasks; CPT adds longer and mixed contexts (video,
multi-turn edits, speech about images); SFT covers every task in chat form with the held
instructions. Weights are relative sampling frequencies.
"""

from __future__ import annotations

import numpy as np

from nextomni.data.splits import TRAIN_SEEDS
from nextomni.data.tasks import Example, make_example, retrieval_pair, retrieval_siblings

STAGES: dict[str, dict[str, float]] = {
    "pt": {"caption": 2, "vqa": 1, "t2i": 2, "asr": 2, "tts": 2},
    "cpt": {"caption": 1, "vqa": 2, "t2i": 2, "asr": 1, "tts": 1, "video": 2, "edit": 2,
            "spoken_vqa": 1, "a2i": 1, "i2s": 1},
    "sft": {"caption": 1, "vqa": 2, "t2i": 2, "asr": 1.5, "tts": 1.5, "video": 1.5,
            "edit": 2.5, "spoken_vqa": 1, "a2i": 1, "i2s": 1},
}


def sample_tasks(stage: str, rng: np.random.Generator, n: int) -> list[Example]:
    """n training examples of `stage`, each from a fresh training seed."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {list(STAGES)}")
    names = list(STAGES[stage])
    weights = np.array([STAGES[stage][k] for k in names], dtype=float)
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
