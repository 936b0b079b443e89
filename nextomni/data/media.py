"""OmniWorld examples as plain media: the one place world objects become what a user uploads.

A task's turns hold world objects (a `Scene`, a `Speech`, a `Motion`); `as_media` renders,
speaks and films them into the chat types of `nextomni.chat` (an RGB array, a 16 kHz waveform,
a `VideoClip`), so the formatter, the model and the engine never see the world and cannot tell
a training example from a user's file.
"""

from __future__ import annotations

from collections import OrderedDict

from nextomni.chat import Part, Turn
from nextomni.data.speech import speak
from nextomni.data.tasks import Speech
from nextomni.data.video import Motion, render_video, tone_track
from nextomni.data.world import Scene, render
from nextomni.media import VideoClip


class SpeechCache(OrderedDict):
    """Waveforms of spoken sentences, keyed by (text, voice), the least recently used dropped
    beyond `size`: a long run speaks millions of distinct sentences and must not keep them
    all, while one example often holds the same speech twice (asked and heard)."""

    def __init__(self, size: int = 256):
        super().__init__()
        self.size = size

    def get_or_make(self, key, make):
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        if len(self) > self.size:
            self.popitem(last=False)
        return value


_SPEECH = SpeechCache()


def video_clip(motion: Motion) -> VideoClip:
    frames = render_video(motion)
    return VideoClip(frames, float(motion.fps), len(frames) / motion.fps, tone_track(motion))


def media_value(value):
    """A world object as plain media; media (and text) pass through unchanged."""
    if isinstance(value, Scene):
        return render(value)
    if isinstance(value, Speech):
        return _SPEECH.get_or_make((value.text, value.voice),
                                   lambda: speak(value.text, value.voice))
    if isinstance(value, Motion):
        return video_clip(value)
    return value


def as_media(turns: list[Turn]) -> list[Turn]:
    """Every part of `turns` as plain media (`media_value`)."""
    return [Turn(t.role, [Part(p.kind, media_value(p.value)) for p in t.parts]) for t in turns]


def part_media(part: Part) -> Part:
    return Part(part.kind, media_value(part.value))

