"""One chat turn from the user's input to a stored reply: checks the input, asks the engine,
records both turns in the session store, and reports progress as it goes.

Used by the web page and the `/chat` API endpoint alike, so both store turns the same way
(`sessions.codec` bytes, settings with the seed), which is what replay re-runs against. No
torch here: the engine is handed in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from nextomni.engine import Finished, MessageError, Progress, Settings, SettingsError
from nextomni.media import MediaError, media_kind
from sessions.codec import encode_segment

log = logging.getLogger("nextomni.ui")
MAX_MESSAGE_CHARS = 20_000


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
    """The user's input as message parts; unsupported file types are refused by name."""
    text = (text or "").strip()
    if len(text) > MAX_MESSAGE_CHARS:
        raise MessageError(f"the message is too long: {len(text):,} characters (at most "
                           f"{MAX_MESSAGE_CHARS:,})")
    parts = [{"kind": "text", "text": text}] if text else []
    for f in files or []:
        path = Path(f["path"] if isinstance(f, dict) else f)
        parts.append({"kind": media_kind(path), "path": str(path), "name": path.name})
    if not parts:
        raise MessageError("the message is empty: type something or attach a file")
    return parts


class ChatRunner:
    def __init__(self, engine, store, model_name: str = ""):
        self.engine, self.store, self.model_name = engine, store, model_name

    def new_session(self, owner: str, title: str = "New chat") -> str:
        info = self.engine.info() if self.engine is not None else {}
        return self.store.create_session(owner, title, self.model_name or info.get("model", ""),
                                         quantization=info.get("quantization"))

    def run(self, owner: str, session: str | None, text: str | None, files: list | None,
            settings: Settings | dict | None = None) -> Iterator[Update]:
        """Run one turn. Input problems end in one `error` update and store nothing; a
        failure during generation marks the stored reply failed; closing the iterator early
        (Stop) marks it cancelled."""
        try:
            settings = settings if isinstance(settings, Settings) else \
                Settings.from_dict(settings)
            parts = user_parts(text, files)
            if session is not None:
                self.store.session(session, owner)
            history = self.store.messages(session, owner) if session is not None else []
            events = self.engine.chat(history + [{"role": "user", "parts": parts}], settings,
                                      session=session)
        except (MessageError, MediaError, SettingsError, KeyError) as e:
            yield Update("error", session, error=str(e))
            return
        if session is None:
            title = " ".join((text or "").split())[:48] or "New chat"
            session = self.new_session(owner, title)
            events = self._rekey(events, history, parts, settings, session)
        self.store.start_turn(session, "user", parts, owner, status="done")
        tid = self.store.start_turn(session, "assistant", [], owner, settings.to_dict())
        yield Update("started", session)
        status, stats, error = "failed", {}, None
        try:
            for ev in events:
                if isinstance(ev, Progress):
                    yield Update("progress", session, progress=ev)
                elif isinstance(ev, Finished):
                    stats = ev.stats
                else:
                    stored = self.store.add_part(tid, encode_segment(ev))
                    yield Update("segment", session, part=stored)
            status = "done"
        except GeneratorExit:
            status, error = "cancelled", "stopped by the user"
            raise
        except Exception as e:  # noqa: BLE001 - any failure is recorded and shown, never raised
            log.exception("turn failed")
            error = f"generation failed: {e}"
        finally:
            self.store.finish_turn(tid, status=status, metrics=stats, error=error)
        if status == "done":
            yield Update("done", session, stats=stats)
        else:
            yield Update("error", session, error=error)

    def _rekey(self, events, history, parts, settings, session):
        """A brand-new session gets its id only now; restart the (not yet started) generation
        under that id so the next turn can reuse its cache."""
        events.close()
        return self.engine.chat(history + [{"role": "user", "parts": parts}], settings,
                                session=session)
