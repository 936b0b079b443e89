"""The page's handlers over a real engine (tiny untrained checkpoint) and a real store:
streamed chat, stored turns, errors shown in the chat, API turns, search, replay."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sessions.replay import rerun
from sessions.store import SessionStore
from ui.handlers import Handlers, settings_from
from ui.turns import ChatRunner

ROOT = Path(__file__).resolve().parents[1]
FAST = {"seed": 0, "steps": 2, "block_size": 0, "guidance": 0.0, "speech_guidance": 0.0,
        "max_tokens": 16, "temperature": 0.0, "confidence": 0.9, "cache": True, "dynamic": True,
        "mode": "DFM", "reply": "auto"}
LONG = {**FAST, "steps": 64, "max_tokens": 256, "confidence": 1.0, "dynamic": False}


@pytest.fixture
def h(tiny_engine, tmp_path):
    store = SessionStore(tmp_path / "s.db")
    yield Handlers(ChatRunner(tiny_engine, store, "tiny"), store,
                   [("scene", np.zeros((64, 64, 3), np.uint8))])
    store.close()


def last(gen):
    out = None
    for out in gen:
        pass
    return out


def test_ui_never_imports_torch():
    code = "import sys, ui, ui.handlers, ui.turns; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
    for f in (ROOT / "ui").glob("*.py"):
        names = [a.name for n in ast.walk(ast.parse(f.read_text()))
                 if isinstance(n, (ast.Import, ast.ImportFrom))
                 for a in n.names] + [n.module or "" for n in ast.walk(ast.parse(f.read_text()))
                                      if isinstance(n, ast.ImportFrom)]
        assert not any(x == "torch" or x.startswith("torch.") for x in names), f


def test_settings_from_controls():
    s = settings_from({**FAST, "seed": 3.0, "steps": 8.0, "guidance": 1.5, "speech_guidance": 0.5,
                       "max_tokens": 64.0, "confidence": 0.8, "cache": False,
                       "mode": "AR baseline"})
    assert s.seed == 3 and s.steps == 8 and s.block_size is None and s.mode == "ar"
    assert (s.guidance, s.speech_guidance, s.max_tokens) == (1.5, 0.5, 64)
    assert s.cache is False


def test_chat_streams_and_stores_the_turn(h, tmp_path):
    img = tmp_path / "in.png"
    Image.new("RGB", (80, 60), "red").save(img)
    updates = list(h.chat({"text": "what do you see?", "files": [str(img)]}, [], "browser:a",
                          None, FAST))
    history, sid, stats = updates[-1]
    assert sid and "reply" in stats and "seed 0" in stats
    # the attachment goes first, then the words about it: the order the model was trained on;
    # the page shows it enlarged, the store keeps the original
    assert Image.open(history[0]["content"]["path"]).size == (320, 240)
    assert history[1] == {"role": "user", "content": "what do you see?"}
    assert history[-1]["role"] == "assistant"
    assert any("denoising" in u[2] for u in updates)
    turns = h.store.turns(sid, "browser:a")
    assert [(t.role, t.status) for t in turns] == [("user", "done"), ("assistant", "done")]
    assert [p.kind for p in turns[0].parts] == ["image", "text"]
    assert Image.open(turns[0].parts[0].path).size == (80, 60)
    assert turns[1].settings["seed"] == 0 and turns[1].metrics["steps"] > 0
    assert h.session_choices("browser:a")[0][1] == sid and h.session_choices("browser:b") == []
    # the next turn continues the session
    history, sid2, _ = last(h.chat({"text": "and now?", "files": []}, history, "browser:a", sid,
                                   FAST))
    assert sid2 == sid and len(h.store.turns(sid, "browser:a")) == 4
    assert h.resume(sid, "browser:a")[1]["content"] == "what do you see?"


@pytest.mark.parametrize("message, match", [
    ({"text": "", "files": []}, "empty"),
    ({"text": "x" * 100_000, "files": []}, "too long"),
    ({"text": "hi", "files": ["notes.txt"]}, "unsupported file type"),
])
def test_bad_input_is_answered_in_the_chat(h, message, match):
    history, sid, _ = last(h.chat(message, [], "browser:a", None, FAST))
    assert history[-1]["role"] == "assistant" and history[-1]["content"].startswith("⚠")
    assert match in history[-1]["content"]
    assert sid is None and h.store.list_sessions("browser:a") == []


def test_bad_settings_are_answered_in_the_chat(h):
    bad = {**FAST, "steps": -4}
    history, _, _ = last(h.chat({"text": "hi", "files": []}, [], "browser:a", None, bad))
    assert "steps" in history[-1]["content"]


def test_someone_elses_session_is_refused(h):
    _, sid, _ = last(h.chat({"text": "hi", "files": []}, [], "browser:a", None, FAST))
    history, _, _ = last(h.chat({"text": "hi", "files": []}, [], "browser:b", sid, FAST))
    assert "no session" in history[-1]["content"]
    assert len(h.store.turns(sid, "browser:a")) == 2


def test_api_chat_turns(h):
    reply, media, sid = h.api_chat("hello", None, None, "tok")
    assert sid and not reply.startswith("Error")
    reply2, _, sid2 = h.api_chat("again", None, sid, "tok")
    assert sid2 == sid and len(h.store.turns(sid, "browser:tok")) == 4
    err, _, _ = h.api_chat("", None, None, "tok")
    assert err.startswith("Error:") and "empty" in err


def test_stop_marks_the_reply_cancelled(h):
    gen = h.chat({"text": "tell me", "files": []}, [], "browser:a", None, LONG)
    sid = None
    for _, sid, status in gen:
        if sid and "denoising" in status:
            break
    gen.close()
    turns = h.store.turns(sid, "browser:a")
    assert turns[-1].status == "cancelled"
    assert [m["role"] for m in h.store.messages(sid, "browser:a")] == ["user"]


def test_search_ranks_the_gallery(h, tmp_path):
    up = tmp_path / "up.png"
    Image.new("RGB", (64, 64), "blue").save(up)
    found, note = h.search("a blue square", None, [str(up)])
    assert len(found) == 2 and "ranked" in note
    found, note = h.search("", None, None)
    assert found == [] and "Type a description" in note


def test_replay_play_and_rerun(h):
    _, sid, _ = last(h.chat({"text": "hello", "files": []}, [], "browser:a", None, FAST))
    last(h.chat({"text": "more", "files": []}, h.resume(sid, "browser:a"), "browser:a", sid,
                FAST))
    frames = list(h.play(sid, "browser:a", delay=0))
    assert frames[-1][1] == "played 4 turns" and len(frames[-1][0]) >= 4
    report = rerun(h.store, sid, h.runner.engine, "browser:a")
    assert report.differing == 0 and len(report.turns) == 2, report.text()
    # a changed setting shows up as a difference
    t = h.store.turns(sid, "browser:a")[1]
    h.store.db["turns"].update(t.id, {"settings": '{"seed": 99, "steps": 2, "max_tokens": 16,'
                                                  ' "temperature": 1.0}'})
    assert rerun(h.store, sid, h.runner.engine, "browser:a").differing >= 1


def test_stop_button_cancels_the_running_reply(h):
    gen = h.chat({"text": "tell me", "files": []}, [], "browser:a", None, LONG)
    for _, sid, status in gen:
        if sid and "denoising" in status:
            break
    assert h.stop(sid) is True and h.stop(sid) is False
    assert h.store.turns(sid, "browser:a")[-1].status == "cancelled"
    gen.close()
    assert h.store.turns(sid, "browser:a")[-1].status == "cancelled"


def test_api_sessions_without_a_token_are_reached_by_their_id(h):
    reply, _, sid = h.api_chat("hello", settings='{"steps": 2, "max_tokens": 16}')
    assert sid and not reply.startswith("Error")
    again, _, sid2 = h.api_chat("more", session_id=sid, settings='{"steps": 2}')
    assert sid2 == sid and not again.startswith("Error")
    stolen, _, _ = h.api_chat("mine?", session_id=sid, token="someone-else")
    assert stolen.startswith("Error:") and "no session" in stolen
    assert h.store.session(sid, f"api-session:{sid}")
    bad, _, _ = h.api_chat("", settings='{"steps": 2}')
    assert bad.startswith("Error:")
    assert all(s["owner"].startswith("api-session:") for s in h.store.all_sessions())
    assert len(h.store.all_sessions()) == 1  # the refused empty message made no session


def test_panel_errors_are_messages(h):
    _, sid, _ = last(h.chat({"text": "hello", "files": []}, [], "browser:a", None, FAST))
    assert h.rename(sid, "x", "browser:b").startswith("⚠")
    assert h.delete(sid, "browser:b").startswith("⚠")
    assert h.export(sid, "browser:b") is None
    assert "not yours" in h.resume(sid, "browser:b")[0]["content"]
    assert h.delete(sid, "browser:a") == "Deleted."


def test_the_reply_kind_fixes_the_reply_and_is_stored(h):
    history, sid, _ = last(h.chat({"text": "hello", "files": []}, [], "browser:a", None,
                                  {**FAST, "reply": "image"}))
    turn = h.store.turns(sid, "browser:a")[-1]
    assert turn.settings["reply"] == "image" and [p.kind for p in turn.parts] == ["image"]
    # shown enlarged (whole pixels) for a person to see; stored as drawn
    shown, stored = Image.open(history[-1]["content"]["path"]), Image.open(turn.parts[0].path)
    assert max(shown.size) >= 256 and shown.size[0] % stored.size[0] == 0
    assert shown.size[0] // stored.size[0] > 1
