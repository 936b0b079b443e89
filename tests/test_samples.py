"""The "Try the world" samples: files a user could upload, the same for the same seed."""

import pytest

from nextomni.data.samples import FIRST_SEED, WorldSamples
from nextomni.data.splits import HELDOUT_SEEDS
from nextomni.media import load_audio, load_image, load_video


@pytest.mark.parametrize("kind, loaders, asks", [
    ("scene", (load_image,), True),
    ("speech", (load_image, load_audio), False),  # the question is the sound
    ("clip", (load_video,), True),
])
def test_each_kind_is_loadable_media_and_reproducible(tmp_path, kind, loaders, asks):
    a = WorldSamples(tmp_path / "a")(kind, 1_000_007)
    b = WorldSamples(tmp_path / "b")(kind, 1_000_007)
    assert a.kind == kind and a.seed == 1_000_007 and bool(a.text) == asks
    assert len(a.files) == len(loaders) and "The answer:" in a.about
    for path, load in zip(a.files, loaders):
        load(path)  # a file the app accepts as an upload
    assert [open(f, "rb").read() for f in a.files] == [open(f, "rb").read() for f in b.files]
    assert (a.text, a.about) == (b.text, b.about)
    other = WorldSamples(tmp_path / "a")(kind, 1_000_008)
    assert other.about != a.about


def test_the_clip_plays_in_a_browser(tmp_path):
    import av

    clip = WorldSamples(tmp_path)("clip", FIRST_SEED)
    with av.open(clip.files[0]) as f:  # H.264 in MP4 (Chromium cannot play mp4v)
        assert f.streams.video[0].codec_context.name == "h264"
    assert load_video(clip.files[0]).frames.shape[1:] == (64, 64, 3)


def test_bad_requests_are_refused_by_name(tmp_path):
    w = WorldSamples(tmp_path)
    assert FIRST_SEED == HELDOUT_SEEDS.start  # what the page tries first was never trained on
    with pytest.raises(ValueError, match="unknown sample kind 'song'"):
        w("song", 1)
    for seed in (-1, 2.5, True, 2**40):
        with pytest.raises(ValueError, match="seed"):
            w("scene", seed)
