"""The running app, driven like users drive it (gradio_client), on a tiny untrained
checkpoint: concurrent clients, a server killed mid-turn, bad inputs, replay from the CLI."""

import json
import sqlite3
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from PIL import Image

from tests.engine_fixtures import tiny_checkpoint
from tests.server import ROOT, Server


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def server(tiny, tmp_path):
    s = Server(tiny, tmp_path / "s.db", tmp_path / "app.log")
    yield s
    s.stop()


def chat(client, text, file=None, session="", token="t", settings=""):
    return client.predict(text, handle_file(str(file)) if file else None, session, token,
                          settings, api_name="/chat")


QUICK = json.dumps({"steps": 2, "max_tokens": 16})


@pytest.mark.slow
def test_eight_concurrent_clients_five_turns_each(server, tmp_path):
    results, errors = {}, []

    def user(i):
        try:
            client = Client(server.url, verbose=False)
            sid, seen = "", []
            for j in range(5):
                reply, _, sid_out = chat(client, f"client {i} turn {j}", session=sid,
                                         token=f"user{i}", settings=QUICK)
                assert not reply.startswith("Error"), reply
                assert sid == "" or sid_out == sid, "reply in another session"
                sid = sid_out
                seen.append(sid)
            results[i] = sid
        except Exception as e:  # noqa: BLE001
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=user, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert len(set(results.values())) == 8
    db = sqlite3.connect(tmp_path / "s.db")
    for i, sid in results.items():
        owner, = db.execute("SELECT owner FROM sessions WHERE id = ?", [sid]).fetchone()
        assert owner == f"browser:user{i}"
        rows = db.execute("SELECT t.role, t.status, p.text FROM turns t LEFT JOIN parts p ON "
                          "p.turn_id = t.id WHERE t.session_id = ? ORDER BY t.idx", [sid]).fetchall()
        users = [r[2] for r in rows if r[0] == "user"]
        assert users == [f"client {i} turn {j}" for j in range(5)]
        assert [r[1] for r in rows].count("done") == len(rows)
        assert sum(r[0] == "assistant" for r in rows) == 5


@pytest.mark.slow
def test_killed_mid_turn_leaves_the_database_intact(tiny, tmp_path):
    db = tmp_path / "s.db"
    s = Server(tiny, db, tmp_path / "app.log")
    client = Client(s.url, verbose=False)
    _, _, sid = chat(client, "first", settings=QUICK)
    slow = json.dumps({"steps": 256, "max_tokens": 512, "dynamic": False, "confidence": 1.0})
    client.submit("second", None, sid, "t", slow, api_name="/chat")
    deadline = time.time() + 60
    while time.time() < deadline:
        with sqlite3.connect(db) as c:
            if c.execute("SELECT COUNT(*) FROM turns WHERE status = 'pending'").fetchone()[0]:
                break
        time.sleep(0.2)
    else:
        raise AssertionError("the second turn never started")
    s.kill()
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT status FROM turns ORDER BY idx").fetchall() == \
            [("done",), ("done",), ("done",), ("pending",)]
    s2 = Server(tiny, db, tmp_path / "app.log")
    try:
        with sqlite3.connect(db) as c:
            rows = c.execute("SELECT status, error FROM turns ORDER BY idx").fetchall()
        assert [r[0] for r in rows] == ["done", "done", "done", "failed"]
        assert "server stopped" in rows[-1][1]
        reply, _, sid2 = chat(Client(s2.url, verbose=False), "third", session=sid,
                              settings=QUICK)
        assert sid2 == sid and not reply.startswith("Error")
    finally:
        s2.stop()


def bad_uploads(d):
    (d / "empty.png").write_bytes(b"")
    (d / "notes.png").write_text("shopping list: milk, eggs\n")
    pic = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(pic).save(d / "big.png")
    data = (d / "big.png").read_bytes()
    (d / "cut.png").write_bytes(data[: len(data) // 2])
    Image.fromarray(pic).save(d / "scan.bmp")
    sf.write(d / "silent.wav", np.zeros(0, np.float32), 16000)
    sf.write(d / "long.wav", np.zeros(16000 * 65, np.float32) + 0.1, 16000)
    (d / "notes.mp3").write_text("not really a song")
    (d / "picture.wav").write_bytes(data)
    (d / "clip.mp4").write_text("not a video")
    (d / "readme.txt").write_text("hello")
    return {"empty.png": "is empty", "notes.png": "is not an image", "cut.png": "truncated",
            "scan.bmp": "unsupported file type", "silent.wav": "contains no sound",
            "long.wav": "65.0 s long", "notes.mp3": "is not an audio file",
            "picture.wav": "is not an audio file", "clip.mp4": "is not a video",
            "readme.txt": "unsupported file type"}


@pytest.mark.slow
def test_bad_inputs_get_clear_messages_and_the_server_keeps_serving(server, tmp_path):
    client = Client(server.url, verbose=False)
    for name, expected in bad_uploads(tmp_path).items():
        reply, media, _ = chat(client, "what is this?", tmp_path / name, settings=QUICK)
        assert reply.startswith("Error:") and expected in reply, (name, reply)
        assert media == [] and "Traceback" not in reply
    for text, expected in (("", "empty"), ("x" * 100_000, "too long")):
        reply, _, _ = chat(client, text, settings=QUICK)
        assert reply.startswith("Error:") and expected in reply, reply
    reply, _, _ = chat(client, "bad settings", settings='{"steps": -1}')
    assert reply.startswith("Error:") and "steps" in reply
    reply, _, sid = chat(client, "still there?", settings=QUICK)
    assert not reply.startswith("Error") and sid


@pytest.mark.slow
def test_replay_cli_reproduces_and_reports_a_change(server, tmp_path):
    client = Client(server.url, verbose=False)
    _, _, sid = chat(client, "hello", settings=QUICK)
    chat(client, "and again", session=sid,
         settings=json.dumps({"steps": 3, "max_tokens": 16, "temperature": 1.0, "seed": 5}))
    db = tmp_path / "s.db"

    def replay(*extra):
        return subprocess.run([sys.executable, "-m", "sessions", "replay", str(db), "--session",
                               sid, *extra], cwd=ROOT, capture_output=True, text=True,
                              timeout=300)

    played = replay()
    assert played.returncode == 0 and "hello" in played.stdout
    same = replay("--rerun", "--report", str(tmp_path / "r.json"))
    assert same.returncode == 0, same.stdout + same.stderr
    assert json.loads((tmp_path / "r.json").read_text())[0]["differing"] == 0
    with sqlite3.connect(db) as c:
        c.execute("UPDATE turns SET settings = ? WHERE idx = 3",
                  [json.dumps({"steps": 3, "max_tokens": 16, "temperature": 1.0, "seed": 6})])
    changed = replay("--rerun")
    assert changed.returncode == 1 and "DIFFERS" in changed.stdout and "turn 3" in changed.stdout
