"""SessionStore: chat sessions in SQLite (sqlite-utils), media as content-addressed blobs.

    sessions  id, owner, title, created, updated, model, model_revision, quantization, app_version
    turns     id, session_id -> sessions, parent_id -> turns, idx, role,
              status (pending | done | failed | cancelled), settings (JSON, seed included),
              metrics (JSON), error, created, finished
    parts     id, turn_id -> turns, ord, kind (text | image | audio | video), text, blob -> blobs
    blobs     sha256, mime, size, created   (bytes in <db>.media/<ab>/<sha256><ext>)

Media are stored only as allow-listed image, audio or video types decided by their bytes
(`nextomni.media.sniff`), never by a declared type, and every file is named by one rule,
`blob_name`, that every process computes the same way: the web server serves the media folder,
so a name decides how a browser treats the file.

WAL journal, foreign keys on for every connection, schema from `schema.migrations`. A turn is
written when it starts and updated when it ends, so a crash loses at most the turn in flight,
which `recover()` (run on open) marks failed. Sessions belong to an `owner` (the browser's
token); every read or change of a session checks it. Tools that only read (the replay command)
open the database read-only, so they never change what they are given.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from nextomni.media import MEDIA_TYPES, describe_content, sniff
from sessions.archive import EXPORT_VERSION, STATUSES, Archive, read_archive
from sessions.schema import migrations

log = logging.getLogger("nextomni.sessions")
INTERRUPTED = "the server stopped while this turn was running"
IMPORTING = "importing:"  # the owner of a session while its archive is being written
IMPORT_CHUNK = 500        # turns written per hold of the store's lock
UNKNOWN_MIME = "application/octet-stream"
TABLES = {"sessions", "turns", "parts", "blobs"}


class StoreError(ValueError):
    """A database that cannot be used; the message names it and says what to do."""


def blob_name(sha: str, mime: str | None) -> str:
    """The one naming rule for a blob's file: its sha256 and the extension of its
    allow-listed type (`.bin` for anything else, which the server never shows inline). The
    same in every process: not `mimetypes`, whose answers change with what a process has
    imported."""
    t = MEDIA_TYPES.get(mime or "")
    return sha + (t.ext if t else ".bin")


class NotFound(KeyError):
    """No such session for this owner (or none at all: the two are not told apart)."""

    def __str__(self) -> str:
        return self.args[0] if self.args else "not found"


@dataclass
class StoredPart:
    kind: str
    text: str | None = None
    path: Path | None = None   # the blob's file, for media
    mime: str | None = None
    name: str | None = None    # the uploaded file's name, if any
    blob: str | None = None    # sha256 of the bytes

    def to_message_part(self) -> dict:
        """The part as the engine takes it."""
        if self.kind == "text":
            return {"kind": "text", "text": self.text or ""}
        return {"kind": self.kind, "path": str(self.path)}


@dataclass
class StoredTurn:
    id: int
    idx: int
    role: str
    status: str
    parts: list[StoredPart] = field(default_factory=list)
    settings: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    error: str | None = None
    parent_id: int | None = None


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class SessionStore:
    def __init__(self, path: str | Path, app_version: str = "", recover: bool = True,
                 read_only: bool = False):
        """`recover=False` for tools that open the database beside a running server (whose
        turns in flight are not interrupted); `read_only=True` for tools that only read,
        which then change nothing at all (no schema upgrade, no renamed files)."""
        self.path = Path(path)
        self.media = self.path.with_name(self.path.name + ".media")
        self.staging = self.path.with_name(self.path.name + ".staging")  # imports unpack here
        self.app_version = app_version
        self.read_only = read_only
        self._lock = threading.RLock()
        self.recovered = self.renamed = 0
        try:
            self.db = self._open_read_only() if read_only else self._open()
            self._check_integrity()
            if not read_only:
                self.renamed = self._normalise_blob_names()
                self.recovered = self.recover() if recover else 0
        except sqlite3.DatabaseError as e:
            raise StoreError(f"{self.path} cannot be read as a session database ({e}): it is "
                             "damaged or not one; restore it from a backup, or move it aside to "
                             "start a new one") from None

    def _open(self) -> sqlite_utils.Database:
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder; give the path of a database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.media.mkdir(exist_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)  # left by an import that was cut off
        # one connection shared by the server's worker threads, serialised by the lock
        db = sqlite_utils.Database(sqlite3.connect(str(self.path), check_same_thread=False,
                                                   timeout=30))
        db.execute("PRAGMA foreign_keys = ON")
        db.enable_wal()
        migrations.apply(db)
        return db

    def _open_read_only(self) -> sqlite_utils.Database:
        if not self.path.exists():
            raise StoreError(f"{self.path}: no such file")
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a folder, not a session database")
        if self.path.stat().st_size == 0:
            raise StoreError(f"{self.path} is empty (0 bytes), not a session database")
        # with no write-ahead log beside it nothing is writing: read the file as it stands
        # (`immutable`), which creates no -wal/-shm files; else read through the log
        side = [self.path.with_name(self.path.name + x) for x in ("-wal", "-shm")]
        uri = self.path.resolve().as_uri() + \
            ("?mode=ro" if any(f.exists() for f in side) else "?immutable=1")
        db = sqlite_utils.Database(sqlite3.connect(uri, uri=True, check_same_thread=False,
                                                   timeout=30))
        if not TABLES <= set(db.table_names()):
            raise StoreError(f"{self.path} is a SQLite database but not a session database "
                             "(it has no sessions tables)")
        if migrations.pending(db):
            raise StoreError(f"{self.path} was written by an older version of the app; open "
                             "it once with the app to upgrade it")
        return db

    def _check_integrity(self) -> None:
        problem = self.db.execute("PRAGMA quick_check").fetchone()[0]
        if problem != "ok":
            raise StoreError(f"{self.path} is damaged ({problem}); restore it from a backup, "
                             "or move it aside to start a new one")

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # ------------------------------------------------------------------ health
    def integrity(self) -> str:
        with self._lock:
            return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def recover(self) -> int:
        """Mark turns left pending by a stopped server as failed, and drop imports it was
        writing; how many turns there were."""
        with self._lock, self.db.atomic():
            cur = self.db.execute(
                "UPDATE turns SET status = 'failed', error = ?, finished = ? "
                "WHERE status = 'pending'", [INTERRUPTED, now()])
            cut = [r[0] for r in self.db.execute(
                "SELECT id FROM sessions WHERE owner LIKE ?", [IMPORTING + "%"]).fetchall()]
            for sid in cut:
                self._remove_rows(sid)
        if cut:
            self.collect_garbage()
        return cur.rowcount

    # ------------------------------------------------------------------ sessions
    def create_session(self, owner: str, title: str = "New chat", model: str = "",
                       model_revision: str = "", quantization: str | None = None,
                       sid: str | None = None) -> str:
        if not owner:
            raise ValueError("a session needs an owner")
        sid = sid or uuid.uuid4().hex
        t = now()
        with self._lock, self.db.atomic():
            self.db["sessions"].insert({
                "id": sid, "owner": owner, "title": title, "created": t, "updated": t,
                "model": model, "model_revision": model_revision,
                "quantization": quantization or "", "app_version": self.app_version})
        return sid

    def session(self, sid: str, owner: str | None) -> dict:
        """The session row; `owner=None` only for tools run by the host (replay, export)."""
        with self._lock:
            rows = list(self.db.query("SELECT * FROM sessions WHERE id = ?", [sid]))
        if not rows or (owner is not None and rows[0]["owner"] != owner):
            raise NotFound(f"no session {sid!r}")
        return rows[0]

    def list_sessions(self, owner: str) -> list[dict]:
        with self._lock:
            return list(self.db.query(
                "SELECT s.id, s.title, s.created, s.updated, s.model, "
                "(SELECT COUNT(*) FROM turns t WHERE t.session_id = s.id) AS turns "
                "FROM sessions s WHERE s.owner = ? ORDER BY s.updated DESC, s.id", [owner]))

    def all_sessions(self) -> list[dict]:
        with self._lock:
            return list(self.db.query("SELECT * FROM sessions ORDER BY created, id"))

    def rename(self, sid: str, title: str, owner: str | None) -> None:
        self.session(sid, owner)
        title = " ".join(str(title).split())[:200] or "Untitled"
        with self._lock, self.db.atomic():
            self.db["sessions"].update(sid, {"title": title, "updated": now()})

    def delete(self, sid: str, owner: str | None) -> None:
        self.session(sid, owner)
        with self._lock, self.db.atomic():
            if self.db.execute("SELECT 1 FROM turns WHERE session_id = ? AND status = 'pending'",
                               [sid]).fetchone():
                raise ValueError("a reply in this chat is still running; stop it first")
            self._remove_rows(sid)
        self.collect_garbage()

    def _remove_rows(self, sid: str) -> None:
        """A session's rows (blobs stay for `collect_garbage`); the caller holds the lock."""
        self.db.execute("DELETE FROM parts WHERE turn_id IN "
                        "(SELECT id FROM turns WHERE session_id = ?)", [sid])
        self.db.execute("UPDATE turns SET parent_id = NULL WHERE session_id = ?", [sid])
        self.db.execute("DELETE FROM turns WHERE session_id = ?", [sid])
        self.db.execute("DELETE FROM sessions WHERE id = ?", [sid])

    # ------------------------------------------------------------------ turns
    def start_turn(self, sid: str, role: str, parts: list, owner: str | None,
                   settings: dict | None = None, status: str = "pending") -> int:
        """Write a turn (`parts`: (kind, text-or-bytes-or-path, mime, name) tuples or
        StoredPart-like dicts) and return its id; assistant turns start pending."""
        self.session(sid, owner)
        with self._lock, self.db.atomic():  # blobs and their parts together (see collect_garbage)
            stored = [self._store_part(p) for p in parts]
            last = self.db.execute("SELECT id, idx FROM turns WHERE session_id = ? "
                                   "ORDER BY idx DESC LIMIT 1", [sid]).fetchone()
            tid = self.db["turns"].insert({
                "session_id": sid, "parent_id": last[0] if last else None,
                "idx": (last[1] + 1) if last else 0, "role": role, "status": status,
                "settings": json.dumps(settings or {}), "metrics": "{}", "error": None,
                "created": now(), "finished": now() if status != "pending" else None}).last_pk
            self._insert_parts(tid, stored)
            self.db["sessions"].update(sid, {"updated": now()})
        return tid

    def finish_turn(self, tid: int, status: str = "done", metrics: dict | None = None,
                    error: str | None = None) -> None:
        """Close a turn (a no-op for a turn deleted meanwhile)."""
        if status not in STATUSES or status == "pending":
            raise ValueError(f"a finished turn is done, failed or cancelled, not {status!r}")
        with self._lock, self.db.atomic():
            self.db.execute("UPDATE turns SET status = ?, metrics = ?, error = ?, finished = ? "
                            "WHERE id = ?", [status, json.dumps(metrics or {}), error, now(), tid])

    def add_part(self, tid: int, part) -> dict:
        """Append one part to a turn (a reply segment as it finishes); the stored part as
        {"kind", "text"} or {"kind", "path", "mime", "name"}."""
        with self._lock, self.db.atomic():
            stored = self._store_part(part)
            self._insert_parts(tid, [stored])
            if stored["blob"] is None:
                return {"kind": "text", "text": stored["text"]}
            mime = self.db.execute("SELECT mime FROM blobs WHERE sha256 = ?",
                                   [stored["blob"]]).fetchone()[0]
        return {"kind": stored["kind"], "path": str(self.blob_file(stored["blob"], mime)),
                "mime": mime, "name": stored["name"]}

    def turns(self, sid: str, owner: str | None) -> list[StoredTurn]:
        self.session(sid, owner)
        with self._lock:
            rows = list(self.db.query("SELECT * FROM turns WHERE session_id = ? ORDER BY idx",
                                      [sid]))
            parts = list(self.db.query(
                "SELECT p.*, b.mime FROM parts p LEFT JOIN blobs b ON b.sha256 = p.blob "
                "WHERE p.turn_id IN (SELECT id FROM turns WHERE session_id = ?) "
                "ORDER BY p.turn_id, p.ord", [sid]))
        by_turn: dict[int, list[StoredPart]] = {}
        for p in parts:
            by_turn.setdefault(p["turn_id"], []).append(StoredPart(
                p["kind"], p["text"], self.blob_file(p["blob"], p["mime"]) if p["blob"] else None,
                p["mime"], p["name"], p["blob"]))
        return [StoredTurn(r["id"], r["idx"], r["role"], r["status"], by_turn.get(r["id"], []),
                           json.loads(r["settings"] or "{}"), json.loads(r["metrics"] or "{}"),
                           r["error"], r["parent_id"]) for r in rows]

    def messages(self, sid: str, owner: str | None, before: int | None = None) -> list[dict]:
        """The conversation as engine messages: finished turns only (a failed or cancelled
        reply is left out), up to turn index `before`."""
        out = []
        for t in self.turns(sid, owner):
            if before is not None and t.idx >= before:
                break
            if t.status == "done" and t.parts:
                out.append({"role": t.role, "parts": [p.to_message_part() for p in t.parts]})
        return out

    def missing_media(self, sid: str, owner: str | None) -> list[tuple[int, StoredPart]]:
        """(turn index, part) of every media part of the session whose file is gone."""
        return [(t.idx, p) for t in self.turns(sid, owner) for p in t.parts
                if p.blob is not None and not p.path.is_file()]

    # ------------------------------------------------------------------ blobs
    def put_blob(self, data: bytes) -> str:
        """Store bytes by their sha256, typed by their content; anything but an allow-listed
        image, audio or video type is refused."""
        found = sniff(data[:64])
        if found is None:
            what = describe_content(data[:64])
            raise ValueError("only images, audio and video of the supported formats are stored"
                             + (f"; these bytes look like {what}" if what else ""))
        sha = hashlib.sha256(data).hexdigest()
        with self._lock, self.db.atomic():
            row = self.db.execute("SELECT mime FROM blobs WHERE sha256 = ?", [sha]).fetchone()
            mime = row[0] if row else found.mime
            path = self.blob_file(sha, mime)
            if not path.exists():
                path.parent.mkdir(exist_ok=True)
                tmp = path.with_name(f".{uuid.uuid4().hex}.tmp")
                tmp.write_bytes(data)
                tmp.replace(path)  # atomic: a crash never leaves half a blob under its name
            if not row:
                self.db["blobs"].insert({"sha256": sha, "mime": mime, "size": len(data),
                                         "created": now()})
        return sha

    def blob_path(self, sha: str, mime: str | None) -> Path:
        """Where a blob's file belongs (`blob_name`)."""
        return self.media / sha[:2] / blob_name(sha, mime)

    def blob_file(self, sha: str, mime: str | None) -> Path:
        """The blob's file: where it belongs, or where an older version put it (a database
        opened read-only keeps its old names); where it belongs if it is nowhere."""
        path = self.blob_path(sha, mime)
        if path.exists():
            return path
        return self._old_file(sha) or path

    def _old_file(self, sha: str) -> Path | None:
        folder = self.media / sha[:2]
        names = [f for f in folder.glob(sha + "*") if f.name == sha or f.name[64:65] == "."]
        return names[0] if names else None

    def _normalise_blob_names(self) -> int:
        """Older versions named a blob by its declared type through `mimetypes`, so an
        imported part declared text/html became `<sha>.html`, which the server showed as a
        page. Give every blob its content-decided type and name; how many changed. One
        `stat` per blob when none needs it."""
        renamed = 0
        with self._lock, self.db.atomic():
            for sha, mime in self.db.execute("SELECT sha256, mime FROM blobs").fetchall():
                if mime in MEDIA_TYPES and self.blob_path(sha, mime).exists():
                    continue
                old = self._old_file(sha)
                if old is None:
                    continue  # missing: said where it is read
                with open(old, "rb") as f:
                    found = sniff(f.read(64))
                new = found.mime if found else UNKNOWN_MIME
                old.replace(self.blob_path(sha, new))
                self.db.execute("UPDATE blobs SET mime = ? WHERE sha256 = ?", [new, sha])
                renamed += 1
        if renamed:
            log.warning("gave %d stored media file(s) their content-decided names", renamed)
        return renamed

    def collect_garbage(self) -> int:
        """Remove blobs no part refers to; how many. Under the store's lock, as are writes of
        blobs with their parts, so a blob being stored is never collected."""
        with self._lock, self.db.atomic():
            orphans = self.db.execute(
                "SELECT sha256, mime FROM blobs WHERE sha256 NOT IN "
                "(SELECT blob FROM parts WHERE blob IS NOT NULL)").fetchall()
            for sha, mime in orphans:
                self.db.execute("DELETE FROM blobs WHERE sha256 = ?", [sha])
                self.blob_file(sha, mime).unlink(missing_ok=True)
        return len(orphans)

    def _store_part(self, p) -> dict:
        if isinstance(p, StoredPart):
            p = {"kind": p.kind, "text": p.text, "path": p.path, "name": p.name}
        kind = p["kind"]
        if kind == "text":
            return {"kind": "text", "text": str(p.get("text") or ""), "blob": None, "name": None}
        data, name = p.get("data"), p.get("name")
        if data is None:
            path = Path(p["path"])
            data, name = path.read_bytes(), name or path.name
        return {"kind": kind, "text": None, "name": name, "blob": self.put_blob(data)}

    def _insert_parts(self, tid: int, stored: list[dict]) -> None:
        start = self.db.execute("SELECT COUNT(*) FROM parts WHERE turn_id = ?", [tid]).fetchone()[0]
        for i, p in enumerate(stored):
            self.db["parts"].insert({"turn_id": tid, "ord": start + i, **p})

    # ------------------------------------------------------------------ archives
    def export(self, sid: str, owner: str | None, path: str | Path) -> Path:
        """One zip: session.json (the session, its turns and parts) and media/<sha256>."""
        s = self.session(sid, owner)
        turns = self.turns(sid, owner)
        doc = {"version": EXPORT_VERSION, "session": {k: v for k, v in s.items() if k != "owner"},
               "turns": [{"idx": t.idx, "role": t.role, "status": t.status,
                          "settings": t.settings, "metrics": t.metrics, "error": t.error,
                          "parts": [{"kind": p.kind, "text": p.text, "mime": p.mime,
                                     "name": p.name, "blob": p.blob}
                                    for p in t.parts]} for t in turns]}
        lost = [f"turn {t.idx}" for t in turns for p in t.parts
                if p.blob is not None and not p.path.is_file()]
        if lost:
            raise StoreError(f"session {sid} cannot be exported: the media files of "
                             f"{', '.join(lost[:5])} are missing from {self.media.name}")
        path = Path(path)
        written = set()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("session.json", json.dumps(doc, indent=1))
            for t in turns:
                for p in t.parts:
                    if p.blob is not None and p.blob not in written:
                        z.write(p.path, f"media/{p.blob}")
                        written.add(p.blob)
        return path

    def import_(self, path: str | Path, owner: str) -> str:
        """A session from an `export` archive, as a new session of `owner`. The archive is
        checked whole (`sessions.archive`) before anything is written, without the store's
        lock; then its turns are written a chunk at a time, each chunk a short hold of the
        lock, so other users' turns go on meanwhile. Until the last chunk the session belongs
        to nobody; a failure removes it and its media, a crash leaves it to `recover()`."""
        if not owner:
            raise ValueError("an imported session needs an owner")
        self.staging.mkdir(exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.staging) as tmp:
            archive = read_archive(path, Path(tmp))
            try:
                return self._write_archive(archive, owner)
            except Exception as e:  # noqa: BLE001 - said in one sentence, after the undo
                log.exception("import of %s failed", Path(path).name)
                raise ValueError(f"the import failed and was undone ({e})") from e

    def _write_archive(self, archive: Archive, owner: str) -> str:
        s = archive.session
        sid = self.create_session(IMPORTING + uuid.uuid4().hex, s["title"], s["model"],
                                  s["model_revision"], s["quantization"])
        try:
            parent = None
            for start in range(0, len(archive.turns), IMPORT_CHUNK):
                with self._lock, self.db.atomic():
                    for idx in range(start, min(start + IMPORT_CHUNK, len(archive.turns))):
                        parent = self._insert_turn(sid, idx, parent, archive.turns[idx],
                                                   archive)
            with self._lock, self.db.atomic():
                self.db.execute("UPDATE sessions SET owner = ?, updated = ? WHERE id = ?",
                                [owner, now(), sid])
        except BaseException:
            self._discard(sid, archive)
            raise
        return sid

    def _insert_turn(self, sid: str, idx: int, parent: int | None, t: dict,
                     archive: Archive) -> int:
        """One imported turn and its parts (the caller holds the lock); its id."""
        status, error = t["status"], t["error"]
        if status == "pending":
            status, error = "failed", error or "it was still running when it was exported"
        cur = self.db.execute(
            "INSERT INTO turns (session_id, parent_id, idx, role, status, settings, metrics, "
            "error, created, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [sid, parent, idx, t["role"], status, json.dumps(t["settings"]),
             json.dumps(t["metrics"]), error, now(), now()])
        tid = cur.lastrowid
        for order, p in enumerate(t["parts"]):
            blob = self._adopt(p["blob"], archive) if p["kind"] != "text" else None
            self.db.execute("INSERT INTO parts (turn_id, ord, kind, text, blob, name) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            [tid, order, p["kind"], p.get("text"), blob, p.get("name")])
        return tid

    def _adopt(self, sha: str, archive: Archive) -> str:
        """A staged, checked media file moved into the media folder (once) with its row."""
        staged = archive.media[sha]
        row = self.db.execute("SELECT mime FROM blobs WHERE sha256 = ?", [sha]).fetchone()
        target = self.blob_file(sha, row[0] if row else staged.type.mime)
        if not target.exists():
            target.parent.mkdir(exist_ok=True)
            os.replace(staged.path, target)
        if not row:
            self.db.execute("INSERT INTO blobs (sha256, mime, size, created) VALUES (?, ?, ?, ?)",
                            [sha, staged.type.mime, target.stat().st_size, now()])
        return sha

    def _discard(self, sid: str, archive: Archive) -> None:
        """Undo a half-written import: its rows, and media files no row names."""
        with self._lock, self.db.atomic():
            self._remove_rows(sid)
        self.collect_garbage()
        with self._lock:
            for sha, staged in archive.media.items():
                if not self.db.execute("SELECT 1 FROM blobs WHERE sha256 = ?", [sha]).fetchone():
                    self.blob_path(sha, staged.type.mime).unlink(missing_ok=True)


def default_db_path() -> Path:
    """`/data/nextomni/sessions.db` where /data exists (Spaces persistent storage), else the
    user's data folder."""
    if Path("/data").is_dir() and os.access("/data", os.W_OK):
        return Path("/data/nextomni/sessions.db")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nextomni" / "sessions.db"

