"""Speech heard while it is made: the page's chat handler hands each block of a speech reply
to a streaming player as WAV bytes, before the whole reply is in the chat."""

import io
import wave

import numpy as np
import pytest

from sessions.store import SessionStore
from ui.app import build_app
from ui.handlers import Handlers
from ui.speech import wav_bytes
from ui.turns import ChatRunner

SPEAK = {"seed": 0, "steps": 2, "block_size": 0, "guidance": 0.0, "speech_guidance": 0.0,
         "max_tokens": 32, "temperature": 0.0, "confidence": 0.9, "cache": True,
         "dynamic": False, "mode": "DFM", "reply": "speech"}


@pytest.fixture
def h(tiny_engine, tmp_path):
    store = SessionStore(tmp_path / "s.db")
    yield Handlers(ChatRunner(tiny_engine, store, "tiny"), store)
    store.close()


def test_wav_bytes_hold_the_samples_at_their_rate():
    samples = np.sin(np.linspace(0, 20, 1600)).astype(np.float32) * 1.5  # clipped at 1
    with wave.open(io.BytesIO(wav_bytes(samples, 16_000))) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 16_000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(pcm) == 1600 and pcm.max() == 32767
    assert np.allclose(pcm / 32767, np.clip(samples, -1, 1), atol=1e-4)


def test_speech_pieces_come_before_the_whole_reply(h):
    updates = list(h.chat_speaking({"text": "say a red circle", "files": []}, [], "browser:a",
                                   None, SPEAK))
    pieces = [i for i, u in enumerate(updates) if isinstance(u[3], bytes)]
    whole = next(i for i, u in enumerate(updates)
                 if any(isinstance(m["content"], dict) for m in u[0] if m["role"] == "assistant"))
    assert pieces and pieces[-1] < whole
    assert all(updates[i][3][:4] == b"RIFF" for i in pieces)
    # the plain handler is the same stream without the player's value
    plain = list(h.chat({"text": "say a red circle", "files": []}, [], "browser:a", None, SPEAK))
    assert all(len(u) == 3 for u in plain) and len(plain) == len(updates)


def test_the_page_streams_the_reply_to_a_player(h):
    config = build_app("test", h).get_config_file()
    by_id = {c["props"].get("elem_id"): c for c in config["components"]}
    player = by_id["speech-stream"]
    assert player["type"] == "audio" and player["props"]["streaming"] is True
    assert player["props"]["autoplay"] is True
    chat = next(d for d in config["dependencies"] if d.get("api_name") == "page_chat")
    assert player["id"] in chat["outputs"]
