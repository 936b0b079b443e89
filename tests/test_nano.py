"""The shipped nano model through the engine: it picks the right kind of reply, streams it,
stops at <eos>, agrees with itself with the cache on and off, and its unified representation
retrieves. How well it answers is measured by `python -m nextomni.eval` (README); these
thresholds sit well under what it does, to catch a broken checkpoint or engine."""

from pathlib import Path

import numpy as np
import pytest

from nextomni.data.splits import heldout
from nextomni.data.tasks import make_example
from nextomni.data.text import canonical_caption
from nextomni.data.world import random_scene, render
from nextomni.engine import (
    AudioSegment, Finished, ImageSegment, Message, OmniEngine, Progress, Settings, TextSegment,
)

NANO = Path(__file__).resolve().parents[1] / "checkpoints" / "nano"


@pytest.fixture(scope="module")
def engine():
    return OmniEngine.load(NANO, device="cpu")


def reply(engine, parts, **settings):
    events = list(engine.chat([Message("user", parts)], Settings(**settings)))
    segs = [e for e in events if not isinstance(e, (Progress, Finished))]
    assert len(segs) == 1 and isinstance(events[-1], Finished)
    return segs[0], events[-1].stats, events


def user_parts(ex):
    return [{"kind": "image", "value": render(p.value)} if p.kind == "image" else p.value
            for p in ex.turns[0].parts]


def test_asked_to_draw_it_draws_and_streams_previews(engine):
    images = 0
    for seed in heldout(8, offset=700):
        seg, _, events = reply(engine, user_parts(make_example("t2i", seed)))
        if isinstance(seg, ImageSegment):
            images += 1
            assert seg.image.shape == (64, 64, 3)
            assert any(e.image is not None for e in events if isinstance(e, Progress))
    assert images >= 5  # 8 of 8 when measured


def test_asked_to_speak_it_speaks(engine):
    spoken = 0
    for seed in heldout(4, offset=800):
        seg, _, _ = reply(engine, user_parts(make_example("tts", seed)))
        if isinstance(seg, AudioSegment):
            spoken += 1
            assert 0.2 < len(seg.audio) / 16000 < 20
    assert spoken >= 2  # 4 of 4 when measured


def test_questions_get_short_text_and_dynamic_length_stops_at_eos(engine):
    checked = 0
    for seed in heldout(6, offset=900):
        parts = user_parts(make_example("vqa", seed))
        short, s_stats, _ = reply(engine, parts)
        if not isinstance(short, TextSegment):
            continue
        fixed, f_stats, _ = reply(engine, parts, dynamic=False)
        assert s_stats.blocks <= 3 < f_stats.blocks
        assert s_stats.steps < f_stats.steps
        checked += 1
    assert checked >= 3  # 6 of 6 replies were text when measured


def test_cache_on_and_off_agree(engine):
    for seed in heldout(3, offset=300):
        parts = user_parts(make_example("caption", seed))
        on, _, _ = reply(engine, parts)
        off, s_off, _ = reply(engine, parts, cache=False)
        assert type(on) is type(off)
        if isinstance(on, TextSegment):
            assert on.text == off.text
        elif isinstance(on, ImageSegment):
            assert np.array_equal(on.image, off.image)
        else:
            assert np.array_equal(on.audio, off.audio)
        assert s_off.cache_hits == 0


def test_retrieves_described_scenes_far_above_chance(engine):
    scenes = [random_scene(s) for s in heldout(12, offset=1200)]
    gallery = [{"kind": "image", "value": render(s)} for s in scenes]
    hits = sum(engine.search(canonical_caption(s), gallery, top=1)[0].index == i
               for i, s in enumerate(scenes))
    assert hits >= 5  # 12 of 12 when measured; chance: 1 of 12
    assert np.isclose(np.linalg.norm(engine.embed("a red circle")), 1, atol=1e-4)


def test_the_apps_examples_get_the_kind_of_reply_they_ask_for(engine):
    # through the app's own message layout (attachments, then the words): with the words
    # first, an order no training example has, pictures got spoken replies
    from ui.app import examples
    from ui.turns import user_parts as app_parts

    for ex in examples():
        text = ex["text"]
        want = (ImageSegment if text.startswith("generate an image") else
                AudioSegment if text.startswith("read this aloud") else TextSegment)
        seg, _, _ = reply(engine, app_parts(text, ex["files"]))
        assert isinstance(seg, want), (text, type(seg).__name__)
