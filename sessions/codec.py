"""How reply segments become stored bytes: PNG for images, 16-bit PCM WAV for audio. The
app stores with it and replay re-encodes fresh outputs with it, so "same output" means
"same bytes"."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf
from PIL import Image


def encode_image(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def encode_audio(audio: np.ndarray, sample_rate: int = 16_000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(audio, dtype=np.float32), -1, 1), sample_rate,
             format="WAV", subtype="PCM_16")
    return buf.getvalue()


def encode_segment(seg) -> dict:
    """An engine segment (anything with kind text/image/audio) as a storable part."""
    if seg.kind == "text":
        return {"kind": "text", "text": seg.text}
    if seg.kind == "image":
        return {"kind": "image", "data": encode_image(seg.image), "mime": "image/png",
                "name": "reply.png"}
    if seg.kind == "audio":
        return {"kind": "audio", "data": encode_audio(seg.audio, seg.sample_rate),
                "mime": "audio/wav", "name": "reply.wav"}
    raise TypeError(f"not a reply segment: {seg!r}")


def decode_image(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def decode_audio(data: bytes) -> np.ndarray:
    return sf.read(io.BytesIO(data), dtype="float32")[0]
