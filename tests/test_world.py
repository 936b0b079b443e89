"""OmniWorld: scenes, renders, texts, speech and video are exact functions of their seeds."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nextomni.data.text import (
    QA_KINDS, canonical_caption, edit, edit_chain, generation_instruction, question, refer,
)
from nextomni.data.video import DIRECTIONS, random_motion, render_video, tone_track
from nextomni.data.world import BACKGROUNDS, COLORS, SHAPES, Scene, Shape, random_scene, render

FINGERPRINT = """
import hashlib, json, numpy as np
from nextomni.data.world import random_scene, render
from nextomni.data.preview import scene_item
from nextomni.data.speech import random_voice, speak
from nextomni.data.video import random_motion, render_video, tone_track
h = hashlib.sha256()
for seed in range(40):
    h.update(render(random_scene(seed)).tobytes())
    h.update(json.dumps(scene_item(seed)).encode())
    m = random_motion(seed)
    h.update(render_video(m).tobytes())
    t = tone_track(m)
    h.update(b"" if t is None else t.tobytes())
for seed in range(3):
    h.update(speak(scene_item(seed)["description"],
                   random_voice(np.random.default_rng(seed))).tobytes())
print(h.hexdigest())
"""


def test_same_seed_same_bytes_across_processes():
    digests = set()
    for hash_seed in ("1", "2"):  # different str hashing must not change anything
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", FINGERPRINT], capture_output=True,
                             text=True, check=True, env=env)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_scenes_compare_by_value_and_validate():
    a = Scene((Shape(0, 0, "circle", "red", "large"), Shape(2, 2, "star", "blue", "small")))
    b = Scene((Shape(2, 2, "star", "blue", "small"), Shape(0, 0, "circle", "red", "large")))
    assert a == b and hash(a) == hash(b)
    assert canonical_caption(a) == ("a large red circle in the top left and a small blue star in the "
                            "bottom right on a black background.")
    with pytest.raises(ValueError, match="share a cell"):
        Scene((Shape(1, 1, "circle", "red", "large"), Shape(1, 1, "star", "red", "small")))
    with pytest.raises(ValueError, match="unknown colour"):
        Shape(0, 0, "circle", "mauve", "large")


def test_random_scenes_cover_the_world():
    scenes = [random_scene(s) for s in range(2000)]
    shapes = [sh for sc in scenes for sh in sc.shapes]
    assert {len(sc.shapes) for sc in scenes} == {1, 2, 3}
    assert {s.kind for s in shapes} == set(SHAPES) and len(SHAPES) >= 5
    assert {s.color for s in shapes} == set(COLORS) and len(COLORS) >= 8
    assert {s.cell for s in shapes} == {(r, c) for r in range(3) for c in range(3)}
    assert {s.size for s in shapes} == {"small", "large"}
    assert {sc.background for sc in scenes} == set(BACKGROUNDS)


def test_render_is_an_image_of_the_scene():
    scene = random_scene(3)
    img = render(scene)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    assert render(scene, 128).shape == (128, 128, 3)
    empty = render(Scene((), "gray"))
    assert (empty == BACKGROUNDS["gray"]).all()


def test_questions_have_true_answers():
    rng = np.random.default_rng(0)
    for seed in range(300):
        scene = random_scene(seed)
        for kind in QA_KINDS:
            qa = question(scene, rng, kind)
            if qa.kind == "count" and qa.question.startswith("how many shapes"):
                assert qa.answer == ["zero", "one", "two", "three"][len(scene.shapes)]
            if qa.kind == "background":
                assert qa.answer == scene.background
            if qa.kind == "yesno":
                assert qa.answer in ("yes", "no")
            if qa.kind == "color":
                assert qa.answer in {s.color for s in scene.shapes}
            if qa.kind == "position":
                assert qa.answer in {s.position for s in scene.shapes}
                assert qa.answer not in qa.question.replace("?", "")


def test_referring_expressions_are_unambiguous():
    scene = Scene((Shape(0, 0, "circle", "red", "large"), Shape(0, 2, "circle", "blue", "small"),
                   Shape(2, 0, "star", "red", "small")))
    assert refer(scene, scene.shapes[0]) == "the red circle"
    assert refer(scene, scene.shapes[1]) == "the blue shape"
    assert refer(scene, scene.shapes[2]) == "the star"
    alone = Scene((Shape(1, 1, "square", "green", "small"),))
    assert refer(alone, alone.shapes[0]) == "it"


def test_edits_change_exactly_what_they_say():
    rng = np.random.default_rng(1)
    scene = Scene((Shape(1, 1, "circle", "red", "large"),), "black")
    moved = edit(scene, rng, "move")
    assert moved.after.shapes[0].cell != (1, 1)
    assert moved.after.shapes[0].kind == "circle"
    recolored = edit(scene, rng, "recolor")
    assert recolored.after.shapes[0].color in recolored.instruction
    removed = edit(scene, rng, "remove")  # cannot remove the only shape: another edit
    assert removed.kind != "remove"
    chain = edit_chain(random_scene(5), rng, 4)
    assert all(a.after == b.before for a, b in zip(chain, chain[1:]))


def test_generation_instruction_names_everything():
    rng = np.random.default_rng(2)
    for seed in range(50):
        scene = random_scene(seed)
        text = generation_instruction(scene, rng)
        assert canonical_caption(scene).rstrip(".") in text


def test_videos_move_in_their_direction_with_a_matching_tone():
    seen = set()
    for seed in range(200):
        m = random_motion(seed)
        seen.add(m.direction)
        frames = render_video(m)
        assert 8 <= len(frames) <= 16 and frames.shape[1:] == (64, 64, 3)
        bg = np.array(BACKGROUNDS[m.scene.background])
        first, last = [np.argwhere(np.abs(f.astype(int) - bg).sum(-1) > 60).mean(0)
                       for f in (frames[0], frames[-1])]
        dy, dx = last - first
        expected = {"left": dx < -5, "right": dx > 5, "up": dy < -5, "down": dy > 5}
        assert expected[m.direction], (seed, m.direction, dy, dx)
        tone = tone_track(m)
        assert (tone is None) == (not m.tone)
    assert seen == set(DIRECTIONS)


def test_speech_is_16k_and_depends_on_voice():
    from nextomni.data.speech import Voice, speak

    a = speak("a red circle", Voice("en-us", 160, 50))
    b = speak("a red circle", Voice("en-gb+f3", 140, 70))
    assert a.dtype == np.float32 and 0.3 * 16000 < len(a) < 3 * 16000
    assert len(a) != len(b) or not np.array_equal(a, b)
    with pytest.raises(ValueError):
        speak("   ")


def test_preview_cli_writes_a_browsable_sample(tmp_path):
    out = subprocess.run([sys.executable, "-m", "nextomni.data", "preview", "--seed", "3",
                          "--n", "6", "--out", str(tmp_path)], capture_output=True, text=True,
                         check=True)
    names = {os.path.basename(line) for line in out.stdout.split()}
    assert {"contact_sheet.png", "texts.json", "texts.txt", "video.mp4"} <= names
    assert len([n for n in names if n.endswith(".wav")]) >= 1
    items = json.loads((tmp_path / "texts.json").read_text())
    assert [i["seed"] for i in items] == list(range(3, 9))
    assert items[0]["description"] == canonical_caption(random_scene(3))
    from nextomni.media import load_image, load_video

    assert load_image(tmp_path / "contact_sheet.png").size[0] > 128
    assert load_video(tmp_path / "video.mp4").frames.shape[1:] == (128, 128, 3)
    bad = subprocess.run([sys.executable, "-m", "nextomni.data", "preview", "--n", "0",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert bad.returncode != 0 and "--n must be at least 1" in bad.stderr
