"""How exact the scene detector is on clean and degraded renders; prints JSON.

    python -m bench.scene_detector [--n 1000]
"""

from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from nextomni.data.world import random_scene, render
from nextomni.eval.scene_detector import detect

CONDITIONS = [("clean", 0.0, 0.0), ("blur0.8", 0.8, 0.0), ("noise8", 0.0, 8.0),
              ("blur1.0+noise6", 1.0, 6.0), ("blur1.2+noise12", 1.2, 12.0)]


def degrade(img: np.ndarray, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    out = img.astype(np.float32)
    if blur:
        out = cv2.GaussianBlur(out, (0, 0), blur)
    if noise:
        out = out + rng.normal(0, noise, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--first-seed", type=int, default=50_000)
    a = p.parse_args()
    rows = []
    for name, blur, noise in CONDITIONS:
        rng = np.random.default_rng(0)
        seeds = range(a.first_seed, a.first_seed + a.n)
        hits = sum(detect(degrade(render(random_scene(s)), blur, noise, rng)) == random_scene(s)
                   for s in seeds)
        rows.append({"condition": name, "blur_sigma": blur, "noise_sigma": noise,
                     "exact": round(hits / a.n, 4), "n": a.n})
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
