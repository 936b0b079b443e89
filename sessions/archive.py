"""Reading a session archive (what `SessionStore.export` writes) that anyone may have made.

An archive is a zip holding `session.json` and `media/<sha256>` files. Everything in it is
checked before the store writes anything: the zip's entries (no duplicates, no strangers, a
bounded total), the JSON's size, nesting depth and number of containers (checked on the raw
bytes, before it is parsed, so a small upload cannot cost gigabytes or a RecursionError), the
document's fields, and every media file: its hash, its type decided by its bytes (an image part
must hold an allow-listed image, and so on) and a full decode by `nextomni.media`, as an upload
gets. Media are unpacked to a staging folder, never held in memory. Every failure is an
`ArchiveError` whose message says what is wrong.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nextomni.chat import KINDS, ROLES
from nextomni.media import (
    DEFAULT_LIMITS, MediaError, MediaLimits, MediaType, describe_content, load_audio, load_image,
    load_video, sniff,
)

EXPORT_VERSION = 1
STATUSES = ("pending", "done", "failed", "cancelled")
MAX_ARCHIVE_BYTES = 512 * 2**20   # all entries unpacked
MAX_JSON_BYTES = 8 * 2**20        # session.json unpacked (~20,000 turns)
MAX_JSON_DEPTH = 16               # an export nests 5 deep; settings and metrics are flat
MAX_JSON_CONTAINERS = 400_000     # objects and arrays: what parsing costs memory
MAX_TURNS = 20_000
MAX_PARTS = 64                    # per turn
MAX_NAME = 200
_MEDIA_NAME = re.compile(r"media/([0-9a-f]{64})")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_LOADERS = {"image": load_image, "audio": load_audio, "video": load_video}


class ArchiveError(ValueError):
    def __init__(self, why: str):
        super().__init__(f"not a usable session archive: {why}")


@dataclass(frozen=True)
class StagedMedia:
    path: Path          # the unpacked, checked bytes (in the staging folder)
    type: MediaType     # what the bytes are


@dataclass
class Archive:
    session: dict       # title, model, model_revision, quantization (clean strings)
    turns: list[dict]   # role, status, settings, metrics, error, parts ({kind, text} or
    #                     {kind, blob, name})
    media: dict[str, StagedMedia]  # by sha256: only the files some part refers to


def read_archive(path, staging: Path, limits: MediaLimits = DEFAULT_LIMITS) -> Archive:
    """The archive at `path`, checked whole; its media are unpacked into `staging`."""
    try:
        with zipfile.ZipFile(path) as z:
            entries = _entries(z)
            doc = _parse_json(z, entries["session.json"])
            session, turns = _document(doc)
            media = _stage_media(z, entries, turns, staging, limits)
    except zipfile.BadZipFile as e:
        raise ArchiveError(f"it is not a zip file, or a damaged one ({e})") from None
    except (OSError, EOFError, RuntimeError, NotImplementedError) as e:  # damaged inside
        raise ArchiveError(f"it is damaged and cannot be unpacked ({e})") from None
    return Archive(session, turns, media)


def _entries(z: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The zip's entries by name: session.json and media/<sha256> only, each once."""
    entries: dict[str, zipfile.ZipInfo] = {}
    for info in z.infolist():
        name = info.filename
        if name in entries:
            raise ArchiveError(f"it holds {name} twice")
        if info.is_dir() and name == "media/":
            continue
        if name != "session.json" and not _MEDIA_NAME.fullmatch(name):
            raise ArchiveError(f"it holds an unexpected entry {name[:80]!r}")
        entries[name] = info
    if "session.json" not in entries:
        raise ArchiveError("it holds no session.json")
    total = sum(i.file_size for i in entries.values())
    if total > MAX_ARCHIVE_BYTES:
        raise ArchiveError(f"it unpacks to {total / 2**20:.0f} MB; the limit is "
                           f"{MAX_ARCHIVE_BYTES // 2**20} MB")
    return entries


def json_shape(raw: bytes) -> tuple[int, int]:
    """(deepest nesting, number of objects and arrays) of a JSON text, from its bytes alone:
    strings are cut out, then the brackets counted."""
    b = np.frombuffer(_JSON_STRING.sub(b"", raw), np.uint8)
    brackets = b[(b == ord("{")) | (b == ord("[")) | (b == ord("}")) | (b == ord("]"))]
    opens = (brackets == ord("{")) | (brackets == ord("["))
    depth = np.cumsum(np.where(opens, 1, -1).astype(np.int32))
    return int(depth.max(initial=0)), int(opens.sum())


def _parse_json(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> dict:
    import json

    if info.file_size > MAX_JSON_BYTES:
        raise ArchiveError(f"session.json is {info.file_size / 2**20:.1f} MB; the limit is "
                           f"{MAX_JSON_BYTES // 2**20} MB")
    with z.open(info) as f:
        raw = f.read(MAX_JSON_BYTES + 1)  # the declared size bounds the read; this makes sure
    if len(raw) > MAX_JSON_BYTES:
        raise ArchiveError(f"session.json is larger than {MAX_JSON_BYTES // 2**20} MB")
    depth, containers = json_shape(raw)
    if depth > MAX_JSON_DEPTH:
        raise ArchiveError(f"session.json nests {depth} levels deep; an export nests at most "
                           f"{MAX_JSON_DEPTH}")
    if containers > MAX_JSON_CONTAINERS:
        raise ArchiveError(f"session.json holds {containers:,} objects and lists; the limit is "
                           f"{MAX_JSON_CONTAINERS:,}")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise ArchiveError(f"session.json is not valid JSON ({str(e)[:120]})") from None


def _text(value, default: str = "") -> str:
    return value[:MAX_NAME] if isinstance(value, str) else default


def _document(doc) -> tuple[dict, list[dict]]:
    """(session, turns) of session.json, every field checked and given its plain type."""
    if not isinstance(doc, dict) or doc.get("version") != EXPORT_VERSION:
        version = doc.get("version") if isinstance(doc, dict) else None
        raise ArchiveError(f"unsupported version {version!r} (this app reads version "
                           f"{EXPORT_VERSION})")
    s, turns = doc.get("session"), doc.get("turns")
    if not isinstance(s, dict) or not isinstance(turns, list):
        raise ArchiveError("session.json lacks the session or its turns")
    if len(turns) > MAX_TURNS:
        raise ArchiveError(f"it holds {len(turns):,} turns; the limit is {MAX_TURNS:,}")
    session = {"title": " ".join(_text(s.get("title")).split()) or "Imported chat",
               "model": _text(s.get("model")), "model_revision": _text(s.get("model_revision")),
               "quantization": _text(s.get("quantization")) or None}
    return session, [_turn(i, t) for i, t in enumerate(turns)]


def _turn(i: int, t) -> dict:
    if not isinstance(t, dict) or t.get("role") not in ROLES or t.get("status") not in STATUSES \
            or not isinstance(t.get("parts"), list) \
            or not isinstance(t.get("settings") or {}, dict) \
            or not isinstance(t.get("metrics") or {}, dict) \
            or not isinstance(t.get("error"), (str, type(None))):
        raise ArchiveError(f"turn {i} is malformed")
    if len(t["parts"]) > MAX_PARTS:
        raise ArchiveError(f"turn {i} has {len(t['parts'])} parts; the limit is {MAX_PARTS}")
    return {"role": t["role"], "status": t["status"], "settings": t.get("settings") or {},
            "metrics": t.get("metrics") or {}, "error": t.get("error"),
            "parts": [_part(i, p) for p in t["parts"]]}


def _part(i: int, p) -> dict:
    if not isinstance(p, dict) or p.get("kind") not in KINDS \
            or not isinstance(p.get("name"), (str, type(None))) \
            or not isinstance(p.get("mime"), (str, type(None))):
        raise ArchiveError(f"turn {i} has a malformed part")
    if p["kind"] == "text":
        if not isinstance(p.get("text"), str):
            raise ArchiveError(f"turn {i} has a text part without text")
        return {"kind": "text", "text": p["text"]}
    blob = p.get("blob")
    if not isinstance(blob, str) or not re.fullmatch(r"[0-9a-f]{64}", blob):
        raise ArchiveError(f"turn {i} has a {p['kind']} part without a media file")
    # the declared mime is not kept: what the bytes are decides how they are stored and served
    return {"kind": p["kind"], "blob": blob, "name": _text(p.get("name")) or None}


def _stage_media(z: zipfile.ZipFile, entries: dict, turns: list[dict], staging: Path,
                 limits: MediaLimits) -> dict[str, StagedMedia]:
    """Unpack, hash, type and decode every media file a part refers to."""
    kinds: dict[str, set[str]] = {}
    where: dict[str, int] = {}
    for i, t in enumerate(turns):
        for p in t["parts"]:
            if p["kind"] != "text":
                kinds.setdefault(p["blob"], set()).add(p["kind"])
                where.setdefault(p["blob"], i)
    staged = {}
    for sha, wanted in kinds.items():
        i = where[sha]
        info = entries.get(f"media/{sha}")
        if info is None:
            raise ArchiveError(f"turn {i} refers to media the archive lacks ({sha[:12]}...)")
        path = staging / sha
        digest = hashlib.sha256()
        with z.open(info) as src, open(path, "wb") as dst:
            while chunk := src.read(2**20):
                digest.update(chunk)
                dst.write(chunk)
        if digest.hexdigest() != sha:
            raise ArchiveError(f"media file {sha[:12]}... is damaged (its bytes do not match "
                               "its name)")
        staged[sha] = StagedMedia(path, _checked_type(path, wanted, i, limits))
    return staged


def _checked_type(path: Path, kinds: set[str], i: int, limits: MediaLimits) -> MediaType:
    """The file's allow-listed type, once it has decoded as every kind its parts say."""
    with open(path, "rb") as f:
        head = f.read(64)
    found = sniff(head)
    for kind in sorted(kinds):
        if found is None or kind not in found.kinds:
            what = describe_content(head)
            raise ArchiveError(f"turn {i} has a {kind} part whose file is not "
                               f"{'an' if kind in ('image', 'audio') else 'a'} {kind} this app "
                               f"stores" + (f" (it looks like {what})" if what else ""))
        try:
            _LOADERS[kind](path, limits)
        except MediaError as e:
            raise ArchiveError(f"turn {i}: {str(e).replace(path.name, 'its ' + kind)}") from None
    return found
