"""Chat messages as the engine takes them, and their conversion to the model's turns.

A message is a role and a list of parts. A part is a `Part(kind, value)` or a dict such as
{"kind": "text", "text": "..."} / {"kind": "image", "path": "photo.png"}; files are read
through `nextomni.media`, so every unreadable upload becomes a `MediaError` with a plain
message. Assistant messages may hold earlier generated images / audio as arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from nextomni import media
from nextomni.chat import KINDS, ROLES, Part, Turn
from nextomni.media import VideoClip


class MessageError(ValueError):
    """A message the engine cannot take (empty, too long, wrong role, ...), in plain words."""


@dataclass
class Message:
    role: str
    parts: list = field(default_factory=list)


def as_part(part) -> Part:
    """A `Part` with its media loaded: text as str, images as PIL, audio as a 16 kHz float32
    array, video as a `VideoClip`."""
    if isinstance(part, str):
        return Part("text", part)
    if isinstance(part, dict):
        kind = part.get("kind") or part.get("type")
        value = part["text"] if "text" in part else part.get("path", part.get("value"))
        part = Part(kind, value)
    if not isinstance(part, Part):
        raise MessageError(f"a message part must be text, a dict or a Part, not "
                           f"{type(part).__name__}")
    if part.kind not in KINDS:
        raise MessageError(f"unknown part kind {part.kind!r}; use one of {', '.join(KINDS)}")
    value = part.value
    if value is None:
        raise MessageError(f"the {part.kind} part is empty")
    if part.kind == "text":
        return Part("text", str(value))
    if isinstance(value, (str, Path)):
        loader = {"image": media.load_image, "audio": media.load_audio,
                  "video": media.load_video}[part.kind]
        value = loader(value)
        if part.kind == "audio":
            value = value[0]
    if part.kind == "image" and not isinstance(value, Image.Image):
        value = np.asarray(value)
        if value.ndim != 3 or value.shape[-1] != 3 or value.dtype != np.uint8:
            raise MessageError("an image must be H x W x 3 uint8 pixels")
    if part.kind == "audio":
        value = np.asarray(value, dtype=np.float32)
        if value.ndim != 1 or len(value) == 0:
            raise MessageError("audio must be a non-empty mono 16 kHz waveform")
    if part.kind == "video" and not isinstance(value, VideoClip):
        raise MessageError("a video must be a file path or a VideoClip")
    return Part(part.kind, value)


def to_turns(messages) -> list[Turn]:
    """Messages -> model turns; the last one must be the user's and hold something."""
    turns = []
    for m in messages:
        role, parts = (m.role, m.parts) if isinstance(m, (Message, Turn)) else \
            (m.get("role"), m.get("parts", m.get("content")))
        if role not in ROLES:
            raise MessageError(f"unknown role {role!r}; use one of {', '.join(ROLES)}")
        if isinstance(parts, (str, dict, Part)):
            parts = [parts]
        loaded = [as_part(p) for p in parts or []]
        loaded = [p for p in loaded if not (p.kind == "text" and not p.value.strip())]
        turns.append(Turn(role, loaded))
    if not turns:
        raise MessageError("there is no message to answer")
    if turns[-1].role != "user":
        raise MessageError("the last message must be the user's")
    if not turns[-1].parts:
        raise MessageError("the message is empty: type something or attach a file")
    return turns
