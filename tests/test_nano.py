"""The shipped nano model behaves: answers about images, draws what it is asked, speaks,
stops at <eos>, agrees with itself with the cache on and off, and retrieves by text.
Thresholds are well under the measured held-out numbers (README) so that the tests catch
a broken checkpoint or engine, not noise."""

from pathlib import Path

import numpy as np
import pytest

from nextomni.data.splits import heldout
from nextomni.data.tasks import make_example
from nextomni.data.world import random_scene, render
from nextomni.engine import (
    AudioSegment, Finished, ImageSegment, Message, OmniEngine, Progress, Settings, TextSegment,
)
from nextomni.eval.metrics import words
from nextomni.eval.scene_detector import detect

NANO = Path(__file__).resolve().parents[1] / "checkpoints" / "nano"


@pytest.fixture(scope="module")
def engine():
    return OmniEngine.load(NANO, device="cpu")


def reply(engine, parts, **settings):
    events = list(engine.chat([Message("user", parts)], Settings(**settings)))
    segs = [e for e in events if not isinstance(e, (Progress, Finished))]
    assert len(segs) == 1 and isinstance(events[-1], Finished)
    return segs[0], events[-1].stats, events


def test_answers_questions_about_images(engine):
    right = 0
    for seed in heldout(10, offset=500):
        ex = make_example("vqa", seed)
        user = ex.turns[0]
        parts = [{"kind": "image", "value": render(p.value)} if p.kind == "image" else p.value
                 for p in user.parts]
        seg, _, _ = reply(engine, parts)
        right += isinstance(seg, TextSegment) and words(seg.text) == words(ex.answer)
    assert right >= 7


def test_draws_what_it_is_asked(engine):
    right = 0
    for seed in heldout(6, offset=700):
        ex = make_example("t2i", seed)
        seg, stats, events = reply(engine, [ex.turns[0].parts[0].value])
        if isinstance(seg, ImageSegment):
            right += detect(seg.image) == ex.answer
            assert any(e.image is not None for e in events if isinstance(e, Progress))
    assert right >= 4


def test_speaks_and_stops(engine):
    seg, stats, _ = reply(engine, ["say 'a small green triangle on the left on a white "
                                   "background'"])
    assert isinstance(seg, AudioSegment) and 0.5 < len(seg.audio) / 16000 < 8
    heard = engine.fmt.tok.audio.recognize(engine.fmt.tok.audio.encode(seg.audio))
    assert "green" in engine.fmt.tok.text.decode(heard)


def test_dynamic_length_stops_at_eos(engine):
    ex = make_example("vqa", heldout(1, offset=900)[0])
    parts = [{"kind": "image", "value": render(ex.turns[0].parts[0].value)},
             ex.turns[0].parts[1].value]
    short, s_stats, _ = reply(engine, parts)
    fixed, f_stats, _ = reply(engine, parts, dynamic=False)
    assert s_stats["blocks"] <= 3 < f_stats["blocks"]
    assert words(short.text) == words(fixed.text)


def test_cache_on_and_off_agree(engine):
    for seed in heldout(4, offset=300):
        scene = random_scene(seed)
        parts = [{"kind": "image", "value": render(scene)}, "what do you see?"]
        on, _, _ = reply(engine, parts)
        off, _, _ = reply(engine, parts, cache=False)
        assert on.text == off.text


def test_retrieves_the_described_scene(engine):
    scenes = [random_scene(s) for s in heldout(12, offset=1200)]
    gallery = [{"kind": "image", "value": render(s)} for s in scenes]
    hits = sum(engine.search(s.describe(), gallery, top=1)[0].index == i
               for i, s in enumerate(scenes))
    assert hits >= 9
    assert np.isclose(np.linalg.norm(engine.embed("a red circle")), 1, atol=1e-4)
