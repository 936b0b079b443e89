"""Headers of every file the server hands out by path (Gradio's `/file=` route).

Gradio shows a file from an allowed folder inline with the type its name suggests, and sends
no `X-Content-Type-Options`. The session store names media by their bytes
(`sessions.store.blob_name`), so a name is trusted as far as this: a file whose extension is
an allow-listed image, audio or video type (`nextomni.media.MEDIA_EXTS`, and a few aliases) is
served inline as that type; anything else (an archive, or any file a bug or an older version
let through) as an attachment of type application/octet-stream. Every response says `nosniff`, so no browser
second-guesses the type and runs a file as a page.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from urllib.parse import unquote

from nextomni.media import MEDIA_EXTS

FILE_ROUTE = "/file="
SKIPPED = {b"content-type", b"content-disposition", b"x-content-type-options"}
# other names uploads arrive with (the store itself only writes MEDIA_EXTS)
SERVED_EXTS = {**MEDIA_EXTS, ".jpeg": MEDIA_EXTS[".jpg"], ".oga": MEDIA_EXTS[".ogg"],
               ".m4v": MEDIA_EXTS[".mp4"], ".aif": MEDIA_EXTS[".aiff"]}


def served_as(path: str) -> tuple[str, str]:
    """(Content-Type, Content-Disposition) for a file served from `path`."""
    name = PurePosixPath(unquote(path)).name
    safe = "".join(c for c in name if c.isalnum() or c in "._-")[:120] or "file"
    media = SERVED_EXTS.get(PurePosixPath(name).suffix.lower())
    if media is not None:
        return media.mime, f'inline; filename="{safe}"'
    return "application/octet-stream", f'attachment; filename="{safe}"'


class FileHeaders:
    """ASGI middleware: `served_as` headers and nosniff on `/file=` responses."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if FILE_ROUTE not in path:
            return await self.app(scope, receive, send)
        mime, disposition = served_as(path.split(FILE_ROUTE, 1)[1])

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if message.get("status") in (200, 206):
                    headers = [(k, v) for k, v in headers if k.lower() not in SKIPPED]
                    headers += [(b"content-type", mime.encode()),
                                (b"content-disposition", disposition.encode())]
                else:
                    headers = [(k, v) for k, v in headers
                               if k.lower() != b"x-content-type-options"]
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
