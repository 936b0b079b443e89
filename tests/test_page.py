"""The page around the chat: pictures shown enlarged, the "Try the world" buttons, the sidebar
(export, import, delete after a confirmation), the reply kind and the settings read as one
input, and the layout the browser gets. No browser, no model run (a tiny engine is loaded
for the handlers but only the store is used)."""

import zipfile
from dataclasses import dataclass

import gradio as gr
import numpy as np
import pytest
from PIL import Image

from nextomni.engine import Settings
from sessions.store import SessionStore
from ui.app import build_app
from ui.controls import REPLY_KINDS, SettingsForm, settings_controls
from ui.display import Display, enlarge
from ui.handlers import Handlers, settings_from
from ui.page import PageEvents, locked_box, with_stop_button
from ui.turns import ChatRunner
from ui.world import TryWorld


@pytest.fixture
def h(tiny_engine, tmp_path):
    store = SessionStore(tmp_path / "s.db")
    yield Handlers(ChatRunner(tiny_engine, store, "tiny"), store)
    store.close()


def a_session(h, owner="browser:a", title="red things") -> str:
    sid = h.store.create_session(owner, title, "tiny")
    png = np.zeros((64, 64, 3), np.uint8)
    png[:32] = (255, 0, 0)
    h.store.start_turn(sid, "user", [{"kind": "text", "text": "draw"}], owner, status="done")
    h.store.start_turn(sid, "assistant", [{"kind": "image", "data": _png_bytes(png),
                                           "mime": "image/png"}], owner, status="done")
    return sid


def _png_bytes(arr) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ------------------------------------------------------------------ pictures a person can see

def test_small_pictures_are_shown_enlarged_and_sharp(tmp_path):
    src = np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3).astype(np.uint8)
    Image.fromarray(src).save(tmp_path / "reply.png")
    d = Display(tmp_path / "view")
    shown = d.path(tmp_path / "reply.png")
    big = np.asarray(Image.open(shown))
    assert big.shape == (256, 256, 3)
    assert (big[::4, ::4] == src).all() and (big[3::4, 3::4] == src).all()  # whole pixels
    assert d.path(tmp_path / "reply.png") == shown  # made once per file
    assert np.asarray(Image.open(tmp_path / "reply.png")).shape == (64, 64, 3)  # untouched
    Image.new("RGB", (400, 300)).save(tmp_path / "photo.jpg")
    assert d.path(tmp_path / "photo.jpg") == str(tmp_path / "photo.jpg")
    assert d.path(tmp_path / "talk.wav") == str(tmp_path / "talk.wav")
    assert Image.open(d.preview(src[:8, :8])).size == (256, 256)
    assert enlarge(Image.new("RGB", (100, 30))).size == (300, 90)


def test_stored_pictures_are_shown_enlarged(h):
    sid = a_session(h)
    shown = h.resume(sid, "browser:a")[-1]["content"]["path"]
    assert Image.open(shown).size == (256, 256)
    stored = h.store.turns(sid, "browser:a")[-1].parts[0].path
    assert Image.open(stored).size == (64, 64)


# ------------------------------------------------------------------ try the world

@dataclass
class FakeSample:
    seed: int
    text: str = "what color is the circle?"
    files: tuple = ("scene.png",)
    about: str = "a red circle. The answer: red."


class FakeSamples:
    first_seed = 1_000_000

    def __init__(self):
        self.calls = []

    def __call__(self, kind, seed):
        self.calls.append((kind, seed))
        if seed < 0:
            raise ValueError("the seed must be a whole number from 0")
        return FakeSample(seed)


def test_try_the_world_fills_the_box_and_moves_the_seed_on():
    samples = FakeSamples()
    world = TryWorld(samples)
    box, note, seed = world.handler("clip")(1_000_004.0)  # a gr.Number gives a float
    assert samples.calls == [("clip", 1_000_004)]
    assert box == {"text": "what color is the circle?", "files": ["scene.png"]}
    assert "seed **1000004**" in note and "The answer: red" in note and seed == 1_000_005
    _, note, _ = world.make("scene", -3)
    assert note.startswith("⚠") and "seed" in note


# ------------------------------------------------------------------ stop in the box

def test_the_stop_button_shows_once_the_reply_runs():
    def chat(message):
        yield [], None, "thinking..."
        yield [{"role": "assistant", "content": message}], "s1", "done"

    first, second = with_stop_button(chat)("hi")
    assert first[:3] == ([], None, "thinking...") and first[3].stop_btn is True
    assert first[3].interactive is False and first[3].submit_btn is False
    assert second[1] == "s1" and second[3] == gr.skip()  # the box left as it is
    assert locked_box().stop_btn is False  # before the reply starts, nothing to stop yet


# ------------------------------------------------------------------ sidebar

def events(h) -> PageEvents:
    return PageEvents(h, SettingsForm({"reply": None, "seed": None}))


def test_delete_asks_first_and_keep_keeps(h):
    sid = a_session(h)
    ev = events(h)
    row, note = ev.ask_delete(sid, "browser:a")
    assert row.visible is True and "red things" in note
    row, note = ev.keep()
    assert row.visible is False and h.store.session(sid, "browser:a")
    note, *_, chat, session, row = ev.delete(sid, "browser:a")
    assert note == "Deleted." and chat == [] and session is None and row.visible is False
    assert h.store.list_sessions("browser:a") == []
    _, note = ev.ask_delete(None, "browser:a")
    assert note == "Open a session first."


def test_export_button_holds_the_open_session_and_import_brings_it_back(h):
    sid = a_session(h)
    ev = events(h)
    sessions, export = ev.refresh("browser:a", sid)
    assert sessions.value == sid and export.interactive is True
    with zipfile.ZipFile(export.value["path"]) as z:
        assert "session.json" in z.namelist()
    assert ev.refresh("browser:a", None)[1].interactive is False
    assert ev.refresh("browser:b", sid)[1].interactive is False  # not theirs
    note, sessions, _, chat, new = ev.imported(export.value["path"], "browser:b")
    assert note == "Imported." and new != sid and sessions.value == new
    assert Image.open(chat[-1]["content"]["path"]).size == (256, 256)
    note, *_ = ev.imported(__file__, "browser:b")
    assert note.startswith("⚠")


# ------------------------------------------------------------------ settings as one input

def test_the_settings_controls_are_read_as_one_dict():
    with gr.Blocks():  # components need a Blocks to live in
        controls = settings_controls()
    form = SettingsForm({"reply": None, **controls})
    values = form.read("text", *[c.value for c in controls.values()])
    assert values["reply"] == "text" and values["mode"] == "DFM" and set(controls) < set(values)
    settings = settings_from(values)
    assert settings.seed == Settings().seed and settings.steps == Settings().steps
    with pytest.raises(ValueError):
        form.read("text")  # a control missing is an error, not a shifted setting
    assert REPLY_KINDS == ("auto", "text", "image", "speech")


def test_the_reply_kind_reaches_the_settings():
    assert settings_from({"reply": "speech"}).reply == "speech"
    assert settings_from({"reply": "auto", "mode": "AR baseline"}).mode == "ar"


def test_the_page_layout(h):
    config = build_app("test", h, samples=FakeSamples()).get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    files = [c for c in config["components"]
             if c["type"] in ("multimodaltextbox", "file", "uploadbutton", "image", "audio")]
    assert files[0]["props"]["elem_id"] == "box"  # the attachment input comes first
    assert by_id["export"]["type"] == "downloadbutton"
    assert by_id["import"]["type"] == "uploadbutton"
    assert by_id["manage"]["type"] == "accordion" and by_id["manage"]["props"]["open"] is False
    assert by_id["confirm-delete"]["props"]["visible"] is False
    assert by_id["reply-kind"]["props"]["choices"][0][0] == "auto"
    assert {"try-scene", "try-speech", "try-clip", "world-seed"} <= set(by_id)
    assert by_id["world-seed"]["props"]["value"] == 1_000_000
    ids = {c["id"]: c["props"].get("elem_id") for c in config["components"]}
    chat = next(d for d in config["dependencies"] if d.get("api_name") == "page_chat")
    assert len(chat["inputs"]) == 5  # message, history, owner, session, the settings dict
    assert ids[chat["outputs"][-1]] == "box"  # the reply itself shows the Stop button
    stops = [d for d in config["dependencies"]
             if [(ids.get(t[0]), t[1]) for t in d["targets"]] == [("box", "stop")]]
    assert any(chat["id"] in d["cancels"] for d in stops)  # Stop in the box ends the reply
    assert "try-scene" not in {c["props"].get("elem_id")
                               for c in build_app("t", h).get_config_file()["components"]}
