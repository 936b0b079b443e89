"""The session store: schema, ownership, turns written at start and finish, blobs,
export/import, crash recovery."""

import hashlib
import io
import json
import sqlite3
import zipfile

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from sessions.store import INTERRUPTED, NotFound, SessionStore


def png(seed: int = 0, size: int = 8) -> bytes:
    """Real PNG bytes, different for every seed: the store keeps media only."""
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def wav(seconds: float = 0.1) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.full(int(16000 * seconds), 0.1, np.float32), 16000, format="WAV")
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "db" / "sessions.db", app_version="test")
    yield s
    s.close()


def test_schema_pragmas_and_migrations(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert set(store.db.table_names()) >= {"sessions", "turns", "parts", "blobs",
                                           "_sqlite_migrations"}
    assert store.integrity() == "ok"
    again = SessionStore(store.path)  # reopening applies nothing twice
    assert len(list(again.db["_sqlite_migrations"].rows)) == 1
    again.close()


def test_sessions_belong_to_their_owner(store):
    a = store.create_session("alice", "Alice's chat")
    store.create_session("bob", "Bob's chat")
    assert [s["title"] for s in store.list_sessions("alice")] == ["Alice's chat"]
    with pytest.raises(NotFound):
        store.turns(a, "bob")
    with pytest.raises(NotFound):
        store.rename(a, "mine now", "bob")
    with pytest.raises(NotFound):
        store.delete(a, "bob")
    store.rename(a, "  Shapes   and colours ", "alice")
    assert store.session(a, "alice")["title"] == "Shapes and colours"


def test_turns_parts_and_blobs(store, tmp_path):
    sid = store.create_session("u")
    picture = tmp_path / "in.png"
    picture.write_bytes(png())
    store.start_turn(sid, "user", [{"kind": "text", "text": "look"},
                                   {"kind": "image", "path": str(picture)}], "u", status="done")
    tid = store.start_turn(sid, "assistant", [], "u", {"seed": 3})
    turns = store.turns(sid, "u")
    assert [t.status for t in turns] == ["done", "pending"]
    assert turns[1].settings == {"seed": 3} and turns[1].parent_id == turns[0].id
    stored = store.add_part(tid, {"kind": "text", "text": "a red circle"})
    assert stored == {"kind": "text", "text": "a red circle"}
    store.finish_turn(tid, status="done", metrics={"steps": 5})
    turns = store.turns(sid, "u")
    assert turns[1].status == "done" and turns[1].metrics == {"steps": 5}
    image = turns[0].parts[1]
    assert image.path.read_bytes() == picture.read_bytes() and image.mime == "image/png"
    assert image.path.name == hashlib.sha256(picture.read_bytes()).hexdigest() + ".png"
    msgs = store.messages(sid, "u")
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["parts"][1] == {"kind": "image", "path": str(image.path)}
    # the same bytes twice are one blob
    store.start_turn(sid, "user", [{"kind": "image", "path": str(picture)}], "u", status="done")
    assert store.db["blobs"].count == 1
    with pytest.raises(ValueError, match="done, failed or cancelled"):
        store.finish_turn(tid, status="pending")


def test_failed_and_cancelled_replies_leave_the_history(store):
    sid = store.create_session("u")
    store.start_turn(sid, "user", [{"kind": "text", "text": "hi"}], "u", status="done")
    tid = store.start_turn(sid, "assistant", [], "u")
    store.finish_turn(tid, status="cancelled", error="stopped")
    assert [m["role"] for m in store.messages(sid, "u")] == ["user"]


def test_delete_removes_turns_and_orphan_blobs(store, tmp_path):
    sid = store.create_session("u")
    f = tmp_path / "a.wav"
    f.write_bytes(wav())
    store.start_turn(sid, "user", [{"kind": "audio", "path": str(f)}], "u", status="done")
    blob = store.turns(sid, "u")[0].parts[0].path
    store.delete(sid, "u")
    assert store.list_sessions("u") == [] and store.db["turns"].count == 0
    assert store.db["parts"].count == 0 and not blob.exists()


def test_pending_turns_are_marked_failed_on_reopen(store):
    sid = store.create_session("u")
    store.start_turn(sid, "user", [{"kind": "text", "text": "hi"}], "u", status="done")
    store.start_turn(sid, "assistant", [], "u")
    store.close()
    reopened = SessionStore(store.path)
    assert reopened.recovered == 1
    t = reopened.turns(sid, "u")[1]
    assert t.status == "failed" and t.error == INTERRUPTED
    assert reopened.integrity() == "ok"
    reopened.close()


def test_export_import_round_trip(store, tmp_path):
    sid = store.create_session("u", "trip")
    img = tmp_path / "x.png"
    img.write_bytes(png(1))
    store.start_turn(sid, "user", [{"kind": "text", "text": "draw"},
                                   {"kind": "image", "path": str(img)}], "u", status="done")
    tid = store.start_turn(sid, "assistant", [], "u", {"seed": 9})
    store.add_part(tid, {"kind": "image", "data": png(2), "mime": "image/png"})
    store.finish_turn(tid, metrics={"steps": 2})
    archive = store.export(sid, "u", tmp_path / "trip.zip")
    doc = json.loads(zipfile.ZipFile(archive).read("session.json"))
    assert "owner" not in doc["session"]
    new = store.import_(archive, "v")
    a, b = store.turns(sid, "u"), store.turns(new, "v")
    assert [(t.role, t.status, t.settings) for t in a] == [(t.role, t.status, t.settings)
                                                           for t in b]
    assert [p.path.read_bytes() if p.path else p.text for t in b for p in t.parts] == \
        ["draw", png(1), png(2)]
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a usable session archive"):
        store.import_(bad, "v")


def test_foreign_keys_are_enforced(store):
    with pytest.raises(sqlite3.IntegrityError):
        store.db.execute("INSERT INTO turns (session_id, idx, role, status) "
                         "VALUES ('nope', 0, 'user', 'done')")


def test_a_running_reply_blocks_deletion(store):
    sid = store.create_session("u")
    store.start_turn(sid, "user", [{"kind": "text", "text": "hi"}], "u", status="done")
    tid = store.start_turn(sid, "assistant", [], "u")
    with pytest.raises(ValueError, match="still running"):
        store.delete(sid, "u")
    store.finish_turn(tid, status="cancelled")
    store.delete(sid, "u")
    store.finish_turn(tid, status="done")  # a late finish of a deleted turn is harmless


def test_malformed_archives_write_nothing(store, tmp_path):
    def archive(doc, media=None):
        path = tmp_path / f"a{len(list(tmp_path.iterdir()))}.zip"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("session.json", json.dumps(doc))
            for name, data in (media or {}).items():
                z.writestr(f"media/{name}", data)
        return path

    turn = {"role": "user", "status": "done", "settings": {}, "parts": [{"kind": "text",
                                                                        "text": "hi"}]}
    good = {"version": 1, "session": {"title": "t"}, "turns": [turn]}
    bad_docs = [
        {**good, "version": 7},
        {**good, "turns": [{**turn, "role": "robot"}]},
        {**good, "turns": [{**turn, "parts": [{"kind": "image", "blob": "ab" * 32}]}]},
        {**good, "turns": [turn, "nonsense"]},
    ]
    for doc in bad_docs:
        with pytest.raises(ValueError, match="not a usable session archive"):
            store.import_(archive(doc), "v")
    with_image = {**good, "turns": [{**turn, "parts": [{"kind": "image", "blob": "ab" * 32}]}]}
    damaged = archive(with_image, {"ab" * 32: b"bytes that do not hash to that"})
    with pytest.raises(ValueError, match="damaged"):
        store.import_(damaged, "v")
    assert store.list_sessions("v") == []
    assert store.list_sessions("v") == [] and store.import_(archive(good), "v")


def test_collecting_garbage_keeps_blobs_in_use(store, tmp_path):
    sid = store.create_session("u")
    store.start_turn(sid, "user", [{"kind": "image", "data": png(3), "mime": "image/png"}],
                     "u", status="done")
    store.put_blob(png(4))
    assert store.collect_garbage() == 1
    assert store.turns(sid, "u")[0].parts[0].path.read_bytes() == png(3)


def media_archive(path, turns, media=()):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("session.json", json.dumps({"version": 1, "session": {"title": "t"},
                                               "turns": turns}))
        for data in media:
            z.writestr(f"media/{hashlib.sha256(data).hexdigest()}", data)
    return path


def image_turn(data, mime="image/png"):
    return {"role": "user", "status": "done", "settings": {},
            "parts": [{"kind": "image", "blob": hashlib.sha256(data).hexdigest(),
                       "mime": mime}]}


def test_blob_names_follow_one_rule_whatever_a_process_imported(tmp_path):
    import subprocess
    import sys

    code = ("import sys; {} from sessions.store import blob_name; "
            "print(blob_name('ab' * 32, 'audio/wav'), blob_name('ab' * 32, 'text/html'))")
    names = {subprocess.run([sys.executable, "-c", code.format(first)], capture_output=True,
                            text=True, cwd=str(__import__("pathlib").Path(__file__).parents[1]))
             .stdout.strip() for first in ("", "import gradio;")}
    assert names == {"ab" * 32 + ".wav " + "ab" * 32 + ".bin"}


def test_only_media_are_stored_typed_by_their_bytes(store):
    with pytest.raises(ValueError, match="look like a text file"):
        store.put_blob(b"<html><script>alert(1)</script></html>")
    sha = store.put_blob(wav())
    assert store.db["blobs"].get(sha)["mime"] == "audio/wav"
    assert store.blob_path(sha, "audio/wav").name == sha + ".wav"


def test_imported_media_are_checked_by_their_content(store, tmp_path):
    html = b"<!doctype html><script>alert(1)</script>"
    for i, (data, words) in enumerate(((html, "not an image"), (wav(), "not an image"),
                                       (png()[:60], "truncated or damaged"))):
        with pytest.raises(ValueError, match=words):
            store.import_(media_archive(tmp_path / f"{i}.zip", [image_turn(data, "text/html")],
                                        [data]), "v")
    assert list(store.media.rglob("*.*")) == [] and store.db["blobs"].count == 0
    sid = store.import_(media_archive(tmp_path / "ok.zip", [image_turn(png(), "text/html")],
                                      [png()]), "v")
    part = store.turns(sid, "v")[0].parts[0]
    assert part.mime == "image/png" and part.path.suffix == ".png"


def test_archive_limits_are_checked_before_parsing(store, tmp_path):
    from sessions import archive as arc

    assert arc.json_shape(b'{"a": [1, {"b": "[[[["}], "c": {}}') == (3, 4)
    cases = {
        "nests": '{"version": 1, "session": ' + "[" * 5000 + "]" * 5000 + ', "turns": []}',
        "objects and lists": '{"version": 1, "session": {}, "turns": ['
                             + ",".join(["[]"] * (arc.MAX_JSON_CONTAINERS + 1)) + "]}",
    }
    for words, text in cases.items():
        path = tmp_path / f"{words[:5]}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("session.json", text)
        with pytest.raises(ValueError, match=words):
            store.import_(path, "v")
    odd = tmp_path / "odd.zip"
    with zipfile.ZipFile(odd, "w") as z:
        z.writestr("session.json", "{}")
        z.writestr("../../evil.sh", "rm -rf /")
    with pytest.raises(ValueError, match="unexpected entry"):
        store.import_(odd, "v")
    assert store.db["sessions"].count == 0


def test_an_import_writes_in_chunks_and_a_failure_is_undone(store, tmp_path, monkeypatch):
    import sessions.store as st

    turns = [image_turn(png(i % 3)) for i in range(12)]
    path = media_archive(tmp_path / "a.zip", turns, [png(0), png(1), png(2)])
    monkeypatch.setattr(st, "IMPORT_CHUNK", 4)
    real, seen = store._insert_turn, []

    def failing(sid, idx, *args):
        seen.append(store.db.execute("SELECT owner FROM sessions WHERE id = ?",
                                     [sid]).fetchone()[0])
        if idx == 9:
            raise sqlite3.OperationalError("disk I/O error")
        return real(sid, idx, *args)

    monkeypatch.setattr(store, "_insert_turn", failing)
    with pytest.raises(ValueError, match="the import failed and was undone"):
        store.import_(path, "v")
    assert all(o.startswith(st.IMPORTING) for o in seen)  # nobody saw it half-written
    assert store.db["sessions"].count == store.db["turns"].count == 0
    assert store.db["blobs"].count == 0 and list(store.media.rglob("*.*")) == []
    monkeypatch.setattr(store, "_insert_turn", real)
    sid = store.import_(path, "v")
    assert len(store.turns(sid, "v")) == 12 and store.db["blobs"].count == 3


def test_an_import_cut_off_by_a_crash_is_dropped_on_open(store):
    store.create_session("importing:123", "half")
    store.close()
    again = SessionStore(store.path)
    assert again.db["sessions"].count == 0
    again.close()


def test_read_only_opening_changes_nothing(tmp_path):
    from sessions.store import StoreError

    (tmp_path / "empty.db").write_bytes(b"")
    (tmp_path / "text.db").write_text("hello\n" * 50)
    for name, words in (("empty.db", "empty"), ("text.db", "not one"),
                        ("none.db", "no such file")):
        with pytest.raises(StoreError, match=words):
            SessionStore(tmp_path / name, read_only=True)
    ok = SessionStore(tmp_path / "ok.db")
    ok.create_session("u")
    ok.close()
    before = sorted(p.name for p in tmp_path.iterdir())
    ro = SessionStore(tmp_path / "ok.db", read_only=True)
    assert len(ro.all_sessions()) == 1
    with pytest.raises(sqlite3.OperationalError):
        ro.create_session("u")
    ro.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "empty.db").read_bytes() == b""
