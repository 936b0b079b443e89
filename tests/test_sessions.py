"""The session store: schema, ownership, turns written at start and finish, blobs,
export/import, crash recovery."""

import hashlib
import json
import sqlite3
import zipfile

import pytest

from sessions.store import INTERRUPTED, NotFound, SessionStore


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
    png = tmp_path / "in.png"
    png.write_bytes(b"\x89PNG fake but stored as bytes")
    store.start_turn(sid, "user", [{"kind": "text", "text": "look"},
                                   {"kind": "image", "path": str(png)}], "u", status="done")
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
    assert image.path.read_bytes() == png.read_bytes() and image.mime == "image/png"
    assert image.path.name == hashlib.sha256(png.read_bytes()).hexdigest() + ".png"
    msgs = store.messages(sid, "u")
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    assert msgs[0]["parts"][1] == {"kind": "image", "path": str(image.path)}
    # the same bytes twice are one blob
    store.start_turn(sid, "user", [{"kind": "image", "path": str(png)}], "u", status="done")
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
    f.write_bytes(b"RIFF....")
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
    img.write_bytes(b"pixels")
    store.start_turn(sid, "user", [{"kind": "text", "text": "draw"},
                                   {"kind": "image", "path": str(img)}], "u", status="done")
    tid = store.start_turn(sid, "assistant", [], "u", {"seed": 9})
    store.add_part(tid, {"kind": "image", "data": b"reply-png", "mime": "image/png"})
    store.finish_turn(tid, metrics={"steps": 2})
    archive = store.export(sid, "u", tmp_path / "trip.zip")
    doc = json.loads(zipfile.ZipFile(archive).read("session.json"))
    assert "owner" not in doc["session"]
    new = store.import_(archive, "v")
    a, b = store.turns(sid, "u"), store.turns(new, "v")
    assert [(t.role, t.status, t.settings) for t in a] == [(t.role, t.status, t.settings)
                                                           for t in b]
    assert [p.path.read_bytes() if p.path else p.text for t in b for p in t.parts] == \
        ["draw", b"pixels", b"reply-png"]
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
    damaged = archive(good, {"ab" * 32: b"bytes that do not hash to that"})
    with pytest.raises(ValueError, match="damaged"):
        store.import_(damaged, "v")
    assert store.list_sessions("v") == []
    assert store.list_sessions("v") == [] and store.import_(archive(good), "v")


def test_collecting_garbage_keeps_blobs_in_use(store, tmp_path):
    sid = store.create_session("u")
    store.start_turn(sid, "user", [{"kind": "image", "data": b"kept", "mime": "image/png"}],
                     "u", status="done")
    store.put_blob(b"orphan", "image/png")
    assert store.collect_garbage() == 1
    assert store.turns(sid, "u")[0].parts[0].path.read_bytes() == b"kept"
