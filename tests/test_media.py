"""nextomni.media: every supported format loads; every bad file gets its own plain message."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from nextomni.media import (
    MediaError, MediaLimits, load_audio, load_image, load_media, load_video, save_video,
)
from tests.media_files import SR, frames, good_files, tone, write_container


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return good_files(tmp_path_factory.mktemp("good"))


@pytest.mark.parametrize("ext", ["png", "jpg", "webp", "gif"])
def test_images_load_as_rgb(good, ext):
    img = load_image(good[ext])
    assert img.mode == "RGB" and img.size == (64, 64)
    ref = np.asarray(Image.open(good["png"]).convert("RGB"), dtype=float)
    tol = 1 if ext in ("png", "gif") else 25  # lossy formats
    if ext != "gif":
        assert np.abs(np.asarray(img, dtype=float) - ref).mean() < tol


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3", "m4a"])
def test_audio_loads_as_mono_16k(good, ext):
    audio, sr = load_audio(good[ext])
    assert sr == 16_000 and audio.dtype == np.float32 and audio.ndim == 1
    assert 0.95 * SR <= len(audio) <= 1.7 * SR
    # the 440 Hz tone survives every codec
    spectrum = np.abs(np.fft.rfft(audio[: SR // 2]))
    assert abs(np.argmax(spectrum) * 2 - 440) <= 4


@pytest.mark.parametrize("ext,has_audio", [("mp4", True), ("webm", True), ("mov", False)])
def test_video_loads_frames_fps_and_sound(good, ext, has_audio):
    clip = load_video(good[ext])
    assert clip.frames.shape == (8, 64, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(8, abs=0.1)
    assert clip.duration == pytest.approx(1.5, abs=0.1)
    assert (clip.audio is not None) == has_audio
    # the first sampled frame is the first rendered frame, up to compression
    assert np.abs(clip.frames[0].astype(float) - frames(1)[0]).mean() < 8


def test_transparent_png_is_laid_over_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "clear.png")
    assert np.asarray(load_image(tmp_path / "clear.png")).min() == 255


def test_load_media_dispatches_by_extension(good):
    assert load_media(good["png"])[0] == "image"
    assert load_media(good["mp3"])[0] == "audio"
    assert load_media(good["webm"])[0] == "video"


def _bad_files(tmp, good):
    """(path, loader, limits, expected words) for each way a file can be wrong."""
    def copy_cut(src, name, keep):
        data = open(src, "rb").read()
        (tmp / name).write_bytes(data[: int(len(data) * keep)] if keep < 1 else data[:keep])
        return tmp / name

    (tmp / "empty.png").write_bytes(b"")
    (tmp / "notes.png").write_text("shopping list: milk, eggs\n")
    big = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)
    Image.fromarray(big).save(tmp / "big.png")
    Image.fromarray(big).save(tmp / "scan.bmp")
    sf.write(tmp / "silent.wav", np.zeros(0, np.float32), SR)
    sf.write(tmp / "long.wav", tone(65.0), SR)
    (tmp / "notes.mp3").write_text("not really a song")
    shutil.copy(good["png"], tmp / "picture.wav")
    write_container(tmp / "audio_only.mp4", "mp4", None, "aac")
    (tmp / "album").mkdir()
    (tmp / "readme.txt").write_text("hello")
    return [
        (tmp / "empty.png", load_image, None, "is empty"),
        (tmp / "notes.png", load_image, None, "is not an image (it looks like a text file)"),
        (copy_cut(tmp / "big.png", "cut.png", 0.5), load_image, None, "truncated or damaged"),
        (tmp / "big.png", load_image, MediaLimits(max_image_pixels=50_000), "300x300 pixels"),
        (tmp / "big.png", load_image, MediaLimits(max_bytes=10_000), "the limit is 0.0 MB"),
        (tmp / "scan.bmp", load_image, None, "is a BMP image; use PNG, JPEG, WebP or GIF"),
        (tmp / "missing.png", load_image, None, "no such file"),
        (tmp / "album", load_image, None, "is a folder"),
        (tmp / "silent.wav", load_audio, None, "contains no sound"),
        (tmp / "long.wav", load_audio, None, "is 65.0 s long; the limit is 60 s"),
        (tmp / "notes.mp3", load_audio, None, "is not an audio file (it looks like a text"),
        (tmp / "picture.wav", load_audio, None, "not an audio file (it looks like a PNG image)"),
        (copy_cut(good["mp3"], "cut.mp3", 200), load_audio, None,
         "looks like an MP3 audio file but is truncated or damaged"),
        (tmp / "audio_only.mp4", load_video, None, "has no video stream (it holds only sound"),
        (copy_cut(good["mp4"], "cut.mp4", 0.5), load_video, None,
         "looks like an MP4/MOV video but is truncated or damaged"),
        (good["mp4"], load_video, MediaLimits(max_video_seconds=1.0), "is 1.5 s long"),
        (good["webm"], load_video, MediaLimits(max_video_pixels=1000), "frames are 64x64 pixels"),
        (tmp / "readme.txt", load_media, None, "unsupported file type .txt"),
    ]


def test_every_bad_file_is_rejected_with_its_own_message(tmp_path, good):
    cases = _bad_files(tmp_path, good)
    messages = []
    for path, loader, limits, expected in cases:
        with pytest.raises(MediaError) as err:
            loader(path) if limits is None else loader(path, limits)
        msg = str(err.value)
        assert expected in msg, (path.name, msg)
        assert "Traceback" not in msg and len(msg) < 200
        messages.append(msg)
    assert len(set(messages)) == len(cases) >= 12


def test_save_video_is_browser_playable(tmp_path):
    import av

    path = save_video(tmp_path / "v.mp4", frames(9), 8, tone(1.0))
    with av.open(path) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.video[0].codec_context.pix_fmt == "yuv420p"
        assert c.streams.audio[0].codec_context.name == "aac"
    assert os.path.getsize(path) > 0


def test_types_are_decided_by_the_bytes_alone(good, tmp_path):
    from nextomni.media import sniff

    expected = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp",
                "gif": "image/gif", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg",
                "mp3": "audio/mpeg", "m4a": "audio/mp4", "mp4": "video/mp4",
                "webm": "video/webm", "mov": "video/quicktime"}
    for ext, mime in expected.items():
        assert sniff(good[ext].read_bytes()[:64]).mime == mime, ext
    for data in (b"<!doctype html><script>alert(1)</script>", b"<svg xmlns='x'></svg>",
                 b"%PDF-1.7", b"PK\x03\x04", b"", b"\x89PNG fake"):
        assert sniff(data) is None, data


def test_a_large_video_is_shrunk_as_it_is_read_and_decoded_once(tmp_path):
    import nextomni.media as media

    wide = np.zeros((40, 360, 640, 3), np.uint8)
    wide[:, 100:200, 50:150] = (255, 0, 0)
    path = save_video(tmp_path / "wide.mp4", wide, 20)
    limits = MediaLimits(video_frame_size=64, video_kept_frames=5)
    clip = load_video(path, limits)
    assert clip.frames.shape == (5, 36, 64, 3)  # the aspect kept, the longer side 64
    assert clip.duration == pytest.approx(2.0, abs=0.1)
    assert clip.frames[0][15, 12, 0] > 200  # the red square is where it was, shrunk
    assert not clip.frames.flags.writeable
    assert load_video(path, limits) is clip  # a later turn gets the decoded clip
    os.utime(path, ns=(1, 1))  # another file under the same name is decoded again
    assert load_video(path, limits) is not clip
    assert media.KEPT_CLIPS >= 1 and len(media._CLIPS) <= media.KEPT_CLIPS
