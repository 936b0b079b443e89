"""OmniWorld speech: any sentence spoken by eSpeak NG, resampled to 16 kHz mono float32.

eSpeak NG is deterministic for a given text, voice, speed and pitch, so a spoken item is a
pure function of its seed like everything else in the world.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import soundfile as sf

from nextomni.media import SAMPLE_RATE, resample  # noqa: F401 (SAMPLE_RATE: the world's rate)

# Base voices and eSpeak variants (+m = male, +f = female timbres). Training speaks with
# VOICES; the held-out seeds speak with HELDOUT_VOICES only, so the eval hears voices that no
# training example holds.
VOICES: tuple[str, ...] = (
    "en-us", "en-gb", "en-us+f2", "en-us+f3", "en-us+m3", "en-gb+f4", "en-us+m7",
)
HELDOUT_VOICES: tuple[str, ...] = ("en-gb+m2", "en-us+f4")
SPEEDS = (130, 190)  # words per minute, inclusive range
PITCHES = (30, 70)


@dataclass(frozen=True)
class Voice:
    name: str = "en-us"
    speed: int = 160
    pitch: int = 50


def random_voice(rng: np.random.Generator, heldout: bool = False) -> Voice:
    names = HELDOUT_VOICES if heldout else VOICES
    return Voice(
        name=names[int(rng.integers(len(names)))],
        speed=int(rng.integers(SPEEDS[0], SPEEDS[1] + 1)),
        pitch=int(rng.integers(PITCHES[0], PITCHES[1] + 1)),
    )


@lru_cache(maxsize=1)
def _espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError(
            "espeak-ng is not installed; OmniWorld speech needs it "
            "(Debian/Ubuntu: apt-get install espeak-ng)"
        )
    return exe


def speak(text: str, voice: Voice = Voice()) -> np.ndarray:
    """Speak `text`; returns float32 mono samples at 16 kHz."""
    if not text.strip():
        raise ValueError("cannot speak an empty sentence")
    cmd = [_espeak(), "-v", voice.name, "-s", str(voice.speed), "-p", str(voice.pitch),
           "--stdout", "--", text]
    wav = subprocess.run(cmd, capture_output=True, check=True).stdout
    # eSpeak streams a WAV header with placeholder sizes; read the PCM behind it directly.
    header = sf.info(io.BytesIO(wav))
    pcm = np.frombuffer(wav[44:], dtype="<i2").astype(np.float32) / 32768.0
    return resample(pcm, header.samplerate)

