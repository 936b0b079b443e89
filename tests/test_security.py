"""The app under attack and under damage, through the real server (tests/server.py), the page's
own events (tests/page_client.py) and the real command-line tool: imported media served as
pages, blob names that differ between processes, a 4K clip, hostile archives, an import that
stalls everyone, damaged databases, request limits, and the browser key that is no secret."""

import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from fractions import Fraction

import av
import numpy as np
import pytest
import soundfile as sf
from gradio_client import Client, handle_file
from gradio_client.utils import Status
from PIL import Image

from sessions.store import SessionStore
from tests.engine_fixtures import tiny_checkpoint
from tests.page_client import Page
from tests.server import ROOT, Server

QUICK = json.dumps({"steps": 2, "max_tokens": 16})
SLOW = json.dumps({"steps": 1024, "max_tokens": 512, "dynamic": False, "confidence": 1.0,
                   "settle": False})  # every one of the 1024 steps runs: a reply of minutes
HTML = b"<!doctype html><html><script>fetch('/steal?'+localStorage.length)</script></html>"
pytestmark = pytest.mark.slow  # every test here starts the app or the replay command


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def server(tiny, tmp_path_factory):
    d = tmp_path_factory.mktemp("app")
    s = Server(tiny, d / "s.db", d / "app.log")
    s.db = d / "s.db"
    yield s
    s.stop()


def png(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (16, 16, 3), np.uint8)) \
        .save(buf, format="PNG")
    return buf.getvalue()


def archive(path, turns, media=(), extra=()) -> str:
    """An export archive of these turns; `media` bytes are named by their hash."""
    doc = {"version": 1, "session": {"title": "imported"}, "turns": turns}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", json.dumps(doc))
        for data in media:
            z.writestr(f"media/{hashlib.sha256(data).hexdigest()}", data)
        for name, data in extra:
            z.writestr(name, data)
    return str(path)


def turn(*parts, role="user"):
    return {"role": role, "status": "done", "settings": {}, "parts": list(parts)}


def image_part(data: bytes, mime="image/png") -> dict:
    return {"kind": "image", "blob": hashlib.sha256(data).hexdigest(), "mime": mime,
            "name": "x"}


def media_files(db) -> list:
    media = db.with_name(db.name + ".media")
    return sorted(p for p in media.rglob("*") if p.is_file())


def import_note(page: Page, path) -> str:
    """The note the sidebar shows after an archive is uploaded to its Import button."""
    dep = page.dependency("upload", "import")
    data = [page.upload(path)] + [None] * (len(dep["inputs"]) - 1)
    return page.call(dep, data)[0]


def fetch(server, path):
    """(status, headers) of the server's response for a file it serves by path."""
    try:
        with urllib.request.urlopen(f"{server.url}gradio_api/file={path}", timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}


def chat(client, text, file=None, session="", token="t", settings=QUICK):
    return client.predict(text, handle_file(str(file)) if file else None, session, token,
                          settings, api_name="/chat")


# ---------------------------------------------------------------- 1. stored script


def test_an_imported_page_or_picture_is_never_served_as_a_page(server, tmp_path):
    page = Page(server.url)
    page.open()
    before = media_files(server.db)
    for name, data, mime in (("page.zip", HTML, "text/html"),
                             ("drawing.zip", (b'<svg xmlns="http://www.w3.org/2000/svg">'
                                              b'<script>alert(1)</script></svg>'),
                              "image/svg+xml")):
        note = import_note(page, archive(tmp_path / name, [turn(image_part(data, mime))],
                                         [data]))
        assert note.startswith("⚠") and "not an image" in note, note
    assert media_files(server.db) == before  # nothing was written
    picture = png(1)  # a real picture declared as a page is stored and served as a picture
    note = import_note(page, archive(tmp_path / "ok.zip", [turn(image_part(picture,
                                                                           "text/html"))],
                                     [picture]))
    assert note == "Imported.", note
    stored = [p for p in media_files(server.db) if p not in before]
    assert [p.name for p in stored] == [hashlib.sha256(picture).hexdigest() + ".png"]
    status, headers = fetch(server, stored[0])
    assert status == 200 and headers["content-type"] == "image/png"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["content-disposition"].startswith("inline")
    page.close()


def test_a_page_left_in_the_media_folder_by_an_older_version_is_defused(tiny, tmp_path):
    db = tmp_path / "old.db"
    store = SessionStore(db)
    sid = store.create_session("browser:victim")
    store.start_turn(sid, "user", [{"kind": "image", "data": png(2)}], "browser:victim",
                     status="done")
    sha = store.turns(sid, "browser:victim")[0].parts[0].blob
    store.close()
    # what an older version wrote for a part imported as text/html
    media = db.with_name(db.name + ".media") / sha[:2]
    for f in media.glob(sha + "*"):
        f.unlink()
    (media / f"{sha}.html").write_bytes(HTML)
    with sqlite3.connect(db) as c:
        c.execute("UPDATE blobs SET mime = 'text/html'")
    s = Server(tiny, db, tmp_path / "app.log")
    try:
        assert not (media / f"{sha}.html").exists()
        status, headers = fetch(s, media / f"{sha}.bin")
        assert status == 200 and headers["content-type"] == "application/octet-stream"
        assert headers["content-disposition"].startswith("attachment")
        assert headers["x-content-type-options"] == "nosniff"
        with sqlite3.connect(db) as c:
            assert c.execute("SELECT mime FROM blobs").fetchone()[0] == "application/octet-stream"
    finally:
        s.stop()


# ---------------------------------------------------------------- 2. one naming rule


def test_replay_reruns_a_session_with_an_uploaded_wav(server, tmp_path):
    sf.write(tmp_path / "said.wav", np.sin(np.arange(8000) / 5).astype(np.float32) * 0.3, 16000)
    client = Client(server.url, verbose=False)
    reply, _, sid = chat(client, "what did I say?", tmp_path / "said.wav", token="wav")
    assert not reply.startswith("Error"), reply
    names = [p.name for p in media_files(server.db)]
    assert any(n.endswith(".wav") for n in names), names
    out = subprocess.run([sys.executable, "-m", "sessions", "replay", str(server.db),
                          "--session", sid, "--rerun"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 differ" in out.stdout and "Traceback" not in out.stderr


# ---------------------------------------------------------------- 3. a 4K clip


def clip_4k(path, seconds=4, fps=10, w=3840, h=2160):
    """A 4K H.264 clip of a square moving across black (small file, huge frames)."""
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=Fraction(fps))
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        v.options = {"preset": "ultrafast", "threads": "1"}
        img = np.zeros((h, w, 3), np.uint8)
        for i in range(seconds * fps):
            img[:] = 0
            img[200:800, 100 + 60 * i:700 + 60 * i] = (255, 0, 0)
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(v.encode(None))
    return path


def peak_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def test_a_4k_clip_of_4_seconds_adds_little_memory(server, tmp_path):
    from tests.media_files import write_container

    client = Client(server.url, verbose=False)
    small = write_container(tmp_path / "small.mp4", "mp4", "libx264", None)
    reply, _, sid = chat(client, "which way?", small, token="video")  # decoders loaded
    assert not reply.startswith("Error"), reply
    before = peak_mb(server.proc.pid)
    reply, _, sid = chat(client, "and this?", clip_4k(tmp_path / "4k.mp4"), session=sid,
                         token="video")
    assert not reply.startswith("Error"), reply
    assert peak_mb(server.proc.pid) - before < 300


# ---------------------------------------------------------------- 4. hostile archives


def test_hostile_archives_get_a_message_and_the_server_keeps_serving(server, tmp_path):
    page = Page(server.url)
    page.open()
    nested = tmp_path / "nested.zip"
    with zipfile.ZipFile(nested, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", '{"version": 1, "session": ' + "[" * 100_000
                   + "]" * 100_000 + ', "turns": []}')
    empties = tmp_path / "empties.zip"
    with zipfile.ZipFile(empties, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("session.json", '{"version": 1, "session": {}, "turns": ['
                   + ",".join(["{}"] * 3_000_000) + "]}")
    twice = tmp_path / "twice.zip"
    good = json.dumps({"version": 1, "session": {"title": "a"}, "turns": []})
    with zipfile.ZipFile(twice, "w") as z:
        z.writestr("session.json", good)
        with pytest.warns(UserWarning):
            z.writestr("session.json", good.replace('"a"', '"b"'))
    before = peak_mb(server.proc.pid)
    for path, expected in ((nested, "nests"), (empties, "MB"), (twice, "twice")):
        note = import_note(page, path)
        assert note.startswith("⚠ not a usable session archive") and expected in note, note
    assert peak_mb(server.proc.pid) - before < 200
    reply, _, _ = chat(Client(server.url, verbose=False), "still there?", token="after")
    assert not reply.startswith("Error"), reply
    page.close()


# ---------------------------------------------------------------- 5. an import and the others


def test_an_import_does_not_stall_another_users_turn(server, tmp_path):
    many = [turn({"kind": "text", "text": f"line {i}"}, role="user" if i % 2 else "assistant")
            for i in range(20_000)]
    path = archive(tmp_path / "many.zip", many)
    page = Page(server.url)
    page.open()
    done = {}

    def run_import():
        started = time.monotonic()
        done["note"] = import_note(page, path)
        done["seconds"] = time.monotonic() - started
        done["at"] = time.monotonic()

    worker = threading.Thread(target=run_import)
    worker.start()
    time.sleep(1.0)  # the upload is in and the import under way
    client = Client(server.url, verbose=False)
    started = time.monotonic()
    reply, _, _ = chat(client, "are you there?", token="other")
    took, finished = time.monotonic() - started, time.monotonic()
    worker.join(timeout=300)
    assert done["note"] == "Imported.", done
    assert not reply.startswith("Error"), reply
    assert took < 5, f"a turn took {took:.1f} s during an import of {done['seconds']:.1f} s"
    assert finished < done["at"] + 5
    page.close()


# ---------------------------------------------------------------- 6. damaged input


def replay(*args):
    return subprocess.run([sys.executable, "-m", "sessions", "replay", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def small_db(path):
    store = SessionStore(path)
    sid = store.create_session("u", "kept")
    store.start_turn(sid, "user", [{"kind": "image", "data": png(3)},
                                   {"kind": "text", "text": "what is it?"}], "u", status="done")
    for i in range(200):
        store.start_turn(sid, "assistant", [{"kind": "text", "text": f"reply {i} " * 20}], "u",
                         status="done")
    store.close()
    return path


def test_the_replay_command_on_damaged_input_says_why_and_changes_nothing(tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "folder.db").mkdir()
    (tmp_path / "notes.db").write_text("not a database at all\n" * 100)
    corrupt = small_db(tmp_path / "corrupt.db")
    data = bytearray(corrupt.read_bytes())
    data[4096:] = np.random.default_rng(0).integers(0, 255, len(data) - 4096, np.uint8).tobytes()
    corrupt.write_bytes(bytes(data))
    truncated = small_db(tmp_path / "truncated.db")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    small_db(tmp_path / "lost.db")
    for f in (tmp_path / "lost.db.media").rglob("*.png"):
        f.unlink()
    cases = {"empty.db": "empty", "folder.db": "folder", "notes.db": "not",
             "corrupt.db": "damaged", "truncated.db": "damaged", "lost.db": "missing",
             "absent.db": "no such file"}
    for name, expected in cases.items():
        before = sorted((p.name, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
        for extra in ((), ("--rerun", "--model", tmp_path / "nowhere")):
            out = replay(tmp_path / name, *extra)
            assert out.returncode == 2, (name, extra, out.returncode, out.stdout, out.stderr)
            assert "Traceback" not in out.stderr and out.stderr.startswith("error: ")
            assert expected in out.stderr, (name, out.stderr)
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        after = sorted((p.name, p.read_bytes()) for p in tmp_path.rglob("*") if p.is_file())
        assert after == before, f"{name} was changed"


def test_the_app_on_a_damaged_database_says_a_sentence(tiny, tmp_path):
    db = small_db(tmp_path / "s.db")
    db.write_bytes(db.read_bytes()[:4096] + b"\x00garbage" * 2000)
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "NEXTOMNI_DB": str(db),
           "NEXTOMNI_MODEL": str(tiny)}
    out = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr[-2000:]
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and str(db) in last and "backup" in last, last


# ---------------------------------------------------------------- 7. a failed import


def test_a_failed_import_says_so_on_the_page_and_leaves_no_media(server, tmp_path):
    page = Page(server.url)
    page.open()
    before = media_files(server.db)
    first, second = png(4), png(5)
    path = archive(tmp_path / "half.zip", [turn(image_part(first)),
                                           turn({**image_part(second), "mime": {"x": 1}})],
                   [first, second])
    note = import_note(page, path)
    assert note.startswith("⚠ not a usable session archive") and "turn 1" in note, note
    assert media_files(server.db) == before
    with sqlite3.connect(server.db) as c:
        assert c.execute("SELECT COUNT(*) FROM sessions WHERE title = 'imported' AND "
                         "owner NOT LIKE 'browser:%'").fetchone()[0] == 0
    page.close()


# ---------------------------------------------------------------- 8. request limits


def test_a_request_has_a_time_limit_and_a_client_a_queue_limit(tiny, tmp_path):
    s = Server(tiny, tmp_path / "s.db", tmp_path / "app.log",
               {"NEXTOMNI_REQUEST_SECONDS": "3", "NEXTOMNI_QUEUED_PER_CLIENT": "2"})
    try:
        client = Client(s.url, verbose=False)
        started = time.monotonic()
        job = client.submit("a very long reply", None, "", "greedy", SLOW, api_name="/chat")
        reply, _, _ = job.result(timeout=60)
        assert reply.startswith("Error: the reply took longer than the limit of 3 s"), reply
        assert time.monotonic() - started < 30
        with sqlite3.connect(tmp_path / "s.db") as c:
            status, error = c.execute("SELECT status, error FROM turns WHERE role = "
                                      "'assistant'").fetchone()
        assert status == "failed" and "limit of 3 s" in error
        jobs = []
        for i in range(5):  # one after another: each is queued or refused before the next
            jobs.append(client.submit(f"long {i}", None, "", "greedy", SLOW, api_name="/chat"))
            until = time.monotonic() + 2
            while (jobs[-1].status().code in (Status.STARTING, Status.JOINING_QUEUE)
                   and not jobs[-1].done() and time.monotonic() < until):
                time.sleep(0.02)
        refused = []
        for j in jobs:
            try:
                j.result(timeout=60)
            except Exception as e:  # noqa: BLE001 - the refusal is the client's exception
                refused.append(str(e))
        assert len(refused) >= 3 and all("at most 2 at a time" in r for r in refused), refused
        page = Page(s.url)  # meanwhile a new visitor's page still starts and gets a token
        token = page.open()[0]
        assert isinstance(token, str) and len(token) == 32
        page.close()
    finally:
        s.stop()


# ---------------------------------------------------------------- 9. the browser key


def test_the_browser_key_is_sent_to_visitors_and_said_to_be_no_secret(tiny, tmp_path):
    key = "not-a-secret-4f2a"
    s = Server(tiny, tmp_path / "s.db", tmp_path / "app.log", {"NEXTOMNI_SECRET": key})
    try:
        assert key.encode() in s.page("config")  # every visitor receives it
    finally:
        s.stop()
    assert "not a secret" in (tmp_path / "app.log").read_text()
    help_text = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120).stdout
    assert "NEXTOMNI_SECRET is sent to every visitor" in " ".join(help_text.split())
    doc = " ".join((ROOT / "docs" / "threat-model.md").read_text().split())
    assert "NEXTOMNI_SECRET" in doc and "sent to every visitor" in doc
