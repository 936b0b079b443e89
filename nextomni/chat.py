"""The chat types every layer shares: a turn is a role and its parts; a part is a kind and a value.

Values are plain media, exactly as a user's upload arrives: text as `str`, an image as an
H x W x 3 uint8 array (or a PIL image), audio as a 16 kHz mono float32 waveform, a video as a
`nextomni.media.VideoClip`. OmniWorld turns its examples into these (`nextomni.data.media`)
before a model sees them, so the engine, the model and the store need nothing of the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES: tuple[str, ...] = ("system", "user", "assistant")
KINDS: tuple[str, ...] = ("text", "image", "audio", "video")  # what a prompt part may hold
REPLY_KINDS: tuple[str, ...] = ("text", "image", "audio")     # what a reply part may hold


@dataclass(frozen=True)
class Part:
    kind: str       # one of KINDS
    value: object   # str | image array | waveform | VideoClip


@dataclass
class Turn:
    role: str       # one of ROLES
    parts: list[Part] = field(default_factory=list)


def text(s: str) -> Part:
    return Part("text", s)
