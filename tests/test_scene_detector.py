"""The scene detector is exact on clean renders and tolerant to mild blur and noise."""

import cv2
import numpy as np
import pytest
from PIL import Image

from nextomni.data.text import canonical_caption
from nextomni.data.world import Scene, random_scene, render
from nextomni.eval.scene_detector import detect


def test_exact_on_1000_clean_renders():
    wrong = [s for s in range(1000) if detect(render(random_scene(s))) != random_scene(s)]
    assert wrong == []


def test_exact_at_other_sizes_and_from_pil():
    for s in range(100):
        scene = random_scene(10_000 + s)
        assert detect(render(scene, 96)) == scene
        assert detect(Image.fromarray(render(scene))) == scene


def test_empty_scene():
    assert detect(render(Scene((), "white"))) == Scene((), "white")


@pytest.mark.parametrize("blur,noise", [(0.8, 0.0), (0.0, 8.0), (1.0, 6.0)])
def test_tolerant_to_mild_blur_and_noise(blur, noise):
    rng = np.random.default_rng(0)
    hits = 0
    for s in range(500):
        scene = random_scene(20_000 + s)
        img = render(scene).astype(np.float32)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        img = img + rng.normal(0, noise, img.shape)
        hits += detect(np.clip(np.round(img), 0, 255).astype(np.uint8)) == scene
    assert hits / 500 >= 0.95


def test_rejects_what_is_not_a_picture():
    with pytest.raises(ValueError, match="H x W x 3"):
        detect(np.zeros((64, 64), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        detect(np.zeros((64, 64, 3), np.float32))


def test_attribute_accuracy_scores_captions_and_drawn_scenes_alike():
    from nextomni.data.world import Shape
    from nextomni.eval.parse import (
        caption_attribute_accuracy, scene_attribute_accuracy, scene_attribute_breakdown,
    )

    scene = Scene((Shape(0, 0, "circle", "red", "small"), Shape(2, 2, "star", "blue", "large")),
                  "white")
    total = 1 + 3 * 2  # the background, then kind, colour and size of each shape
    assert caption_attribute_accuracy(scene, canonical_caption(scene)) == (total, total)
    assert scene_attribute_accuracy(scene, scene) == (total, total)
    assert scene_attribute_accuracy(scene, Scene((), "white")) == (1, total)
    wrong_colour = Scene((Shape(0, 0, "circle", "green", "small"),), "black")
    assert scene_attribute_accuracy(scene, wrong_colour) == (2, total)
    extra = Scene(scene.shapes + (Shape(1, 1, "square", "red", "small"),), "white")
    assert scene_attribute_accuracy(scene, extra) == (total, total + 3)
    # the same scores attribute by attribute: what a drawing got wrong
    assert scene_attribute_breakdown(scene, wrong_colour) == {
        "background": (0, 1), "placed": (1, 2), "kind": (1, 2), "color": (0, 2),
        "size": (1, 2), "empty": (7, 7)}
    assert scene_attribute_breakdown(scene, extra)["empty"] == (6, 7)
    assert scene_attribute_breakdown(scene, scene) == {
        "background": (1, 1), "placed": (2, 2), "kind": (2, 2), "color": (2, 2),
        "size": (2, 2), "empty": (7, 7)}
