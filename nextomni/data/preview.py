"""Write a browsable sample of OmniWorld: a contact sheet, the texts, speech and a video."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nextomni.data.speech import random_voice, speak
from nextomni.data.text import (
    canonical_caption, caption, edit_chain, generation_instruction, question, speech_request,
    spoken_style,
)
from nextomni.data.video import random_motion, render_video, tone_track
from nextomni.data.world import random_scene, render
from nextomni.media import save_audio, save_video

TILE = 128
LABEL = 14
GAP = 4


def scene_item(seed: int) -> dict:
    """Every text task for the scene of `seed`, as plain JSON-able data."""
    rng = np.random.default_rng([seed, 1])
    scene = random_scene(seed)
    qas = [question(scene, rng, kind) for kind in ("color", "shape", "count", "position",
                                                    "yesno")]
    edits = edit_chain(scene, rng, turns=2)
    return {
        "seed": seed,
        "description": canonical_caption(scene),
        "caption": caption(scene, rng),
        "questions": [{"q": qa.question, "a": qa.answer, "kind": qa.kind} for qa in qas],
        "generate": generation_instruction(scene, rng),
        "edits": [{"instruction": e.instruction, "kind": e.kind, "result": canonical_caption(e.after)}
                  for e in edits],
        "spoken": spoken_style(qas[0].question, rng),
        "say": speech_request(canonical_caption(scene), rng),
    }


def contact_sheet(seeds: list[int], cols: int = 8) -> Image.Image:
    rows = (len(seeds) + cols - 1) // cols
    cols = min(cols, len(seeds))
    w, h = TILE + GAP, TILE + LABEL + GAP
    sheet = Image.new("RGB", (cols * w + GAP, rows * h + GAP), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, seed in enumerate(seeds):
        x, y = GAP + (i % cols) * w, GAP + (i // cols) * h
        sheet.paste(Image.fromarray(render(random_scene(seed), TILE)), (x, y))
        draw.text((x + 4, y + TILE + 1), f"seed {seed}", fill=(0, 0, 0))
    return sheet


def write_preview(seed: int, n: int, out: Path, n_speech: int = 4) -> list[Path]:
    """Files for scenes seed .. seed+n-1 and one video; returns the paths written."""
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(seed, seed + n))
    items = [scene_item(s) for s in seeds]
    written = [out / "contact_sheet.png", out / "texts.json", out / "texts.txt"]
    contact_sheet(seeds).save(written[0])
    written[1].write_text(json.dumps(items, indent=2) + "\n")
    written[2].write_text("".join(_as_text(item) for item in items))
    for item in items[:n_speech]:
        rng = np.random.default_rng([item["seed"], 2])
        path = out / f"speech_{item['seed']}.wav"
        save_audio(path, speak(item["description"], random_voice(rng)))
        written.append(path)
    motion = random_motion(seed)
    video = out / "video.mp4"
    save_video(video, render_video(motion, TILE), motion.fps, tone_track(motion))
    (out / "video.txt").write_text(
        f"{canonical_caption(motion.scene)}\nmoving {motion.direction}, {motion.speed}, "
        f"{motion.frames} frames, tone: {'yes' if motion.tone else 'no'}\n")
    return written + [video, out / "video.txt"]


def _as_text(item: dict) -> str:
    lines = [f"## seed {item['seed']}", f"scene:    {item['description']}",
             f"caption:  {item['caption']}", f"generate: {item['generate']}"]
    lines += [f"Q: {qa['q']}  A: {qa['a']}" for qa in item["questions"]]
    lines += [f"edit ({e['kind']}): {e['instruction']} -> {e['result']}" for e in item["edits"]]
    lines += [f"spoken:   {item['spoken']}", f"say:      {item['say']}", ""]
    return "\n".join(lines) + "\n"
