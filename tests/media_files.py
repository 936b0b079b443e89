"""Good and bad media files made on the fly, for the loader tests and later the app tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
from PIL import Image

from nextomni.data.world import random_scene, render
from nextomni.media import save_video

SR = 16_000


def tone(seconds: float, sr: int = SR, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def frames(n: int = 12, size: int = 64) -> np.ndarray:
    return np.stack([render(random_scene(i), size) for i in range(n)])


def write_container(path: Path, fmt: str, vcodec: str | None, acodec: str | None,
                    n_frames: int = 12, fps: int = 8, audio_seconds: float = 1.5) -> Path:
    """A clip through PyAV with the given codecs (None leaves that stream out)."""
    with av.open(str(path), "w", format=fmt) as out:
        v = a = None
        if vcodec:
            v = out.add_stream(vcodec, rate=Fraction(fps))
            v.width = v.height = 64
            v.pix_fmt = "yuv420p"
        if acodec:
            a = out.add_stream(acodec, rate=48_000 if acodec == "libopus" else SR)
            a.layout = "mono"
        if v is not None:
            for img in frames(n_frames):
                out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(v.encode(None))
        if a is not None:
            rate = a.rate
            samples = tone(audio_seconds, rate)
            fmt_name = a.codec_context.format.name
            block = a.codec_context.frame_size or 1024
            for i in range(0, len(samples), block):
                chunk = samples[i:i + block]
                if fmt_name.endswith("p"):
                    frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
                else:
                    frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout="mono")
                frame.sample_rate = rate
                frame.pts = i
                out.mux(a.encode(frame))
            out.mux(a.encode(None))
    return path


def good_files(d: Path) -> dict[str, Path]:
    """One valid file per supported format."""
    d.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(render(random_scene(7)))
    files = {}
    for ext, fmt in [("png", "PNG"), ("jpg", "JPEG"), ("webp", "WEBP")]:
        files[ext] = d / f"scene.{ext}"
        img.save(files[ext], fmt)
    files["gif"] = d / "anim.gif"
    frames_ = [Image.fromarray(f) for f in frames(3)]
    frames_[0].save(files["gif"], save_all=True, append_images=frames_[1:], duration=100)
    audio = tone(1.0)
    for ext, fmt in [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG"), ("mp3", "MP3")]:
        files[ext] = d / f"tone.{ext}"
        sf.write(files[ext], audio, SR, format=fmt)
    files["m4a"] = write_container(d / "tone.m4a", "ipod", None, "aac")
    files["mp4"] = Path(save_video(d / "clip.mp4", frames(), 8, tone(1.5)))
    files["webm"] = write_container(d / "clip.webm", "webm", "libvpx-vp9", "libopus")
    files["mov"] = write_container(d / "clip.mov", "mov", "libx264", None)
    return files
