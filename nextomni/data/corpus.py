"""Streams of OmniWorld text, for training the text tokenizer and the speech data."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from nextomni.chat import ROLES
from nextomni.data.text import (
    QA_KINDS, canonical_caption, caption, edit_chain, generation_instruction, question,
    speech_request, spoken_style,
)
from nextomni.data.video import motion_question, random_motion
from nextomni.data.world import random_scene


def text_corpus(seeds: range) -> Iterator[str]:
    """Every kind of sentence the tasks use, for each seed."""
    yield " ".join(ROLES)
    for seed in seeds:
        rng = np.random.default_rng([seed, 7])
        scene = random_scene(seed)
        yield canonical_caption(scene)
        yield caption(scene, rng)
        yield generation_instruction(scene, rng)
        for kind in QA_KINDS:
            qa = question(scene, rng, kind)
            yield qa.question
            yield qa.answer
            yield spoken_style(qa.question, rng)
        for e in edit_chain(scene, rng, 2):
            yield e.instruction
        yield speech_request(canonical_caption(scene), rng)
        qa = motion_question(random_motion(seed), rng)
        yield qa.question + " " + qa.answer


def spoken_sentences(seed: int) -> list[str]:
    """Sentences people say to the model or hear from it, for one seed."""
    rng = np.random.default_rng([seed, 8])
    scene = random_scene(seed)
    qa = question(scene, rng)
    edit = edit_chain(scene, rng, 1)[0]
    return [canonical_caption(scene).rstrip("."), spoken_style(qa.question, rng), qa.answer,
            generation_instruction(scene, rng).rstrip(".?"), edit.instruction.rstrip(".")]
