"""Non-square pictures and video frames reach the model whole: letterboxed to its square with
the border colour, not centre-cropped (a crop of a 4:3 picture loses its side columns)."""

import numpy as np
from PIL import Image

from nextomni.data.world import BACKGROUNDS, COLORS, random_scene, render
from nextomni.tokenizers import ImageTokenizer, ImageTokenizerConfig
from nextomni.tokenizers.image import letterbox

TINY = ImageTokenizerConfig(width=16, enc_blocks=1, dec_blocks=1, pixel_channels=4, groups=2,
                            codebook_size=16, code_dim=8, text_vocab_size=600, align_dim=8)


def wide_scene() -> tuple[np.ndarray, object]:
    """Seed 9 (shapes in the bottom left and bottom right cells) as a 320x240 picture."""
    scene = random_scene(9)
    assert {s.col for s in scene.shapes} == {0, 2}
    img = Image.fromarray(render(scene, 64)).resize((320, 240), Image.NEAREST)
    return np.asarray(img), scene


def pixels_near(img: np.ndarray, rgb) -> int:
    return int((np.abs(img.astype(int) - np.array(rgb)).sum(-1) < 60).sum())


def seen(tok: ImageTokenizer, images) -> np.ndarray:
    """What the tokenizer's encoder is given, back as uint8 [B, S, S, 3]."""
    x = tok.to_tensor(images)
    return ((x + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def whole(out: np.ndarray, img: np.ndarray) -> float:
    """Mean pixel difference between the middle band of a square and the whole picture."""
    ref = np.asarray(Image.fromarray(img).resize((64, 48), Image.BICUBIC)).astype(int)
    return float(np.abs(out[8:56].astype(int) - ref).mean())


def test_a_wide_scene_is_kept_whole():
    img, scene = wide_scene()
    out = seen(ImageTokenizer(TINY), [Image.fromarray(img)])[0]
    assert out.shape == (64, 64, 3)
    assert whole(out, img) < 1  # a centre crop (the old squaring) differs by ~10
    for s in scene.shapes:
        assert pixels_near(out, COLORS[s.color]) > 20, s
    navy = BACKGROUNDS[scene.background]
    assert pixels_near(out[:8], navy) == 8 * 64 and pixels_near(out[-8:], navy) == 8 * 64


def test_video_frames_are_letterboxed_too():
    img, _ = wide_scene()
    frames = np.stack([img, img[:, ::-1]])  # [T, H, W, 3] as a loaded clip arrives
    out = seen(ImageTokenizer(TINY), frames)
    assert out.shape == (2, 64, 64, 3)
    assert whole(out[0], img) < 1 and whole(out[1], img[:, ::-1]) < 1


def test_letterbox_pads_with_the_border_colour():
    tall = np.zeros((30, 10, 3), np.uint8)
    tall[:] = (10, 200, 30)
    tall[10:20, 3:7] = (255, 0, 0)
    out = letterbox(tall)
    assert out.shape == (30, 30, 3)
    assert (out[:, :10] == (10, 200, 30)).all() and (out[:, 20:] == (10, 200, 30)).all()
    assert (out[:, 10:20] == tall).all()
    square = np.ones((8, 8, 3), np.uint8)
    assert letterbox(square) is square
