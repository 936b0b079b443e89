"""Write the app's example files (ui/examples/): a held-out OmniWorld scene, a spoken
request, and a moving-shapes video. Deterministic: rerunning gives the same bytes.

    python scripts/make_examples.py
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image

from nextomni.data.speech import Voice, speak
from nextomni.data.splits import heldout
from nextomni.data.text import canonical_caption
from nextomni.data.video import random_motion, render_video, tone_track
from nextomni.data.world import random_scene, render
from nextomni.media import save_audio, save_video

OUT = Path(__file__).resolve().parents[1] / "ui" / "examples"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    seed = heldout(1, offset=4242)[0]
    scene = random_scene(seed)
    Image.fromarray(render(scene)).save(OUT / "scene.png")
    (OUT / "scene.txt").write_text(canonical_caption(scene) + "\n")
    save_audio(OUT / "question.wav", speak("what is the color of the circle", Voice()))
    motion = random_motion(np.random.default_rng(seed))
    save_video(OUT / "motion.mp4", render_video(motion), 8, tone_track(motion))
    print(f"wrote {OUT}: {canonical_caption(scene)}")


if __name__ == "__main__":
    main()
