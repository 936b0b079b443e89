"""Tokenizers: shapes, round trips, save/load, bad input (tiny untrained configs), and the
trained nano tokenizers on held-out data."""

import numpy as np
import pytest
import torch
from PIL import Image

from nextomni.data.corpus import text_corpus
from nextomni.data.speech import speak
from nextomni.data.text import canonical_caption
from nextomni.data.world import random_scene, render
from nextomni.tokenizers import (
    AudioTokenizer, AudioTokenizerConfig, ImageTokenizer, ImageTokenizerConfig, TextTokenizer,
    encode_video,
)
from nextomni.tokenizers.quantize import MultiCodebookVQ
from nextomni.tokenizers.special import EOS, PAD, SPECIAL_TOKENS

TINY_IMAGE = ImageTokenizerConfig(width=16, enc_blocks=1, dec_blocks=1, pixel_channels=4,
                                  groups=2, codebook_size=16, code_dim=8, text_vocab_size=600,
                                  align_dim=8)
TINY_AUDIO = AudioTokenizerConfig(channels=16, groups=3, codebook_size=8, code_dim=4,
                                  text_vocab_size=600)


@pytest.fixture(scope="module")
def text_tok():
    return TextTokenizer.train(text_corpus(range(300)), 1024)


@pytest.fixture(scope="module")
def tiny_image():
    torch.manual_seed(0)
    return ImageTokenizer(TINY_IMAGE).eval()


@pytest.fixture(scope="module")
def tiny_audio():
    torch.manual_seed(0)
    return AudioTokenizer(TINY_AUDIO).eval()


# --------------------------------------------------------------------------- text

def test_text_special_ids_and_round_trip(text_tok, tmp_path):
    for i, tok in enumerate(SPECIAL_TOKENS):
        assert text_tok.token_id(tok) == i
    assert (PAD, EOS) == (text_tok.pad_id, text_tok.eos_id) == (0, 1)
    sentence = canonical_caption(random_scene(5))
    ids = text_tok.encode(sentence)
    assert text_tok.decode(ids) == sentence
    assert len(ids) <= len(sentence.split()) + 3  # OmniWorld words are single tokens
    odd = "Zürich 🙂 <b>tags</b> 12345"
    assert text_tok.decode(text_tok.encode(odd)) == odd
    text_tok.save_pretrained(tmp_path)
    again = TextTokenizer.from_pretrained(tmp_path)
    assert again.encode(sentence) == ids and again.vocab_size == text_tok.vocab_size
    with pytest.raises(FileNotFoundError):
        TextTokenizer.from_pretrained(tmp_path / "nowhere")


# --------------------------------------------------------------------------- quantizer

def test_vq_codes_map_to_themselves_and_dead_codes_revive():
    torch.manual_seed(0)
    vq = MultiCodebookVQ(groups=2, codebook_size=32, dim=4)
    codes = torch.randint(32, (100, 2))
    assert torch.equal(vq.quantize(vq.lookup(codes)), codes)
    # data in a small corner of the sphere: most entries start unused
    data = torch.randn(512, 2, 4) * 0.1 + torch.tensor([1.0, 0, 0, 0])
    vq.train()
    before = vq.usage(vq.quantize(data))
    for _ in range(200):
        vq(data[torch.randint(512, (256,))])
    after = vq.usage(vq.quantize(data))
    assert (after > before).all() and (after >= 0.8).all()
    with pytest.raises(ValueError):
        vq.lookup(torch.tensor([[0, 32]]))


# --------------------------------------------------------------------------- image

def test_image_shapes_and_inputs(tiny_image):
    imgs = np.stack([render(random_scene(s)) for s in range(3)])
    codes = tiny_image.encode(imgs)
    assert codes.shape == (3, 64, 2) and codes.dtype == torch.long
    assert int(codes.max()) < 16
    out = tiny_image.decode(codes)
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    assert tiny_image.code_vectors(codes).shape == (3, 64, 2, 8)
    assert tiny_image.encode(imgs, pool=2).shape == (3, 16, 2)
    big = Image.fromarray(render(random_scene(1), 200)).resize((300, 200))  # not square
    assert tiny_image.encode([big]).shape == (1, 64, 2)
    assert torch.equal(tiny_image.encode(imgs[0]), codes[:1])


def test_image_bad_input(tiny_image):
    with pytest.raises(ValueError, match="uint8"):
        tiny_image.encode(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[B, H, W, 3\]"):
        tiny_image.encode(np.zeros((1, 3, 64, 64), np.uint8))
    with pytest.raises(ValueError, match="codes"):
        tiny_image.decode(torch.zeros(1, 10, 2, dtype=torch.long))
    with pytest.raises(ValueError):
        tiny_image.decode(torch.full((1, 64, 2), 99))


def test_image_save_load_is_exact(tiny_image, tmp_path):
    tiny_image.save_pretrained(tmp_path / "a")
    a = ImageTokenizer.from_pretrained(tmp_path / "a")
    a.save_pretrained(tmp_path / "b")
    b = ImageTokenizer.from_pretrained(tmp_path / "b")
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    imgs = np.stack([render(random_scene(s)) for s in range(4)])
    assert torch.equal(a.encode(imgs), b.encode(imgs))
    assert np.array_equal(a.decode(a.encode(imgs)), b.decode(b.encode(imgs)))
    assert a.config == tiny_image.config


def test_local_image_codes_stay_where_their_shape_is(tmp_path):
    """With `local_encoder` a shape drawn into one cell changes no code clear of that cell,
    and equal patches get equal codes wherever they are; the default encoder's codes spill
    (GroupNorm and 3x3 convolutions see the whole picture). Holds at any weights."""
    from dataclasses import replace

    from nextomni.data.world import Scene
    from nextomni.eval.tokenizers import code_spill

    torch.manual_seed(0)
    local = ImageTokenizer(replace(TINY_IMAGE, local_encoder=True)).eval()
    assert code_spill(local, 20) == 0.0
    assert code_spill(ImageTokenizer(TINY_IMAGE).eval(), 20) > 0.2
    blank = local.encode(render(Scene((), "navy")))[0]
    assert (blank == blank[0]).all()  # one code for a plain background, at every position
    from nextomni.train.tokenizers import parse_args

    assert parse_args(["--local-image-codes"])[0].image_local
    assert not parse_args([])[0].image_local
    local.save_pretrained(tmp_path / "local")
    again = ImageTokenizer.from_pretrained(tmp_path / "local")
    assert again.config.local_encoder and torch.equal(again.encode(render(Scene((), "navy")))[0],
                                                      blank)


# --------------------------------------------------------------------------- audio

def test_audio_shapes_round_trip_and_probe(tiny_audio):
    wav = speak("a small red star")
    codes = tiny_audio.encode(wav)
    frames = tiny_audio.mel(wav).shape[1]
    assert codes.shape == (-(-frames // 4), 3) and codes.dtype == torch.long
    out = tiny_audio.decode(codes)
    assert out.dtype == np.float32 and abs(len(out) - len(wav)) < 4 * 256 + 1024
    assert np.array_equal(out, tiny_audio.decode(codes))  # Griffin-Lim is seeded
    assert tiny_audio.code_vectors(codes).shape == (len(codes), 3, 4)
    assert all(isinstance(t, int) and t != PAD for t in tiny_audio.recognize(codes))
    batch = tiny_audio.encode([wav, wav[:8000]])
    assert len(batch) == 2 and torch.equal(batch[0], codes)


def test_audio_bad_input(tiny_audio):
    with pytest.raises(ValueError, match="empty"):
        tiny_audio.encode(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="mono"):
        tiny_audio.encode(np.zeros((2, 1600), np.float32))
    with pytest.raises(ValueError, match=r"\[P, 3\]"):
        tiny_audio.decode(torch.zeros(5, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="no audio codes"):
        tiny_audio.decode(torch.zeros(0, 3, dtype=torch.long))


def test_audio_save_load_is_exact(tiny_audio, tmp_path):
    tiny_audio.save_pretrained(tmp_path / "a")
    a = AudioTokenizer.from_pretrained(tmp_path / "a")
    a.save_pretrained(tmp_path / "b")
    b = AudioTokenizer.from_pretrained(tmp_path / "b")
    wav = speak("move it left")
    assert torch.equal(a.encode(wav), b.encode(wav))
    assert np.array_equal(a.decode(a.encode(wav)), b.decode(b.encode(wav)))


# --------------------------------------------------------------------------- video

def test_video_helper(tiny_image, tiny_audio):
    from nextomni.data.video import random_motion, render_video, tone_track

    motion = next(m for m in map(random_motion, range(100)) if m.tone)
    tokens = encode_video(render_video(motion), tone_track(motion), tiny_image, tiny_audio)
    assert tokens.frames.shape == (4, 16, 2)
    assert tokens.audio is not None and tokens.audio.shape[1] == 3
    silent = encode_video(render_video(motion), None, tiny_image, tiny_audio)
    assert silent.audio is None
    with pytest.raises(ValueError):
        encode_video(np.zeros((0, 64, 64, 3), np.uint8), None, tiny_image)


# --------------------------------------------------------------------------- trained (nano)

NANO = __import__("pathlib").Path(__file__).resolve().parents[1] / "checkpoints" / "nano"


def test_nano_image_tokenizer_round_trips_held_out_scenes():
    from nextomni.eval.tokenizers import image_metrics

    tok = ImageTokenizer.from_pretrained(NANO / "image_tokenizer")
    result = image_metrics(tok, n=100)
    assert result["image_scene_exact"] >= 0.95
    assert min(result["image_codebook_usage"]) >= 0.5  # 100 images cannot show every entry


def test_nano_audio_tokenizer_keeps_speech_intelligible():
    from nextomni.eval.tokenizers import audio_metrics

    text_tok = TextTokenizer.from_pretrained(NANO)
    tok = AudioTokenizer.from_pretrained(NANO / "audio_tokenizer")
    result = audio_metrics(tok, text_tok, n=12)
    assert result["audio_wer_original"] <= 0.15
    assert result["audio_wer_reconstructed"] <= 0.2


def test_larger_patches_give_a_coarser_grid():
    """`--image-patch 16`: a 64-pixel picture in a 4x4 grid, a quarter of the positions,
    encoded and decoded at full size; the model's config takes the grid from it."""
    from dataclasses import replace

    from nextomni.model.config import OmniConfig
    from nextomni.tokenizers import AudioTokenizer, AudioTokenizerConfig
    from nextomni.train.tokenizers import parse_args

    assert parse_args(["--image-patch", "16"])[0].image_patch == 16
    assert parse_args([])[0].image_patch == 8
    torch.manual_seed(0)
    coarse = ImageTokenizer(replace(TINY_IMAGE, patch=16)).eval()
    imgs = np.stack([render(random_scene(s)) for s in range(2)])
    codes = coarse.encode(imgs)
    assert codes.shape == (2, 16, TINY_IMAGE.groups)
    assert coarse.decode(codes).shape == (2, 64, 64, 3)
    audio = AudioTokenizer(AudioTokenizerConfig(channels=16, codebook_size=8, code_dim=4))
    text = type("Text", (), {"vocab_size": 40})()
    assert OmniConfig.for_tokenizers(text, coarse, audio).image_positions == 16
