"""What the page's own events do around the handlers: open the page, start and end a turn,
stop it, and the sidebar (resume, rename, delete after a confirmation, export, import).

Plain functions returning component updates, so ui/app.py only wires them and tests can call
them without a browser. The export button is a download button: it always holds an archive
of the open session, made again after every change, because a click downloads what the
button holds at that moment.
"""

from __future__ import annotations

import gradio as gr

from ui.controls import SettingsForm
from ui.handlers import Handlers


def export_button(path: str | None) -> gr.DownloadButton:
    return gr.DownloadButton(value=path, interactive=path is not None)


def locked_box(stop: bool = False) -> gr.MultimodalTextbox:
    """The message box while a turn runs: emptied, with its Stop button once `stop`."""
    return gr.MultimodalTextbox(value=None, interactive=False, submit_btn=False, stop_btn=stop)


def with_stop_button(chat):
    """`chat`'s stream of (history, session, statistics), with the box's Stop button shown by
    its first update. The button appears only once the reply runs: a click before that would
    cancel nothing in the browser, and the reply would run on unseen."""
    def reply(*args):
        first = True
        for out in chat(*args):
            yield (*out, locked_box(stop=True) if first else gr.skip())
            first = False

    return reply


def open_box() -> gr.MultimodalTextbox:
    return gr.MultimodalTextbox(value=None, interactive=True, submit_btn=True, stop_btn=False)


class PageEvents:
    def __init__(self, handlers: Handlers, form: SettingsForm):
        self.h, self.form = handlers, form

    def start(self, token: str | None, request: gr.Request):
        """(browser token, owner, the owner's sessions) when the page opens."""
        token = self.h.new_token(token)
        who = self.h.owner(token, getattr(request, "username", None))
        return token, who, gr.Dropdown(choices=self.h.session_choices(who), value=None)

    def refresh(self, who: str, sid: str | None):
        """(session list with `sid` chosen, the export button for it)."""
        choices = self.h.session_choices(who)
        sid = sid if any(value == sid for _, value in choices) else None
        return gr.Dropdown(choices=choices, value=sid), export_button(self.h.export(sid, who))

    def begin(self, message: dict | None, *values):
        """A turn starts: (the box, emptied and locked, the message, the settings as one
        dict by name)."""
        return locked_box(), message, self.form.read(*values)

    @staticmethod
    def end():
        return open_box()

    def stopped(self, sid: str | None, who: str):
        """Stop in the message box: (box, statistics, chat as stored, sessions, export)."""
        self.h.stop(sid)
        return (open_box(), "stopped", self.h.resume(sid, who), *self.refresh(who, sid))

    def resume(self, sid: str | None, who: str):
        """(chat, session, statistics, export) for the session picked in the list."""
        return self.h.resume(sid, who), sid, "", export_button(self.h.export(sid, who))

    @staticmethod
    def new_chat():
        """(chat, session, statistics, session list, export) for an empty chat."""
        return [], None, "", gr.Dropdown(value=None), export_button(None)

    def rename(self, sid: str | None, title: str, who: str):
        return self.h.rename(sid, title, who), *self.refresh(who, sid)

    def ask_delete(self, sid: str | None, who: str):
        """(confirmation row, note): deleting asks first, naming what would go."""
        title = self.h.title(sid, who)
        if title is None:
            return gr.Row(visible=False), "Open a session first."
        return gr.Row(visible=True), f"Delete **{title}** and all its turns? This cannot be undone."

    def delete(self, sid: str | None, who: str):
        """(note, session list, export, chat, session, confirmation row)."""
        note = self.h.delete(sid, who)
        gone = note == "Deleted."
        return (note, *self.refresh(who, None if gone else sid), [] if gone else gr.update(),
                None if gone else sid, gr.Row(visible=False))

    @staticmethod
    def keep():
        return gr.Row(visible=False), "Kept."

    def imported(self, path: str | None, who: str):
        """(note, session list, export, chat, session) after an archive is uploaded."""
        try:
            sid = self.h.import_(path, who)
        except ValueError as e:
            return f"⚠ {e}", *self.refresh(who, None), gr.update(), gr.update()
        if sid is None:
            return "Choose an archive to import.", *self.refresh(who, None), gr.update(), \
                gr.update()
        return "Imported.", *self.refresh(who, sid), self.h.resume(sid, who), sid
