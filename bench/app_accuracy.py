"""The held-out eval under the app's decoding against the exact one: what the speed options
that change outputs (`Settings.settle`, `Settings.image_steps`) cost in accuracy.

    python -m bench.app_accuracy [--checkpoint checkpoints/nano] [--n 50]
        [--tasks caption,vqa,t2i,tts] [--json FILE]

Both runs decode as the engine does from `Settings()` (its guidance too); "exact" turns the
two options off (every block runs to its confidence or its last step, images take `steps`).
Prints each task's numbers for both, the app's minus the exact ones, and the decoders' mean
time per reply (one thread).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from bench import report


def numbers(model, fmt, options, tasks: list[str], n: int) -> dict:
    from nextomni.eval.omni import Evaluator, task_numbers

    ev = Evaluator(model, fmt, options)
    out = {}
    for task in tasks:
        started = time.process_time()
        out.update(task_numbers(ev, task, n))
        out[f"{task}_cpu_s"] = round(time.process_time() - started, 1)
        out[f"{task}_reply_ms"] = round(1000 * sum(ev.latencies) / len(ev.latencies), 1)
        ev.latencies.clear()
    return out


def main(argv=None) -> dict:
    import torch

    from nextomni.engine import OmniEngine, Settings
    from nextomni.model.loading import load_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--tasks", default="caption,vqa,t2i,tts")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    model, fmt = load_checkpoint(a.checkpoint)
    app = OmniEngine(model, fmt).options(Settings(), model.config)
    exact = replace(app, settle=False, image_steps=None)
    tasks = [t for t in a.tasks.split(",") if t]
    runs = {name: numbers(model, fmt, opts, tasks, a.n)
            for name, opts in (("exact", exact), ("app", app))}
    diff = {k: round(v - runs["exact"][k], 4) for k, v in runs["app"].items()
            if isinstance(v, float) and not k.endswith(("_cpu_s", "_reply_ms"))}
    return report({**runs, "app_minus_exact": diff, "n": a.n,
                   "app_options": {"settle": app.settle, "image_steps": app.image_steps,
                           "steps": app.steps, "guidance": app.guidance,
                           "speech_guidance": app.speech_guidance}}, a.json)


if __name__ == "__main__":
    main()
