"""Replay a stored session: play its turns back, or re-run every reply with its stored
settings and seed and report what differs from what was stored.

    python -m sessions replay DB [--session ID] [--rerun] [--model PATH] [--report FILE]

Re-running goes through the turns in order with the stored conversation as history and the
same engine session key throughout, exactly as the app ran them (a turn the app computed
without the conversation's cache, after a restart say, is re-run without it too); outputs are
re-encoded with `sessions.codec`, so "same" means byte-identical text, PNG and WAV.

Exit status: 0 the session was played back, or every re-run reply is the same; 1 a re-run
reply differs (or its re-run failed); 2 the command cannot run (no such database, not a
session database, a damaged one, media files missing, a model that does not load), said in
one sentence. The database is opened read-only: the command never changes what it is given.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sessions.codec import decode_audio, decode_image, encode_segment
from sessions.store import SessionStore, StoredTurn

EXIT_SAME, EXIT_DIFFERS, EXIT_CANNOT_RUN = 0, 1, 2


class ReplayError(RuntimeError):
    """The command cannot run; the message says why, in one sentence."""


@dataclass
class TurnDiff:
    idx: int
    same: bool
    differences: list[str] = field(default_factory=list)


@dataclass
class Report:
    session: str
    turns: list[TurnDiff] = field(default_factory=list)
    stopped: str | None = None  # why the re-run ended early, if it did

    @property
    def differing(self) -> int:
        return sum(not t.same for t in self.turns)

    def to_dict(self) -> dict:
        return {"session": self.session, "replies": len(self.turns),
                "differing": self.differing, "stopped": self.stopped,
                "turns": [asdict(t) for t in self.turns]}

    def text(self) -> str:
        lines = [f"session {self.session}: {len(self.turns)} replies re-run, "
                 f"{self.differing} differ"]
        for t in self.turns:
            lines.append(f"  turn {t.idx}: " + ("same" if t.same else "DIFFERS"))
            lines += [f"    - {d}" for d in t.differences]
        if self.stopped:
            lines.append(f"  stopped: {self.stopped}")
        return "\n".join(lines)


def playback(store: SessionStore, sid: str, owner: str | None = None) -> list[StoredTurn]:
    return store.turns(sid, owner)


def describe(turn: StoredTurn) -> str:
    parts = []
    for p in turn.parts:
        gone = "" if p.kind == "text" or p.path.is_file() else " MISSING"
        parts.append(repr(p.text) if p.kind == "text" else f"[{p.kind} {p.path.name}{gone}]")
    extra = f" ({turn.status}{': ' + turn.error if turn.error else ''})" \
        if turn.status != "done" else ""
    return f"{turn.idx:3d} {turn.role:9s} {' '.join(parts)}{extra}"


class OutOfTime(Exception):
    pass


def rerun(store: SessionStore, sid: str, engine, owner: str | None = None,
          seconds: float | None = None) -> Report:
    """Regenerate every finished reply of the session and compare it with the stored one;
    with `seconds` (the app's time limit per request) it stops once that much time passed."""
    report = Report(sid)
    deadline = None if seconds is None else time.monotonic() + seconds
    key = "replay-" + hashlib.sha256(sid.encode()).hexdigest()[:16]
    engine.forget(key)
    for turn in store.turns(sid, owner):
        if turn.role != "assistant" or turn.status != "done":
            continue
        history = store.messages(sid, owner, before=turn.idx)
        if not turn.metrics.get("prompt_reused"):
            engine.forget(key)  # the app computed this prompt from scratch: so do we
        try:
            fresh = [encode_segment(ev) for ev in _timed(
                engine.chat(history, turn.settings, session=key), deadline)
                if getattr(ev, "kind", None) in ("text", "image", "audio")]
        except OutOfTime:
            report.stopped = (f"the time limit of {seconds:.0f} s per request was reached; "
                              "re-run the whole session with python -m sessions replay --rerun")
            break
        except Exception as e:  # noqa: BLE001 - a failing re-run is a difference to report
            report.turns.append(TurnDiff(turn.idx, False, [f"re-run failed: {e}"]))
            continue
        diffs = compare(turn, fresh)
        report.turns.append(TurnDiff(turn.idx, not diffs, diffs))
    engine.forget(key)
    return report


def _timed(events, deadline: float | None):
    try:
        for ev in events:
            if deadline is not None and time.monotonic() > deadline:
                raise OutOfTime
            yield ev
    finally:
        events.close()


def compare(turn: StoredTurn, fresh: list[dict]) -> list[str]:
    """Readable differences between a stored reply and freshly encoded parts."""
    stored = turn.parts
    if [p.kind for p in stored] != [p["kind"] for p in fresh]:
        return [f"reply kinds: stored {[p.kind for p in stored]}, now "
                f"{[p['kind'] for p in fresh]}"]
    out = []
    for i, (old, new) in enumerate(zip(stored, fresh)):
        if old.kind == "text":
            if old.text != new["text"]:
                out.append(f"text: stored {old.text!r}, now {new['text']!r}")
            continue
        data = old.path.read_bytes()
        if data == new["data"]:
            continue
        if old.kind == "image":
            a, b = decode_image(data), decode_image(new["data"])
            changed = float(np.mean(np.any(a != b, axis=-1))) if a.shape == b.shape else 1.0
            out.append(f"image: {changed:.1%} of pixels differ")
        else:
            a, b = decode_audio(data), decode_audio(new["data"])
            n = min(len(a), len(b))
            gap = float(np.max(np.abs(a[:n] - b[:n]))) if n else 0.0
            out.append(f"audio: {len(a) / 16000:.2f} s stored, {len(b) / 16000:.2f} s now, "
                       f"largest sample difference {gap:.3f}")
    return out


def main(args) -> int:
    """The command (see the module's docstring); failures raise `ReplayError`, `StoreError`
    or `NotFound`, which `python -m sessions` prints as a sentence with status 2."""
    store = SessionStore(args.db, read_only=True)
    sids = [args.session] if args.session else [s["id"] for s in store.all_sessions()]
    if not sids:
        print(f"{args.db}: no sessions")
        return EXIT_SAME
    missing = {sid: store.missing_media(sid, None) for sid in sids}
    if not args.rerun:
        for sid in sids:
            s = store.session(sid, None)
            print(f"session {sid} \"{s['title']}\" ({s['model']})")
            for t in playback(store, sid):
                print(describe(t))
    for sid, lost in missing.items():
        if lost:
            turns = sorted({idx for idx, _ in lost})
            raise ReplayError(f"session {sid}: {len(lost)} media file(s) of turn(s) "
                              f"{', '.join(map(str, turns[:10]))} are missing from "
                              f"{store.media}; restore the media folder beside the database")
    if not args.rerun:
        return EXIT_SAME
    reports = [rerun(store, sid, _engine(args, store, sids)) for sid in sids]
    for r in reports:
        print(r.text())
    if args.report:
        Path(args.report).write_text(json.dumps([r.to_dict() for r in reports], indent=1))
    return EXIT_DIFFERS if any(r.differing for r in reports) else EXIT_SAME


def _engine(args, store: SessionStore, sids: list[str]):
    from nextomni.engine import OmniEngine

    model = args.model or store.session(sids[0], None)["model"] or "checkpoints/nano"
    try:
        return OmniEngine.load(model, device=args.device, baseline=args.baseline)
    except Exception as e:  # noqa: BLE001 - any way a model fails to load, said in a sentence
        raise ReplayError(f"the model {model!r} cannot be loaded ({type(e).__name__}: {e}); "
                          "name a checkpoint folder with --model") from None
