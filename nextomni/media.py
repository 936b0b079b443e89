"""Validated loading (and writing) of user media: images, audio, video.

Everything a person uploads goes through here before it reaches a tokenizer. Every failure is a
`MediaError` whose message names the file and says what is wrong in plain words, so the app can
show it in the chat as it is. Formats: PNG/JPEG/WebP/GIF images, WAV/MP3/FLAC/OGG/M4A audio,
MP4/WebM/MOV video. Decisions are taken on the file's content, not its name; the name's
extension only helps to word the message. Audio and video containers are decoded with PyAV,
whose wheels carry FFmpeg, so no system FFmpeg is needed at run time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
IMAGE_FORMATS = {"PNG", "JPEG", "WEBP", "GIF"}
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
AUDIO_EXTS = {".wav", ".mp3", ".flac", ".ogg", ".oga", ".m4a"}
VIDEO_EXTS = {".mp4", ".webm", ".mov", ".m4v"}


class MediaError(ValueError):
    """A user file that cannot be used; the message is meant for the user."""


@dataclass(frozen=True)
class MediaLimits:
    """Upper bounds on what a user may upload (all configurable by the host)."""

    max_bytes: int = 100 * 2**20
    max_image_pixels: int = 40_000_000
    max_audio_seconds: float = 60.0
    max_video_seconds: float = 120.0
    max_video_pixels: int = 3840 * 2160
    video_frames: int = 8  # frames sampled evenly from a clip
    # frames are shrunk as they are decoded so their longer side is at most this (never
    # enlarged): a 4K frame costs 25 MB as RGB, one of 256 px well under 1 MB
    video_frame_size: int = 256
    # at most this many shrunk frames are held while a clip is read (thinned by half when
    # full), so memory does not grow with the clip's length
    video_kept_frames: int = 64


DEFAULT_LIMITS = MediaLimits()


@dataclass
class VideoClip:
    """Frames sampled evenly over the clip (uint8 [T, H, W, 3]), the clip's frame rate and
    duration, and its sound track at 16 kHz (None if it has none)."""

    frames: np.ndarray
    fps: float
    duration: float
    audio: np.ndarray | None


# --------------------------------------------------------------------------- media types

@dataclass(frozen=True)
class MediaType:
    """A media type this app stores and serves, decided by the bytes: the only types a
    stored file may be named and served as (nothing that a browser runs: no HTML, SVG or
    script)."""

    mime: str
    ext: str
    kinds: tuple[str, ...]  # the part kinds whose bytes it may hold


MEDIA_TYPES = {t.mime: t for t in (
    MediaType("image/png", ".png", ("image",)),
    MediaType("image/jpeg", ".jpg", ("image",)),
    MediaType("image/gif", ".gif", ("image",)),
    MediaType("image/webp", ".webp", ("image",)),
    MediaType("audio/wav", ".wav", ("audio",)),
    MediaType("audio/aiff", ".aiff", ("audio",)),
    MediaType("audio/mpeg", ".mp3", ("audio",)),
    MediaType("audio/flac", ".flac", ("audio",)),
    MediaType("audio/ogg", ".ogg", ("audio", "video")),
    MediaType("audio/mp4", ".m4a", ("audio",)),
    MediaType("video/mp4", ".mp4", ("video", "audio")),
    MediaType("video/quicktime", ".mov", ("video", "audio")),
    MediaType("video/webm", ".webm", ("video", "audio")),
)}
MEDIA_EXTS = {t.ext: t for t in MEDIA_TYPES.values()}


def sniff(head: bytes) -> MediaType | None:
    """The allow-listed type the first bytes of a file (64 are plenty) are, or None. Only the
    content counts, never a name or a declared type."""
    riff = head[8:12] if head[:4] == b"RIFF" else b""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MEDIA_TYPES["image/png"]
    if head.startswith(b"\xff\xd8\xff"):
        return MEDIA_TYPES["image/jpeg"]
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return MEDIA_TYPES["image/gif"]
    if riff == b"WEBP":
        return MEDIA_TYPES["image/webp"]
    if riff == b"WAVE":
        return MEDIA_TYPES["audio/wav"]
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return MEDIA_TYPES["audio/aiff"]
    if head.startswith(b"fLaC"):
        return MEDIA_TYPES["audio/flac"]
    if head.startswith(b"OggS"):
        return MEDIA_TYPES["audio/ogg"]
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF
                                   and head[1] & 0xE6 in (0xE2, 0xE4, 0xE6)):
        return MEDIA_TYPES["audio/mpeg"]  # an ID3 tag, or an MPEG audio layer I-III frame
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"M4A ", b"M4B "):
            return MEDIA_TYPES["audio/mp4"]
        return MEDIA_TYPES["video/quicktime" if brand == b"qt  " else "video/mp4"]
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return MEDIA_TYPES["video/webm"]
    return None


# --------------------------------------------------------------------------- sniffing

_MAGIC = [
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"), (b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
    (b"ID3", "an MP3 audio file"), (b"fLaC", "a FLAC audio file"), (b"OggS", "an OGG file"),
    (b"\x1a\x45\xdf\xa3", "a WebM/Matroska video"),
]


def describe_content(head: bytes) -> str | None:
    """What the first bytes of a file look like, in words ('a PNG image'), or None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "a WAV audio file"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "a WebP image"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        return "an M4A audio file" if brand in (b"M4A ", b"M4B ") else "an MP4/MOV video"
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    if head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "an MP3 audio file"
    try:
        head.decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return None


def _looks_like(head: bytes) -> str:
    what = describe_content(head)
    return f" (it looks like {what})" if what else ""


_KIND_WORDS = {"an image": ("image",), "an audio file": ("audio", "video"),
               "a video": ("video",)}


def _unreadable(p: Path, head: bytes, kind: str) -> MediaError:
    """Either the file is of another kind, or it is of the right kind but broken."""
    what = describe_content(head)
    if what and any(w in what for w in _KIND_WORDS[kind]):
        return MediaError(f"{p.name} looks like {what} but is truncated or damaged")
    return MediaError(f"{p.name} is not {kind}{_looks_like(head)}")


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB"


def _check_file(path, limits: MediaLimits) -> tuple[Path, bytes]:
    """Existence, emptiness and byte-size checks shared by every kind; returns the head."""
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p.name}: no such file")
    if p.is_dir():
        raise MediaError(f"{p.name} is a folder, not a file")
    size = p.stat().st_size
    if size == 0:
        raise MediaError(f"{p.name} is empty (0 bytes)")
    if size > limits.max_bytes:
        raise MediaError(f"{p.name} is {_mb(size)}; the limit is {_mb(limits.max_bytes)}")
    with open(p, "rb") as f:
        head = f.read(64)
    return p, head


# --------------------------------------------------------------------------- images

def load_image(path, limits: MediaLimits = DEFAULT_LIMITS) -> Image.Image:
    """An RGB PIL image. EXIF rotation is applied, transparency is laid over white, and an
    animated GIF gives its first frame."""
    p, head = _check_file(path, limits)
    try:
        img = Image.open(p)
    except UnidentifiedImageError:
        raise _unreadable(p, head, "an image") from None
    except Image.DecompressionBombError:
        raise MediaError(f"{p.name} is far too large an image to open") from None
    if img.format not in IMAGE_FORMATS:
        raise MediaError(f"{p.name} is a {img.format} image; use PNG, JPEG, WebP or GIF")
    w, h = img.size
    if w * h > limits.max_image_pixels:
        raise MediaError(f"{p.name} is too large: {w}x{h} pixels; the limit is "
                         f"{limits.max_image_pixels / 1e6:.0f} megapixels")
    try:
        img.load()
    except (OSError, SyntaxError, ValueError):
        raise MediaError(f"{p.name} is truncated or damaged and cannot be read") from None
    img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(canvas, rgba)
    return img.convert("RGB")


# --------------------------------------------------------------------------- audio

def _to_mono(data: np.ndarray) -> np.ndarray:
    return data.mean(axis=1) if data.ndim == 2 else data


def resample(audio: np.ndarray, sr: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Deterministic high-quality resampling (soxr, as librosa uses) to `target` Hz."""
    import soxr

    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if sr == target:
        return audio
    return soxr.resample(audio, sr, target, quality="HQ").astype(np.float32)


def _resample(audio: np.ndarray, sr: int) -> np.ndarray:
    return resample(audio, sr, SAMPLE_RATE)


def _read_soundfile(p: Path, limits: MediaLimits) -> tuple[np.ndarray, int] | None:
    """WAV/FLAC/OGG/MP3 through libsndfile; None when libsndfile does not know the format."""
    import soundfile as sf

    try:
        info = sf.info(str(p))
    except sf.LibsndfileError:
        return None
    if info.frames <= 0 and info.duration <= 0:
        raise MediaError(f"{p.name} contains no sound (0 samples)")
    _check_seconds(p, info.duration, limits.max_audio_seconds)
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError):
        raise MediaError(f"{p.name} is truncated or damaged and cannot be decoded") from None
    return _to_mono(data), sr


def _check_seconds(p: Path, seconds: float, limit: float) -> None:
    if seconds > limit:
        raise MediaError(f"{p.name} is {seconds:.1f} s long; the limit is {limit:.0f} s")


def _open_container(p: Path, head: bytes, kind: str):
    import av

    try:
        return av.open(str(p))
    except (av.error.InvalidDataError, av.error.FFmpegError, UnicodeDecodeError):
        raise _unreadable(p, head, kind) from None


def _container_seconds(container, stream) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return 0.0


def _decode_audio_stream(container, stream) -> np.ndarray:
    """All samples of an audio stream, mono float32 at 16 kHz."""
    import av

    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    chunks = []
    for frame in container.decode(stream):
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray().reshape(-1))
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray().reshape(-1))
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def load_audio(path, limits: MediaLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, int]:
    """Mono float32 samples at 16 kHz, and the rate (always 16000)."""
    import av

    p, head = _check_file(path, limits)
    if describe_content(head) in ("a PNG image", "a JPEG image", "a GIF image", "a WebP image",
                                  "a BMP image", "a PDF document", "a ZIP archive", "a text file"):
        raise MediaError(f"{p.name} is not an audio file{_looks_like(head)}")
    read = _read_soundfile(p, limits)
    if read is not None:
        audio, sr = read
        audio = _resample(audio, sr)
    else:
        with _open_container(p, head, "an audio file") as container:
            if not container.streams.audio:
                raise MediaError(f"{p.name} has no sound track")
            stream = container.streams.audio[0]
            _check_seconds(p, _container_seconds(container, stream), limits.max_audio_seconds)
            try:
                audio = _decode_audio_stream(container, stream)
            except av.error.FFmpegError:
                raise MediaError(f"{p.name} is truncated or damaged") from None
    if audio.size == 0:
        raise MediaError(f"{p.name} contains no sound (0 samples)")
    _check_seconds(p, audio.size / SAMPLE_RATE, limits.max_audio_seconds)
    if not np.isfinite(audio).all():
        raise MediaError(f"{p.name} holds invalid samples (NaN or infinity)")
    return audio, SAMPLE_RATE


# --------------------------------------------------------------------------- video

_CLIPS: OrderedDict = OrderedDict()  # (file identity, limits) -> VideoClip, oldest first
_CLIPS_LOCK = threading.Lock()
KEPT_CLIPS = 8


def load_video(path, limits: MediaLimits = DEFAULT_LIMITS) -> VideoClip:
    """`limits.video_frames` frames sampled evenly in time (their longer side at most
    `limits.video_frame_size`), plus the sound track if any.

    A chat sends its whole history with every turn, so the last few clips are kept, by the
    file's identity (path, size, modification time): a session's video is decoded once,
    not once per turn. The clip's arrays are read-only, as they are shared."""
    p = Path(path)
    try:
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns, limits)
    except OSError:
        key = None  # _check_file words the problem
    with _CLIPS_LOCK:
        if key in _CLIPS:
            _CLIPS.move_to_end(key)
            return _CLIPS[key]
    clip = _decode_video(p, limits)
    for a in (clip.frames, clip.audio):
        if a is not None:
            a.flags.writeable = False
    if key is not None:
        with _CLIPS_LOCK:
            _CLIPS[key] = clip
            while len(_CLIPS) > KEPT_CLIPS:
                _CLIPS.popitem(last=False)
    return clip


def _shrunk_size(w: int, h: int, longest: int) -> tuple[int, int]:
    """(width, height) with the longer side at most `longest`, even, the aspect kept."""
    scale = min(1.0, longest / max(w, h, 1))
    return max(2, round(w * scale / 2) * 2), max(2, round(h * scale / 2) * 2)


def _decode_video(p: Path, limits: MediaLimits) -> VideoClip:
    import av

    p, head = _check_file(p, limits)
    with _open_container(p, head, "a video") as container:
        if not container.streams.video:
            extra = " (it holds only sound; send it as audio)" if container.streams.audio else ""
            raise MediaError(f"{p.name} has no video stream{extra}")
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        if w * h > limits.max_video_pixels:
            raise MediaError(f"{p.name} frames are {w}x{h} pixels; the limit is "
                             f"{limits.max_video_pixels / 1e6:.1f} megapixels per frame")
        seconds = _container_seconds(container, stream)
        _check_seconds(p, seconds, limits.max_video_seconds)
        fps = float(stream.average_rate or stream.guessed_rate or 0) or 25.0
        try:
            frames, decoded = _kept_frames(container, stream, (w, h), limits)
        except av.error.FFmpegError:
            raise MediaError(f"{p.name} is truncated or damaged") from None
    if not frames:
        raise MediaError(f"{p.name} has no frames that can be decoded (truncated or damaged?)")
    seconds = seconds or decoded / fps
    _check_seconds(p, seconds, limits.max_video_seconds)
    pick = np.linspace(0, len(frames) - 1, min(limits.video_frames, len(frames)))
    sampled = np.stack([frames[int(round(i))] for i in pick])
    return VideoClip(sampled, fps, seconds, _video_audio(p))


def _kept_frames(container, stream, size: tuple[int, int], limits: MediaLimits
                 ) -> tuple[list[np.ndarray], int]:
    """Every `stride`-th decoded frame, shrunk as it is read (others are never converted);
    when more than `limits.video_kept_frames` are held, every other one goes and the stride
    doubles, so the kept frames stay evenly spread over the clip. (kept frames, decoded)."""
    w, h = size
    small = None if max(w, h) <= limits.video_frame_size else \
        _shrunk_size(w, h, limits.video_frame_size)
    kept, stride, decoded = [], 1, 0
    for frame in container.decode(stream):
        if decoded % stride == 0:
            if small is None and (frame.width, frame.height) == (w, h):
                kept.append(frame.to_ndarray(format="rgb24"))
            else:
                tw, th = small or (w, h)
                kept.append(frame.reformat(width=tw, height=th, format="rgb24",
                                           interpolation="AREA").to_ndarray())
            if len(kept) > limits.video_kept_frames:
                kept, stride = kept[::2], stride * 2
        decoded += 1
    return kept, decoded


def _video_audio(p: Path) -> np.ndarray | None:
    """The clip's sound track; a broken track is logged and dropped, the pictures kept."""
    import av

    with av.open(str(p)) as container:
        if not container.streams.audio:
            return None
        try:
            audio = _decode_audio_stream(container, container.streams.audio[0])
        except av.error.FFmpegError as e:
            log.warning("%s: sound track could not be decoded (%s); using pictures only", p.name, e)
            return None
    return audio if audio.size else None


# --------------------------------------------------------------------------- dispatch

def media_kind(path) -> str:
    """'image', 'audio' or 'video' from the file's extension (content decides later)."""
    ext = Path(path).suffix.lower()
    if ext in IMAGE_EXTS:
        return "image"
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in VIDEO_EXTS:
        return "video"
    raise MediaError(f"{Path(path).name}: unsupported file type {ext or '(no extension)'}; "
                     "send PNG/JPEG/WebP/GIF, WAV/MP3/FLAC/OGG/M4A or MP4/WebM/MOV")


def load_media(path, limits: MediaLimits = DEFAULT_LIMITS):
    """(kind, loaded object) for any supported file."""
    kind = media_kind(path)
    loader = {"image": load_image, "audio": load_audio, "video": load_video}[kind]
    return kind, loader(path, limits)


# --------------------------------------------------------------------------- writing

def save_audio(path, audio: np.ndarray, sr: int = SAMPLE_RATE) -> str:
    """16-bit PCM WAV."""
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1, 1), sr, subtype="PCM_16")
    return os.fspath(path)


def save_video(path, frames: np.ndarray, fps: float, audio: np.ndarray | None = None,
               sr: int = SAMPLE_RATE) -> str:
    """Browser-playable MP4: H.264 (yuv420p) video and, if given, AAC sound."""
    from fractions import Fraction

    import av

    frames = np.asarray(frames, dtype=np.uint8)
    _, h, w, _ = frames.shape
    with av.open(str(path), "w", format="mp4") as out:
        v = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        v.width, v.height = w + w % 2, h + h % 2
        v.pix_fmt = "yuv420p"
        v.options = {"crf": "18", "threads": "1"}
        a = None
        if audio is not None:
            a = out.add_stream("aac", rate=sr)
            a.layout = "mono"
        for img in frames:
            if w % 2 or h % 2:
                img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            out.mux(v.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(v.encode(None))
        if a is not None:
            _mux_audio(out, a, audio, sr)
    return os.fspath(path)


def _mux_audio(out, stream, audio: np.ndarray, sr: int) -> None:
    import av

    samples = np.clip(audio, -1, 1).astype(np.float32)
    block = 1024
    for i in range(0, len(samples), block):
        chunk = samples[i:i + block]
        frame = av.AudioFrame.from_ndarray(chunk[None, :], format="flt", layout="mono")
        frame.sample_rate = sr
        frame.pts = i
        out.mux(stream.encode(frame))
    out.mux(stream.encode(None))
