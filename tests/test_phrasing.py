"""Wording as people type it, and the held-out family training never sees."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nextomni.data import phrasing
from nextomni.data.augment import add_noise, augment_speech, reverberate
from nextomni.data.tasks import TASKS, make_example

TEXT_TASKS_WITH_USER_TEXT = ("caption", "vqa", "t2i", "asr", "tts", "video", "i2s", "edit")


def user_text(ex) -> str:
    return " | ".join(p.value for t in ex.turns[:-1] if t.role == "user" for p in t.parts
                      if p.kind == "text")


def frame_words(frame: str) -> str:
    """A wrapper without its slots: the words a family adds around the template."""
    return re.sub(r"\{\w+\}", "", frame).strip(" ,.?!:")


def test_the_wrapper_families_share_nothing():
    for table in (phrasing.QUESTION_WRAPPERS, phrasing.REQUEST_WRAPPERS, phrasing.ASK_WRAPPERS):
        train = {frame_words(f) for f in table["train"]} - {""}
        held = {frame_words(f) for f in table["heldout"]}
        assert "" not in held and not train & held
    from nextomni.data.tasks import ASR_ASKS, CAPTION_ASKS, I2S_ASKS

    for asks in (CAPTION_ASKS, ASR_ASKS, I2S_ASKS):
        assert not set(asks["train"]) & set(asks["heldout"])


def test_training_examples_never_hold_a_heldout_wrapper():
    held = [frame_words(f) for table in (phrasing.QUESTION_WRAPPERS, phrasing.REQUEST_WRAPPERS,
                                         phrasing.ASK_WRAPPERS) for f in table["heldout"]]
    from nextomni.data.tasks import ASR_ASKS, CAPTION_ASKS, I2S_ASKS

    held += [a.rstrip(".?") for asks in (CAPTION_ASKS, ASR_ASKS, I2S_ASKS)
             for a in asks["heldout"]]
    seen = set()
    for task in TEXT_TASKS_WITH_USER_TEXT:
        for seed in range(150):
            said = user_text(make_example(task, seed)).lower()
            seen.add(said)
            assert not any(h in said for h in held), (task, seed, said)
    assert len(seen) > 900  # wide phrasing: nearly every example worded its own way
    heldout = [user_text(make_example("vqa", s, "heldout")).lower() for s in range(60)]
    assert sum(any(h in said for h in held) for said in heldout) == len(heldout)


def test_phrasing_varies_words_spelling_and_typing_but_keeps_the_content():
    rng = np.random.default_rng(0)
    outs = [phrasing.phrase("what color is the shape in the center?", rng, "question")
            for _ in range(400)]
    joined = " ".join(outs)
    for word in ("colour", "middle", "centre", "tell me", "What"):
        assert word in joined, word
    assert any(o.endswith("?") for o in outs) and any(not o.endswith(("?", ".")) for o in outs)
    assert all("shape" in o.lower() for o in outs)
    assert phrasing.embedded("which way is the shape moving?") == "which way the shape is moving"
    assert phrasing.embedded("is there a red star?") == "whether there is a red star"
    with pytest.raises(ValueError, match="family"):
        phrasing.phrase("draw it.", rng, "request", "someday")


def test_text_to_speech_keeps_the_sentence_word_for_word():
    for seed in range(40):
        ex = make_example("tts", seed)
        assert ex.answer.lower() in user_text(ex).lower()


def test_heldout_seeds_speak_with_heldout_voices():
    from nextomni.data.speech import HELDOUT_VOICES, VOICES
    from nextomni.data.splits import heldout

    assert not set(VOICES) & set(HELDOUT_VOICES)
    voices = lambda seeds: {p.value.voice.name for s in seeds  # noqa: E731
                            for p in make_example("asr", s).turns[0].parts if p.kind == "audio"}
    assert voices(range(60)) <= set(VOICES)
    assert voices(heldout(30)) <= set(HELDOUT_VOICES)
    assert set(TASKS) >= {"asr", "spoken_vqa", "a2i"}


def test_speech_augmentation_hits_its_snr_and_keeps_the_level_in_range():
    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    wave = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    for snr in (10.0, 25.0):
        noisy = add_noise(wave, snr, rng)
        measured = 10 * np.log10(np.mean(wave ** 2) / np.mean((noisy - wave) ** 2))
        assert abs(measured - snr) < 0.5
    wet = reverberate(wave, 0.4, rng)
    assert wet.shape == wave.shape and not np.allclose(wet, wave)
    outs = [augment_speech(wave, rng) for _ in range(30)]
    assert all(o.dtype == np.float32 and np.abs(o).max() <= 1.0 for o in outs)
    assert sum(not np.allclose(o, wave) for o in outs) >= 25
