"""Replay a stored session: play its turns back, or re-run every reply with its stored
settings and seed and report what differs from what was stored.

    python -m sessions replay DB [--session ID] [--rerun] [--model PATH] [--report FILE]

Re-running goes through the turns in order with the stored conversation as history and the
same engine session key throughout, exactly as the app ran them (a turn the app computed
without the conversation's cache, after a restart say, is re-run without it too); outputs are re-encoded with
`sessions.codec`, so "same" means byte-identical text, PNG and WAV. The exit status is 1
when any re-run reply differs (or fails), 0 otherwise.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sessions.codec import decode_audio, decode_image, encode_segment
from sessions.store import SessionStore, StoredTurn


@dataclass
class TurnDiff:
    idx: int
    same: bool
    differences: list[str] = field(default_factory=list)


@dataclass
class Report:
    session: str
    turns: list[TurnDiff] = field(default_factory=list)

    @property
    def differing(self) -> int:
        return sum(not t.same for t in self.turns)

    def to_dict(self) -> dict:
        return {"session": self.session, "replies": len(self.turns),
                "differing": self.differing, "turns": [asdict(t) for t in self.turns]}

    def text(self) -> str:
        lines = [f"session {self.session}: {len(self.turns)} replies re-run, "
                 f"{self.differing} differ"]
        for t in self.turns:
            lines.append(f"  turn {t.idx}: " + ("same" if t.same else "DIFFERS"))
            lines += [f"    - {d}" for d in t.differences]
        return "\n".join(lines)


def playback(store: SessionStore, sid: str, owner: str | None = None) -> list[StoredTurn]:
    return store.turns(sid, owner)


def describe(turn: StoredTurn) -> str:
    parts = []
    for p in turn.parts:
        parts.append(repr(p.text) if p.kind == "text" else f"[{p.kind} {p.path.name}]")
    extra = f" ({turn.status}{': ' + turn.error if turn.error else ''})" \
        if turn.status != "done" else ""
    return f"{turn.idx:3d} {turn.role:9s} {' '.join(parts)}{extra}"


def rerun(store: SessionStore, sid: str, engine, owner: str | None = None) -> Report:
    """Regenerate every finished reply of the session and compare it with the stored one."""
    report = Report(sid)
    key = "replay-" + hashlib.sha256(sid.encode()).hexdigest()[:16]
    engine.forget(key)
    for turn in store.turns(sid, owner):
        if turn.role != "assistant" or turn.status != "done":
            continue
        history = store.messages(sid, owner, before=turn.idx)
        if not turn.metrics.get("prompt_reused"):
            engine.forget(key)  # the app computed this prompt from scratch: so do we
        try:
            fresh = [encode_segment(ev) for ev in engine.chat(history, turn.settings, session=key)
                     if getattr(ev, "kind", None) in ("text", "image", "audio")]
        except Exception as e:  # noqa: BLE001 - a failing re-run is a difference to report
            report.turns.append(TurnDiff(turn.idx, False, [f"re-run failed: {e}"]))
            continue
        diffs = compare(turn, fresh)
        report.turns.append(TurnDiff(turn.idx, not diffs, diffs))
    engine.forget(key)
    return report


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
    store = SessionStore(args.db, recover=False)
    sids = [args.session] if args.session else [s["id"] for s in store.all_sessions()]
    if not sids:
        print(f"{args.db}: no sessions")
        return 0
    if not args.rerun:
        for sid in sids:
            s = store.session(sid, None)
            print(f"session {sid} \"{s['title']}\" ({s['model']})")
            for t in playback(store, sid):
                print(describe(t))
        return 0
    from nextomni.engine import OmniEngine

    model = args.model or store.session(sids[0], None)["model"] or "checkpoints/nano"
    engine = OmniEngine.load(model, device=args.device, baseline=args.baseline)
    reports = [rerun(store, sid, engine) for sid in sids]
    for r in reports:
        print(r.text())
    if args.report:
        Path(args.report).write_text(json.dumps([r.to_dict() for r in reports], indent=1))
    return 1 if any(r.differing for r in reports) else 0
