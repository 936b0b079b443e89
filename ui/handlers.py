"""What the page's events do: plain functions over the chat runner and the session store,
kept apart from the layout (ui/app.py) so they can be tested without a browser."""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from dataclasses import fields
from pathlib import Path

import gradio as gr

from nextomni.engine import MessageError, Settings, SettingsError
from nextomni.media import MediaError, media_kind
from sessions.store import NotFound, SessionStore
from ui.display import Display
from ui.speech import speech_piece
from ui.turns import ChatRunner

log = logging.getLogger("nextomni.ui")


def settings_from(values: dict) -> Settings:
    """Settings from the page's controls by name. Only the page's own words are translated
    here (block size 0: as trained; "AR baseline": ar); `Settings.from_dict` does the rest,
    as it does for the API and for stored turns."""
    d = dict(values)
    if d.get("block_size") in (0, ""):
        d["block_size"] = None
    if "mode" in d:
        d["mode"] = "ar" if str(d["mode"]).lower().startswith("ar") else "dfm"
    return Settings.from_dict(d)


def stats_markdown(stats: dict) -> str:
    if not stats:
        return ""
    tps = stats.get("tokens_per_s")
    return (f"**{stats['layout']}** reply · {stats['latency_s'] * 1000:.0f} ms · "
            f"{stats['steps']} steps in {stats['blocks']} blocks · {stats['tokens']} tokens"
            + (f" · {tps:.0f} tokens/s" if tps else "")
            + f" · cache hits {stats['cache_hits']:,} positions"
            + f" · prompt reused {stats['prompt_reused']}/{stats['prompt_positions']}"
            + f" · seed {stats['seed']} · {stats['mode'].upper()}")


def part_content(part, view=str) -> str | dict:
    """A stored part as chatbot content; `view` maps a media file to the one the page shows
    (`Display.path`: small pictures enlarged)."""
    kind = part["kind"] if isinstance(part, dict) else part.kind
    if kind == "text":
        return part["text"] if isinstance(part, dict) else (part.text or "")
    path = part["path"] if isinstance(part, dict) else str(part.path)
    return {"path": view(str(path))}


def render_turns(turns, view=str) -> list[dict]:
    """Stored turns as chatbot messages (one bubble per part; failures say why)."""
    out = []
    for t in turns:
        for p in t.parts:
            out.append({"role": t.role, "content": part_content(p, view)})
        if t.role == "assistant" and t.status in ("failed", "cancelled"):
            out.append({"role": "assistant",
                        "content": f"⚠ reply {t.status}" + (f": {t.error}" if t.error else "")})
    return out


class Handlers:
    def __init__(self, runner: ChatRunner, store: SessionStore, gallery: list | None = None):
        self.runner, self.store = runner, store
        self.gallery = gallery or []   # (label, H x W x 3 uint8) built-in retrieval gallery
        self.previews = Path(tempfile.mkdtemp(prefix="nextomni-previews-"))
        self.display = Display(self.previews / "view")

    # ------------------------------------------------------------------ owner, sessions
    @staticmethod
    def owner(token: str | None, username: str | None = None) -> str:
        return f"user:{username}" if username else f"browser:{token or 'anonymous'}"

    @staticmethod
    def new_token(token: str | None) -> str:
        return token if token else uuid.uuid4().hex

    def session_choices(self, owner: str) -> list[tuple[str, str]]:
        return [(f"{s['title']} · {s['turns']} turns", s["id"])
                for s in self.store.list_sessions(owner)]

    def resume(self, sid: str | None, owner: str) -> list[dict]:
        if not sid:
            return []
        try:
            return render_turns(self.store.turns(sid, owner), self.display.path)
        except NotFound:
            return [{"role": "assistant", "content": "⚠ that session is not yours or is gone"}]

    def rename(self, sid: str | None, title: str, owner: str) -> str:
        if not sid:
            return "Open a session first."
        try:
            self.store.rename(sid, title, owner)
        except NotFound as e:
            return f"⚠ {e}"
        return "Renamed."

    def delete(self, sid: str | None, owner: str) -> str:
        if not sid:
            return "Open a session first."
        try:
            self.store.delete(sid, owner)
        except (NotFound, ValueError) as e:
            return f"⚠ {e}"
        self.runner.engine.forget(sid)
        return "Deleted."

    def title(self, sid: str | None, owner: str) -> str | None:
        try:
            return self.store.session(sid, owner)["title"] if sid else None
        except NotFound:
            return None

    def export(self, sid: str | None, owner: str) -> str | None:
        """The session as an archive, rewritten in place at each call (the page's download
        button is given a fresh one after every turn)."""
        if not sid:
            return None
        folder = self.previews / "exports" / sid
        folder.mkdir(parents=True, exist_ok=True)
        path, tmp = folder / f"session-{sid[:8]}.zip", folder / f".{uuid.uuid4().hex[:8]}.zip"
        try:
            self.store.export(sid, owner, tmp)
            tmp.replace(path)
        except NotFound:
            return None
        finally:
            tmp.unlink(missing_ok=True)
        return str(path)

    def import_(self, path: str | None, owner: str) -> str | None:
        if not path:
            return None
        return self.store.import_(path, owner)

    def stop(self, sid: str | None) -> bool:
        return self.runner.cancel(sid)

    # ------------------------------------------------------------------ chat
    def chat(self, message: dict | None, history: list, owner: str, sid: str | None,
             settings: dict | None = None):
        """A generator of (chat history, session id, statistics) as the reply streams in;
        `settings` holds the page's controls by setting name."""
        updates = self.chat_speaking(message, history, owner, sid, settings)
        try:
            for shown, sid, status, _ in updates:
                yield shown, sid, status
        finally:  # a closed page closes the turn at once (it is then marked cancelled)
            updates.close()

    def chat_speaking(self, message: dict | None, history: list, owner: str, sid: str | None,
                      settings: dict | None = None):
        """`chat` with a fourth value in every update: the speech that became final with it
        (WAV bytes for the page's streaming player), else `gr.skip()` (nothing new to play:
        the player is left alone, and opens no empty stream)."""
        message = message or {}
        text, files = message.get("text", ""), message.get("files", [])
        shown = list(history or [])  # in the order the model reads it: files, then words
        for f in files:
            path = f if isinstance(f, str) else f["path"]
            shown.append({"role": "user", "content": {"path": self.display.path(path)}})
        if text and text.strip():
            shown.append({"role": "user", "content": text})
        try:
            settings = settings_from(settings or {})
        except (SettingsError, TypeError, ValueError) as e:
            yield shown + [{"role": "assistant", "content": f"⚠ {e}"}], sid, "", gr.skip()
            return
        yield shown, sid, "thinking...", gr.skip()
        reply: list = []
        previews: list[Path] = []
        try:
            for up in self.runner.run(owner, sid, text, files, settings):
                sid = up.session or sid
                if up.kind == "error":
                    yield (shown + reply + [{"role": "assistant", "content": f"⚠ {up.error}"}],
                           sid, "", gr.skip())
                    return
                if up.kind == "progress":
                    p = up.progress
                    live = self._live(p, previews)
                    status = f"denoising · block {p.block} · step {p.step}/{p.total} · {p.layout}"
                    piece = speech_piece(p)
                    yield (shown + reply + ([live] if live else []), sid, status,
                           gr.skip() if piece is None else piece)
                elif up.kind == "segment":
                    reply.append({"role": "assistant",
                                  "content": part_content(up.part, self.display.path)})
                    yield shown + reply, sid, "finishing...", gr.skip()
                elif up.kind == "done":
                    yield shown + reply, sid, stats_markdown(up.stats), gr.skip()
        finally:
            for f in previews:  # the page has its own copies by now
                f.unlink(missing_ok=True)

    def _live(self, p, previews: list) -> dict | None:
        if p.image is not None:
            path = self.display.preview(p.image)
            previews.append(path)
            return {"role": "assistant", "content": {"path": str(path)}}
        if p.text:
            return {"role": "assistant", "content": p.text}
        return None

    def api_chat(self, text: str, file: str | None = None, session_id: str | None = None,
                 token: str | None = None, settings: str | None = None,
                 request: gr.Request | None = None) -> tuple[str, list[str], str]:
        """One whole turn for scripts: (reply text or an error, reply media paths, session).
        `settings` is optional JSON of `Settings` fields. With a `token` the sessions belong
        to that browser token (the page shows them); without one, knowing the (random)
        session id is what grants access to it."""
        username = getattr(request, "username", None) if request is not None else None
        sid = session_id or None
        new_id = None
        if username or token:
            owner = self.owner(token, username)
        else:
            new_id = None if sid else uuid.uuid4().hex
            owner = f"api-session:{sid or new_id}"
        files = [file] if file else []
        try:
            chosen = Settings.from_dict(json.loads(settings)) if settings else None
        except (ValueError, TypeError) as e:
            return f"Error: {e}", [], session_id or ""
        texts, media = [], []
        for up in self.runner.run(owner, sid, text, files, chosen, new_id=new_id):
            sid = up.session or sid
            if up.kind == "error":
                return f"Error: {up.error}", [], sid or ""
            if up.kind == "segment":
                if up.part["kind"] == "text":
                    texts.append(up.part["text"])
                else:
                    media.append(up.part["path"])
        return "\n".join(texts), media, sid or ""

    # ------------------------------------------------------------------ retrieval
    def search(self, text: str, file: str | None, uploads: list | None, top: int = 8):
        """Rank the gallery (built-in scenes plus uploaded images) by the query; the engine
        reads the files (and says plainly what is wrong with a bad one)."""
        items = [(label, img, {"kind": "image", "value": img}) for label, img in self.gallery]
        try:
            for u in uploads or []:
                path = u if isinstance(u, str) else u.name
                if media_kind(path) != "image":
                    return [], f"⚠ {Path(path).name}: the gallery holds images"
                items.append((Path(path).name, path, {"kind": "image", "path": path}))
            if file:
                query = {"kind": media_kind(file), "path": file}
            elif text and text.strip():
                query = {"kind": "text", "text": text.strip()}
            else:
                return [], "Type a description or give an image / audio query."
            hits = self.runner.engine.search(query, [item for _, _, item in items], top=top)
        except (MessageError, MediaError) as e:
            return [], f"⚠ {e}"
        return ([(items[h.index][1], f"{items[h.index][0]} · {h.score:.3f}") for h in hits],
                f"{len(items)} images ranked; best first.")

    # ------------------------------------------------------------------ replay
    def play(self, sid: str | None, owner: str, delay: float = 0.4):
        """Stored turns, revealed one at a time."""
        if not sid:
            yield [], "Choose a session."
            return
        turns = self.store.turns(sid, owner)
        shown = []
        for i, t in enumerate(turns):
            shown = shown + render_turns([t], self.display.path)
            yield shown, f"turn {i + 1} of {len(turns)}"
            time.sleep(delay)
        yield shown, f"played {len(turns)} turns"

    def rerun(self, sid: str | None, owner: str) -> str:
        from sessions.replay import rerun

        if not sid:
            return "Choose a session."
        report = rerun(self.store, sid, self.runner.engine, owner, self.runner.max_seconds)
        return "```\n" + report.text() + "\n```"


def setting_defaults() -> dict:
    return {f.name: f.default for f in fields(Settings)}
