"""Speech for the page's streaming player. The engine hands over each block of a speech
reply as soon as it is final (`Progress.audio`); the player (`gr.Audio(streaming=True)`)
takes each piece as WAV bytes and plays them one after another, so a person hears the
start of the reply while the rest is still being made. The finished reply still arrives
whole in the chat, as the stored file."""

from __future__ import annotations

import io
import wave

import numpy as np


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A mono float waveform in [-1, 1] as 16-bit PCM WAV bytes."""
    pcm = (np.clip(np.asarray(samples, dtype=np.float32), -1, 1) * 32767).astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return out.getvalue()


def speech_piece(progress) -> bytes | None:
    """The WAV bytes of the speech that became final with this progress event, if any."""
    chunk = getattr(progress, "audio", None)
    return None if chunk is None else wav_bytes(chunk.audio, chunk.sample_rate)
