"""The inference engine: load a checkpoint, chat as a stream of events, embed and search."""

from nextomni.engine.engine import Hit, OmniEngine
from nextomni.engine.events import (
    AudioSegment, Event, Finished, ImageSegment, Progress, Segment, TextSegment,
)
from nextomni.engine.messages import Message, MessageError
from nextomni.engine.settings import Settings, SettingsError

__all__ = ["OmniEngine", "Hit", "Settings", "SettingsError", "Message", "MessageError",
           "Progress", "TextSegment", "ImageSegment", "AudioSegment", "Finished", "Event",
           "Segment"]
