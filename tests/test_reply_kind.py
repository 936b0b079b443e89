"""The reply's kind chosen by the user (`Settings.reply`) with the shipped nano model: through
the engine, the `/chat` API, the stored settings and a re-run of the stored session."""

import json
from pathlib import Path

import pytest

from nextomni.data.world import random_scene, render
from nextomni.engine import (
    AudioSegment, Finished, ImageSegment, Message, OmniEngine, Progress, Settings, TextSegment,
)

NANO = Path(__file__).resolve().parents[1] / "checkpoints" / "nano"
SPOKEN = "tell me about the blue square"  # a question the nano model answers by speaking
FAST = dict(max_tokens=16, steps=4, seed=3)


@pytest.fixture(scope="module")
def engine():
    return OmniEngine.load(NANO, device="cpu")


def answer(engine, parts, **settings):
    events = list(engine.chat([Message("user", parts)], Settings(**{**FAST, **settings})))
    segs = [e for e in events if not isinstance(e, (Progress, Finished))]
    assert len(segs) == 1 and isinstance(events[-1], Finished)
    return segs[0], events[-1].stats


def test_the_chosen_kind_overrides_the_models_choice(engine):
    scene = {"kind": "image", "value": render(random_scene(3))}
    seg, stats = answer(engine, [SPOKEN])
    assert isinstance(seg, AudioSegment) and stats.layout == "audio"  # left alone, it speaks
    seg, stats = answer(engine, [SPOKEN], reply="text")
    assert isinstance(seg, TextSegment) and seg.text.strip() and stats.layout == "text"
    seg, _ = answer(engine, [SPOKEN], reply="image")
    assert isinstance(seg, ImageSegment) and seg.image.shape == (64, 64, 3)
    seg, _ = answer(engine, [scene, "what colour is the shape?"])
    assert isinstance(seg, TextSegment)  # left alone, it answers in words
    seg, _ = answer(engine, [scene, "what colour is the shape?"], reply="speech")
    assert isinstance(seg, AudioSegment) and len(seg.audio) > 0


def test_the_ar_baseline_takes_the_chosen_kind_too(tmp_path):
    from tests.engine_fixtures import tiny_checkpoint

    eng = OmniEngine.load(tiny_checkpoint(tmp_path / "dfm"), device="cpu",
                          baseline=str(tiny_checkpoint(tmp_path / "ar", causal=True)))
    for reply, kind in (("text", TextSegment), ("image", ImageSegment), ("speech", AudioSegment)):
        seg, stats = answer(eng, ["hello"], mode="ar", reply=reply, max_tokens=8)
        assert isinstance(seg, kind) and stats.mode == "ar", reply


def test_reply_kind_through_the_chat_api_is_stored_and_replays(engine, tmp_path):
    from sessions.replay import rerun
    from sessions.store import SessionStore
    from ui.handlers import Handlers
    from ui.turns import ChatRunner

    store = SessionStore(tmp_path / "s.db")
    h = Handlers(ChatRunner(engine, store, "nano"), store)
    text, media, sid = h.api_chat(SPOKEN, settings=json.dumps({**FAST, "reply": "text"}))
    assert text.strip() and media == [] and sid
    owner = f"api-session:{sid}"
    reply = store.turns(sid, owner)[-1]
    assert reply.settings["reply"] == "text" and [p.kind for p in reply.parts] == ["text"]
    assert reply.metrics["layout"] == "text" and reply.metrics["seed"] == FAST["seed"]
    assert rerun(store, sid, engine, owner).differing == 0
    # settings stored before `reply` existed mean the model's own choice: here, speech
    old = {k: v for k, v in reply.settings.items() if k != "reply"}
    store.db["turns"].update(reply.id, {"settings": json.dumps(old)})
    report = rerun(store, sid, engine, owner)
    assert report.differing == 1 and "kind" in report.text(), report.text()
    bad, _, _ = h.api_chat(SPOKEN, settings=json.dumps({"reply": "video"}))
    assert bad.startswith("Error") and "reply" in bad
