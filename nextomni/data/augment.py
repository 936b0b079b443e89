"""Speech as a laptop microphone hears it: background noise, a room's reverberation, level.

Training applies `augment_speech` to the speech a user says (never to the assistant's own
voice, which text-to-speech must reproduce clean), freshly each time an example is read, so
every epoch hears the same sentence through a different room.
"""

from __future__ import annotations

import numpy as np

from nextomni.media import SAMPLE_RATE

SNR_DB = (10.0, 40.0)      # background noise, signal-to-noise ratio range
REVERB_S = (0.15, 0.6)     # RT60 of the synthetic room, seconds
GAIN_DB = (-12.0, 6.0)     # level change


def noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink-ish or hum-like noise of n samples (unit RMS)."""
    kind = int(rng.integers(3))
    x = rng.standard_normal(n).astype(np.float32)
    if kind == 1:  # pink-ish: leaky integration tilts the spectrum down
        x = np.cumsum(x - x.mean()).astype(np.float32)
        x -= np.convolve(x, np.ones(401, np.float32) / 401, mode="same")
    elif kind == 2:  # mains hum and its harmonics over a little hiss
        t = np.arange(n) / SAMPLE_RATE
        f = float(rng.choice([50.0, 60.0]))
        x = 0.1 * x + sum(np.sin(2 * np.pi * f * k * t + rng.uniform(0, 6.3)) / k
                          for k in (1, 2, 3)).astype(np.float32)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-8)


def add_noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """`wave` plus noise at `snr_db` dB below its power."""
    power = float(np.mean(wave ** 2)) + 1e-10
    return wave + noise(len(wave), rng) * np.sqrt(power / 10 ** (snr_db / 10))


def reverberate(wave: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """`wave` through a synthetic room: exponentially decaying noise as its impulse response."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    ir = rng.standard_normal(n).astype(np.float32) * np.exp(-6.9 * t / rt60).astype(np.float32)
    ir[0] = 1.0
    wet = np.convolve(wave, ir / np.sqrt(np.sum(ir ** 2)))[: len(wave)]
    return wet.astype(np.float32)


def augment_speech(wave: np.ndarray, rng: np.random.Generator, p_noise: float = 0.8,
                   p_reverb: float = 0.3, p_gain: float = 0.5) -> np.ndarray:
    """One draw of room, noise and level for a user's utterance (16 kHz float32)."""
    x = np.asarray(wave, np.float32)
    if rng.random() < p_reverb:
        x = reverberate(x, float(rng.uniform(*REVERB_S)), rng)
    if rng.random() < p_noise:
        x = add_noise(x, float(rng.uniform(*SNR_DB)), rng)
    if rng.random() < p_gain:
        x = x * 10 ** (float(rng.uniform(*GAIN_DB)) / 20)
    peak = float(np.abs(x).max()) if len(x) else 0.0
    return (x / peak * 0.99 if peak > 0.99 else x).astype(np.float32)
