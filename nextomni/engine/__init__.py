"""The inference engine: load a checkpoint, chat as a stream of events, embed and search.

Settings, events and messages import without torch (the UI uses them); `OmniEngine` loads
torch when first touched."""

from nextomni.engine.events import (
    AudioChunk, AudioSegment, Event, Finished, ImageSegment, Progress, Segment, TextSegment,
)
from nextomni.engine.messages import Message, MessageError
from nextomni.engine.settings import Settings, SettingsError

__all__ = ["OmniEngine", "Hit", "Settings", "SettingsError", "Message", "MessageError",
           "Progress", "AudioChunk", "TextSegment", "ImageSegment", "AudioSegment", "Finished",
           "Event", "Segment"]


def __getattr__(name):
    if name in ("OmniEngine", "Hit"):
        from nextomni.engine import engine

        return getattr(engine, name)
    raise AttributeError(name)
