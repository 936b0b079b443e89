"""Fresh OmniWorld inputs for the app's "Try the world" buttons, written as files a user
could have uploaded (PNG, WAV, MP4), so a person without OmniWorld files of their own can ask
the model about what it was trained on.

Each sample is a pure function of (kind, seed): the page shows the seed, and typing it back
gives the same picture, voice and question. The app's first seed is the first held-out one,
so what a person tries by default is a scene the model never saw in training.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from nextomni.data.speech import random_voice, speak
from nextomni.data.splits import HELDOUT_SEEDS
from nextomni.data.text import canonical_caption, question, spoken_style
from nextomni.data.video import motion_question, random_motion, render_video, tone_track
from nextomni.data.world import random_scene, render
from nextomni.media import save_audio, save_video

KINDS = ("scene", "speech", "clip")  # a picture and a question; the question spoken; a clip
FIRST_SEED = HELDOUT_SEEDS.start
MAX_SEED = 2**31 - 1


@dataclass(frozen=True)
class Sample:
    """A message for the chat box (`text` and `files`) and what it shows, for the page."""

    kind: str
    seed: int
    text: str
    files: tuple[str, ...]
    about: str  # what the files hold and the expected answer, in words


class WorldSamples:
    """Makes samples into `folder` (a new temporary folder by default). A file already made
    for the same (kind, seed) is reused: it would come out byte for byte the same."""

    first_seed = FIRST_SEED
    kinds = KINDS

    def __init__(self, folder: str | Path | None = None):
        self.folder = Path(folder or tempfile.mkdtemp(prefix="nextomni-world-"))
        self.folder.mkdir(parents=True, exist_ok=True)

    def __call__(self, kind: str, seed: int) -> Sample:
        if kind not in KINDS:
            raise ValueError(f"unknown sample kind {kind!r}; expected one of {KINDS}")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
            raise ValueError(f"the seed must be a whole number from 0 to {MAX_SEED}, "
                             f"got {seed!r}")
        rng = np.random.default_rng([seed, KINDS.index(kind), 23])
        return {"scene": self._scene, "speech": self._speech, "clip": self._clip}[kind](seed, rng)

    def _scene(self, seed: int, rng: np.random.Generator) -> Sample:
        scene = random_scene(seed)
        qa = question(scene, rng)
        about = f"the picture: {canonical_caption(scene)} The answer: {qa.answer}."
        return Sample("scene", seed, qa.question, (self._picture(scene, seed),), about)

    def _speech(self, seed: int, rng: np.random.Generator) -> Sample:
        scene = random_scene(seed)
        qa = question(scene, rng)
        said = spoken_style(qa.question, rng)
        wav = self.folder / f"question-{seed}.wav"
        if not wav.exists():
            _atomic(wav, lambda tmp: save_audio(tmp, speak(said, random_voice(rng))))
        about = (f"the picture: {canonical_caption(scene)} The voice asks \"{said}\". "
                 f"The answer: {qa.answer}.")
        return Sample("speech", seed, "", (self._picture(scene, seed), str(wav)), about)

    def _clip(self, seed: int, rng: np.random.Generator) -> Sample:
        motion = random_motion(seed)
        qa = motion_question(motion, rng)
        mp4 = self.folder / f"clip-{seed}.mp4"
        if not mp4.exists():
            _atomic(mp4, lambda tmp: save_video(tmp, render_video(motion), motion.fps,
                                                tone_track(motion)))
        sound = "with a tone" if motion.tone else "silent"
        about = (f"the clip ({sound}): {canonical_caption(motion.scene)[:-1]}, moving "
                 f"{motion.direction}, {motion.speed}. The answer: {qa.answer}.")
        return Sample("clip", seed, qa.question, (str(mp4),), about)

    def _picture(self, scene, seed: int) -> str:
        png = self.folder / f"scene-{seed}.png"
        if not png.exists():
            _atomic(png, lambda tmp: Image.fromarray(render(scene)).save(tmp, format="PNG"))
        return str(png)


def _atomic(path: Path, write) -> None:
    """Write through a temporary name, so two clicks at once never read half a file."""
    tmp = path.with_name(f".{path.stem}-{uuid.uuid4().hex[:8]}{path.suffix}")
    try:
        write(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
