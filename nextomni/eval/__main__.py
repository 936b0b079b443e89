"""python -m nextomni.eval --checkpoint checkpoints/nano [--n N] [--steps S] [--guidance W]
    [--speech-guidance W] [--tasks a,b] [--workers K] [--json FILE]

Held-out evaluation of every task of the omni model (see nextomni/eval/omni.py).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def main(argv=None) -> None:
    from nextomni.eval.metrics import report
    from nextomni.data.phrasing import FAMILIES
    from nextomni.eval.omni import LAYOUT, evaluate, split_task
    from nextomni.model.loading import load_checkpoint

    p = argparse.ArgumentParser(prog="python -m nextomni.eval", description=__doc__)
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--n", type=int, default=200, help="held-out items per task")
    p.add_argument("--steps", type=int, default=16, help="DFM sampling steps")
    p.add_argument("--guidance", type=float, default=0.0,
                   help="classifier-free guidance scale of image and speech replies")
    p.add_argument("--speech-guidance", type=float, default=None,
                   help="the scale of speech replies where it differs from --guidance (the "
                   "app's default: --guidance 3 --speech-guidance 0)")
    p.add_argument("--tasks", default=",".join(LAYOUT),
                   help="comma-separated subset; TASK:heldout words the task's prompts from "
                   "the phrasing family training never sees (e.g. vqa:heldout), TASK@DB hears "
                   "its user speech through noise DB below it (e.g. asr@20)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes sharing the tasks, one thread each (the same numbers)")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    a = p.parse_args(argv)
    if a.n < 1:
        p.error("--n must be at least 1")
    if a.workers < 1:
        p.error("--workers must be at least 1")
    if a.guidance < 0 or (a.speech_guidance is not None and a.speech_guidance < 0):
        p.error("--guidance and --speech-guidance must be >= 0")
    tasks = [t for t in a.tasks.split(",") if t]
    unknown = []
    for t in tasks:
        try:
            name, family, _ = split_task(t)
        except ValueError:
            name = family = None
        if name not in LAYOUT or family not in FAMILIES:
            unknown.append(t)
    if unknown:
        p.error(f"unknown task(s) {unknown}; choose from {', '.join(LAYOUT)}")
    logging.basicConfig(level=logging.INFO)
    if a.workers > 1:
        from nextomni.eval.parallel import evaluate_parallel

        result = evaluate_parallel(a.checkpoint, a.workers, a.n, a.steps, tasks,
                                   guidance=a.guidance, speech_guidance=a.speech_guidance)
    else:
        model, fmt = load_checkpoint(a.checkpoint)
        result = evaluate(model, fmt, a.n, a.steps, tasks, guidance=a.guidance,
                          speech_guidance=a.speech_guidance)
    report(result, a.json)


if __name__ == "__main__":
    main()
