"""Block-by-block generation at a tiny random size: cache exactness, layouts, determinism."""

import torch
import pytest

from nextomni.model import OmniModel
from nextomni.model.generate import DecodeOptions, generate, trim_silence
from nextomni.model.sequence import SequenceBuilder
from tests.test_model import TINY


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return OmniModel(TINY).eval()


def prompt():
    b = SequenceBuilder(TINY).turn_start([20, 21]).text([12, 13, 14])
    b.image(torch.randint(16, (16, 2), generator=torch.Generator().manual_seed(0)))
    return b.turn_end([22]).turn_start([23, 21])


def run(model, seed=0, **kw):
    layout = kw.pop("layout", None)
    return generate(model, prompt(), DecodeOptions(**kw), torch.Generator().manual_seed(seed),
                    layout=layout)


@pytest.mark.parametrize("layout", ["text", "image", "audio"])
def test_cache_on_and_off_agree(model, layout):
    kw = dict(steps=4, temperature=1.0, confidence=1.0, layout=layout, dynamic=False,
              fixed_blocks=2)
    on, off = run(model, cache=True, **kw), run(model, cache=False, **kw)
    assert on.text_ids == off.text_ids
    for a, b in ((on.image_codes, off.image_codes), (on.audio_codes, off.audio_codes)):
        assert (a is None and b is None) or torch.equal(a, b)
    assert on.stats["cached_positions_reused"] > 0 == off.stats["cached_positions_reused"]
    assert on.stats["positions_computed"] < off.stats["positions_computed"]


def test_layouts_and_shapes(model):
    image = run(model, layout="image", steps=2)
    assert image.layout == "image" and image.image_codes.shape == (16, 2)
    audio = run(model, layout="audio", steps=2, dynamic=False, fixed_blocks=3)
    assert audio.layout == "audio" and audio.audio_codes.shape[1] == 3
    assert 1 <= len(audio.audio_codes) <= 3 * TINY.block_size
    text = run(model, layout="text", steps=2, dynamic=False, fixed_blocks=2)
    assert len(text.text_ids) <= 1 + 2 * TINY.block_size
    decided = run(model, steps=2)
    assert decided.layout in ("text", "image", "audio")


def test_same_seed_same_reply(model):
    a, b, c = (run(model, seed=s, temperature=1.0, layout="text", dynamic=False)
               for s in (3, 3, 4))
    assert a.text_ids == b.text_ids
    assert a.text_ids != c.text_ids


def test_confident_blocks_stop_early(model):
    slow = run(model, layout="image", steps=8, confidence=1.0)
    fast = run(model, layout="image", steps=8, confidence=0.0)
    assert fast.stats["steps"] < slow.stats["steps"]


def test_trim_silence():
    codes = torch.tensor([[1, 2], [7, 7], [3, 4], [7, 7], [7, 7]])
    assert torch.equal(trim_silence(codes, (7, 7)), codes[:3])
    assert len(trim_silence(torch.tensor([[7, 7]]), (7, 7))) == 1
