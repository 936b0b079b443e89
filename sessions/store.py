"""SessionStore: chat sessions in SQLite (sqlite-utils), media as content-addressed blobs.

    sessions  id, owner, title, created, updated, model, model_revision, quantization, app_version
    turns     id, session_id -> sessions, parent_id -> turns, idx, role,
              status (pending | done | failed | cancelled), settings (JSON, seed included),
              metrics (JSON), error, created, finished
    parts     id, turn_id -> turns, ord, kind (text | image | audio | video), text, blob -> blobs
    blobs     sha256, mime, size, created   (bytes in <db>.media/<ab>/<sha256><ext of mime>;
              the extension lets browsers and media libraries know the format)

WAL journal, foreign keys on for every connection, schema from `schema.migrations`. A turn is
written when it starts and updated when it ends, so a crash loses at most the turn in flight,
which `recover()` (run on open) marks failed. Sessions belong to an `owner` (the browser's
token); every read or change of a session checks it.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import sqlite3
import threading
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlite_utils

from nextomni.chat import ROLES
from sessions.schema import migrations

STATUSES = ("pending", "done", "failed", "cancelled")
EXPORT_VERSION = 1
INTERRUPTED = "the server stopped while this turn was running"


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
    def __init__(self, path: str | Path, app_version: str = "", recover: bool = True):
        """`recover=False` for tools that open the database beside a running server (whose
        turns in flight are not interrupted)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.media = self.path.with_name(self.path.name + ".media")
        self.media.mkdir(exist_ok=True)
        self.app_version = app_version
        self._lock = threading.RLock()
        # one connection shared by the server's worker threads, serialised by the lock
        self.db = sqlite_utils.Database(sqlite3.connect(str(self.path), check_same_thread=False,
                                                        timeout=30))
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.enable_wal()
        migrations.apply(self.db)
        self.recovered = self.recover() if recover else 0

    def close(self) -> None:
        with self._lock:
            self.db.conn.close()

    # ------------------------------------------------------------------ health
    def integrity(self) -> str:
        with self._lock:
            return self.db.execute("PRAGMA integrity_check").fetchone()[0]

    def recover(self) -> int:
        """Mark turns left pending by a stopped server as failed; how many there were."""
        with self._lock, self.db.atomic():
            cur = self.db.execute(
                "UPDATE turns SET status = 'failed', error = ?, finished = ? "
                "WHERE status = 'pending'", [INTERRUPTED, now()])
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
            self.db.execute("DELETE FROM parts WHERE turn_id IN "
                            "(SELECT id FROM turns WHERE session_id = ?)", [sid])
            self.db.execute("UPDATE turns SET parent_id = NULL WHERE session_id = ?", [sid])
            self.db.execute("DELETE FROM turns WHERE session_id = ?", [sid])
            self.db.execute("DELETE FROM sessions WHERE id = ?", [sid])
        self.collect_garbage()

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
        return {"kind": stored["kind"], "path": str(self.blob_path(stored["blob"], mime)),
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
                p["kind"], p["text"], self.blob_path(p["blob"], p["mime"]) if p["blob"] else None,
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

    # ------------------------------------------------------------------ blobs
    def put_blob(self, data: bytes, mime: str) -> str:
        sha = hashlib.sha256(data).hexdigest()
        with self._lock, self.db.atomic():
            row = self.db.execute("SELECT mime FROM blobs WHERE sha256 = ?", [sha]).fetchone()
            mime = row[0] if row else mime  # one file per content, named by its first mime
            path = self.blob_path(sha, mime)
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
        ext = (mimetypes.guess_extension(mime) or "") if mime else ""
        return self.media / sha[:2] / (sha + ext)

    def collect_garbage(self) -> int:
        """Remove blobs no part refers to; how many. Under the store's lock, as are writes of
        blobs with their parts, so a blob being stored is never collected."""
        with self._lock, self.db.atomic():
            orphans = self.db.execute(
                "SELECT sha256, mime FROM blobs WHERE sha256 NOT IN "
                "(SELECT blob FROM parts WHERE blob IS NOT NULL)").fetchall()
            for sha, mime in orphans:
                self.db.execute("DELETE FROM blobs WHERE sha256 = ?", [sha])
                self.blob_path(sha, mime).unlink(missing_ok=True)
        return len(orphans)

    def _store_part(self, p) -> dict:
        if isinstance(p, StoredPart):
            p = {"kind": p.kind, "text": p.text, "path": p.path, "mime": p.mime, "name": p.name}
        kind = p["kind"]
        if kind == "text":
            return {"kind": "text", "text": str(p.get("text") or ""), "blob": None, "name": None}
        data, mime, name = p.get("data"), p.get("mime"), p.get("name")
        if data is None:
            path = Path(p["path"])
            data, name = path.read_bytes(), name or path.name
            mime = mime or mimetypes.guess_type(path.name)[0]
        return {"kind": kind, "text": None, "name": name,
                "blob": self.put_blob(data, mime or "application/octet-stream")}

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
        path = Path(path)
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("session.json", json.dumps(doc, indent=1))
            for t in turns:
                for p in t.parts:
                    if p.blob is not None and f"media/{p.blob}" not in z.namelist():
                        z.write(p.path, f"media/{p.blob}")
        return path

    def import_(self, path: str | Path, owner: str) -> str:
        """A session from an `export` archive, as a new session of `owner`. The archive is
        checked whole before anything is written, and written in one transaction."""
        doc, media = _read_archive(path)
        s = doc["session"]
        with self._lock, self.db.atomic():
            sid = self.create_session(owner, str(s.get("title") or "Imported chat")[:200],
                                      str(s.get("model", "")), str(s.get("model_revision", "")),
                                      s.get("quantization") or None)
            for t in doc["turns"]:
                parts = [{"kind": "text", "text": p["text"]} if p["kind"] == "text" else
                         {"kind": p["kind"], "data": media[p["blob"]], "mime": p.get("mime"),
                          "name": p.get("name")} for p in t["parts"]]
                status = "failed" if t["status"] == "pending" else t["status"]
                tid = self.start_turn(sid, t["role"], parts, owner, t.get("settings") or {},
                                      status=status)
                self.db["turns"].update(tid, {"metrics": json.dumps(t.get("metrics") or {}),
                                              "error": t.get("error")})
        return sid


MAX_ARCHIVE_BYTES = 512 * 2**20


def _read_archive(path) -> tuple[dict, dict[str, bytes]]:
    """(session document, media by sha256) of an export archive, validated."""
    def bad(why: str):
        raise ValueError(f"not a usable session archive: {why}")

    try:
        with zipfile.ZipFile(path) as z:
            if sum(i.file_size for i in z.infolist()) > MAX_ARCHIVE_BYTES:
                bad(f"it unpacks to more than {MAX_ARCHIVE_BYTES // 2**20} MB")
            doc = json.loads(z.read("session.json"))
            media = {n.split("/", 1)[1]: z.read(n) for n in z.namelist()
                     if n.startswith("media/") and not n.endswith("/")}
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, OSError, UnicodeDecodeError) as e:
        bad(str(e))
    if not isinstance(doc, dict) or doc.get("version") != EXPORT_VERSION:
        bad(f"unsupported version {doc.get('version') if isinstance(doc, dict) else None!r}")
    if not isinstance(doc.get("session"), dict) or not isinstance(doc.get("turns"), list):
        bad("session.json lacks the session or its turns")
    for sha, data in media.items():
        if hashlib.sha256(data).hexdigest() != sha:
            bad(f"media file {sha[:12]}... is damaged")
    for i, t in enumerate(doc["turns"]):
        if not isinstance(t, dict) or t.get("role") not in ROLES \
                or t.get("status") not in STATUSES or not isinstance(t.get("parts"), list) \
                or not isinstance(t.get("settings", {}), dict):
            bad(f"turn {i} is malformed")
        for p in t["parts"]:
            if not isinstance(p, dict) or p.get("kind") not in ("text", "image", "audio", "video"):
                bad(f"turn {i} has a malformed part")
            if p["kind"] == "text" and not isinstance(p.get("text"), str):
                bad(f"turn {i} has a text part without text")
            if p["kind"] != "text" and p.get("blob") not in media:
                bad(f"turn {i} refers to media the archive lacks")
    return doc, media


def default_db_path() -> Path:
    """`/data/nextomni/sessions.db` where /data exists (Spaces persistent storage), else the
    user's data folder."""
    import os

    if Path("/data").is_dir() and os.access("/data", os.W_OK):
        return Path("/data/nextomni/sessions.db")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "nextomni" / "sessions.db"

