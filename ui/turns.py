"""One chat turn from the user's input to a stored reply: checks the input, asks the engine,
records both turns in the session store, and reports progress as it goes.

Used by the web page and the `/chat` API endpoint alike, so both store turns the same way
(`sessions.codec` bytes, settings with the seed), which is what replay re-runs against. No
torch here: the engine is handed in. A turn has a wall-time limit (`max_seconds`): the only
model slot is never held longer than that by one request, however large its settings.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nextomni.engine import Finished, MessageError, Progress, Settings, SettingsError
from nextomni.media import MediaError, media_kind
from sessions.codec import encode_segment
from sessions.store import NotFound

log = logging.getLogger("nextomni.ui")
MAX_MESSAGE_CHARS = 20_000
DEFAULT_SECONDS = 20.0  # the nano model's largest default reply takes a few seconds on a CPU


class OutOfTime(Exception):
    """The turn ran past its time limit."""


@dataclass
class Update:
    """What the page shows as a turn goes on."""

    kind: str                      # "started" | "progress" | "segment" | "done" | "error"
    session: str | None = None
    progress: Progress | None = None
    part: dict | None = None       # a stored reply part: {"kind", "text"} or {"kind", "path"}
    stats: dict = field(default_factory=dict)
    error: str | None = None


def user_parts(text: str | None, files: list | None) -> list[dict]:
    """The user's input as message parts, attachments first and then the words about them:
    the order every training example has (a picture, then the question); the other order
    is one the model never saw, and it answers it worse (it may speak instead of writing).
    Unsupported file types are refused by name."""
    text = (text or "").strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageError(f"the message is too long: {len(text):,} characters (at most "
                           f"{MAX_MESSAGE_CHARS:,})")
    parts = []
    for f in files or []:
        path = Path(f["path"] if isinstance(f, dict) else f)
        parts.append({"kind": media_kind(path), "path": str(path), "name": path.name})
    if text:
        parts.append({"kind": "text", "text": text})
    if not parts:
        raise MessageError("the message is empty: type something or attach a file")
    return parts


class ChatRunner:
    def __init__(self, engine, store, model_name: str = "",
                 max_seconds: float | None = DEFAULT_SECONDS):
        self.engine, self.store, self.model_name = engine, store, model_name
        self.max_seconds = max_seconds      # wall time of one turn; None: no limit
        self.running: dict[str, int] = {}   # session -> the assistant turn in flight

    def time_limit_message(self) -> str:
        return (f"the reply took longer than the limit of {self.max_seconds:g} s per request "
                "and was stopped; ask for less (fewer steps or a shorter reply)")

    def run(self, owner: str, session: str | None, text: str | None, files: list | None,
            settings: Settings | dict | None = None, new_id: str | None = None
            ) -> Iterator[Update]:
        """Run one turn, in a new session (id `new_id` if given) when `session` is None.
        Input problems end in one `error` update and store nothing; a failure during
        generation marks the stored reply failed; closing the iterator early (Stop, a closed
        tab) marks it cancelled."""
        new = session is None
        sid = session or new_id or uuid.uuid4().hex
        started = time.monotonic()
        try:
            settings, parts, events = self._open(owner, sid, new, text, files, settings)
        except (MessageError, MediaError, SettingsError, NotFound) as e:
            yield Update("error", session, error=str(e))
            return
        tid, status, stats, error = None, "failed", {}, None
        try:
            tid = self._record_start(owner, sid, new, text, parts, settings)
            self.running[sid] = tid
            yield Update("started", sid)
            for ev in events:
                if self.max_seconds is not None and \
                        time.monotonic() - started > self.max_seconds:
                    raise OutOfTime
                if isinstance(ev, Progress):
                    yield Update("progress", sid, progress=ev)
                elif isinstance(ev, Finished):
                    stats = ev.metrics()
                else:
                    yield Update("segment", sid, part=self.store.add_part(tid, encode_segment(ev)))
            status = "done"
        except GeneratorExit:
            status, error = "cancelled", "stopped by the user"
            raise
        except OutOfTime:
            log.warning("turn in session %s stopped after %.1f s", sid,
                        time.monotonic() - started)
            error = self.time_limit_message()
        except Exception as e:  # noqa: BLE001 - any failure is recorded and shown, never raised
            log.exception("turn failed")
            error = f"generation failed: {e}"
        finally:
            events.close()
            if self.running.get(sid) == tid:
                self.running.pop(sid, None)
            if tid is not None:
                self.store.finish_turn(tid, status=status, metrics=stats, error=error)
        if status == "done":
            yield Update("done", sid, stats=stats)
        else:
            yield Update("error", sid if tid is not None else session, error=error)

    def _open(self, owner: str, sid: str, new: bool, text, files, settings):
        """(settings, the user's parts, the engine's event stream) of a turn about to run;
        raises the user's mistakes (loading page, bad input, a reply still running)."""
        if not owner:
            raise MessageError("the page is still loading; try again in a moment")
        settings = settings if isinstance(settings, Settings) else Settings.from_dict(settings)
        parts = user_parts(text, files)
        if not new:
            self.store.session(sid, owner)
        if sid in self.running:
            raise MessageError("a reply in this chat is still running; stop it first")
        history = [] if new else self.store.messages(sid, owner)
        events = self.engine.chat(history + [{"role": "user", "parts": parts}], settings,
                                  session=sid)
        return settings, parts, events

    def _record_start(self, owner: str, sid: str, new: bool, text, parts,
                      settings: Settings) -> str:
        """The session (when new), the user's turn and the pending reply, written before any
        token is made; returns the reply's turn id."""
        if new:
            info = self.engine.info()
            title = " ".join((text or "").split())[:48] or "New chat"
            self.store.create_session(owner, title, self.model_name or info.get("model", ""),
                                      quantization=info.get("quantization"), sid=sid)
        self.store.start_turn(sid, "user", parts, owner, status="done")
        return self.store.start_turn(sid, "assistant", [], owner, settings.to_dict())

    def cancel(self, session: str | None) -> bool:
        """Mark the session's reply in flight cancelled (Stop); its generator, once closed,
        records the same."""
        tid = self.running.pop(session, None) if session else None
        if tid is None:
            return False
        self.store.finish_turn(tid, status="cancelled", error="stopped by the user")
        return True
