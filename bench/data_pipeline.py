"""How fast the training data side makes steps, and where its time goes.

    python -m bench.data_pipeline [--checkpoint checkpoints/nano] [--steps 20]
        [--workers 0,1,2] [--batch 32 --batch-tokens 2560] [--stage sft] [--causal]
        [--json FILE]

Part one times `prepare_inputs` in this process on one thread, split into what it calls:
speech synthesis (eSpeak), the image and audio tokenizers' encoders, and the rest (rendering,
text, layout). Part two runs the training loop's own loader (`InputStream`) with each worker
count and reports steps/s and examples/s with no model consuming them: the most a training
run with that many workers can be fed. A device needs, per second, its steps/s times the
examples per step.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench import report


@contextmanager
def timed_calls(totals: dict[str, float], targets: list[tuple[str, object, str]]):
    """Wrap each `getattr(owner, name)` so its wall time adds to `totals[label]`."""
    saved = []
    for label, owner, name in targets:
        fn = getattr(owner, name)
        saved.append((owner, name, fn))

        def wrapper(*args, _fn=fn, _label=label, **kwargs):
            t = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                totals[_label] += time.perf_counter() - t

        setattr(owner, name, wrapper)
    try:
        yield totals
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def breakdown(fmt, cfg, stage: str, steps: int) -> dict:
    """Seconds per step of `prepare_inputs` in this process, by part."""
    from nextomni.data import media, speech
    from nextomni.threads import one_thread
    from nextomni.train.inputs import prepare_inputs

    one_thread()
    # a seed of its own: the loader's streams start from seed 0, and the formatter's speech
    # cache would otherwise serve them what this part spoke
    rng = np.random.default_rng(1_000_003)
    prepare_inputs(fmt, stage, rng, cfg)  # warm-up: librosa's first call compiles
    totals = dict.fromkeys(("speech", "image_encode", "audio_encode"), 0.0)
    targets = [("speech", media, "speak"), ("speech", speech, "speak"),  # speech: mels
               ("image_encode", fmt.tok.image, "encode"), ("audio_encode", fmt.tok.audio, "encode")]
    examples = 0
    with timed_calls(totals, targets):
        start = time.perf_counter()
        for _ in range(steps):
            examples += prepare_inputs(fmt, stage, rng, cfg).dfm.ids.shape[0]
        total = time.perf_counter() - start
    per_step = {k: round(v / steps, 4) for k, v in totals.items()}
    per_step["other"] = round(total / steps - sum(per_step.values()), 4)
    return {"seconds_per_step": round(total / steps, 4), "parts": per_step,
            "examples_per_step": round(examples / steps, 2),
            "ms_per_example": round(1000 * total / max(1, examples), 1)}


def loader_rate(fmt, cfg, workers: int, steps: int) -> dict:
    """Steps/s of the training loader with `workers` processes, after the first step (which
    pays for starting them)."""
    from nextomni.data.media import _SPEECH
    from nextomni.train.inputs import InputStream

    _SPEECH.clear()
    total = steps + 1
    stream = torch.utils.data.DataLoader(
        InputStream(fmt, replace(cfg, **{f"{cfg.stages[0]}_steps": total}), 0, total, 0),
        batch_size=None, num_workers=workers, prefetch_factor=2 if workers else None)
    it = iter(stream)
    next(it)
    start, examples = time.perf_counter(), 0
    for _, inputs in it:
        examples += inputs.dfm.ids.shape[0]
    took = time.perf_counter() - start
    return {"workers": workers, "steps_per_s": round(steps / took, 3),
            "examples_per_s": round(examples / took, 1)}


def main(argv=None) -> dict:
    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.train.config import OmniTrainConfig
    from nextomni.train.objective import build_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/nano"))
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--workers", default="0,1,2", help="comma-separated loader worker counts")
    p.add_argument("--stage", default="sft", choices=("pt", "cpt", "sft"))
    p.add_argument("--batch", type=int, default=OmniTrainConfig.batch)
    p.add_argument("--batch-tokens", type=int, default=OmniTrainConfig.batch_tokens)
    p.add_argument("--causal", action="store_true",
                   help="the autoregressive baseline's batches (no noised copies)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be at least 1")
    workers = [int(w) for w in a.workers.split(",") if w.strip()]
    if any(w < 0 for w in workers):
        p.error("worker counts must be >= 0")
    cfg = replace(OmniTrainConfig(), batch=a.batch, batch_tokens=a.batch_tokens,
                  all_blocks=not a.causal, causal=a.causal, stages=(a.stage,), pt_steps=0,
                  cpt_steps=0, sft_steps=0)
    cfg = replace(cfg, **{f"{a.stage}_steps": 1})
    tok = load_tokenizers(a.checkpoint)
    fmt = ChatFormatter(build_model(cfg, tok).config, tok)
    result = {"cpus": os.cpu_count(), "stage": a.stage, "causal": a.causal, "batch": a.batch,
              "batch_tokens": a.batch_tokens, "steps": a.steps,
              "one_process": breakdown(fmt, cfg, a.stage, a.steps), "loader": []}
    for w in workers:
        result["loader"].append(loader_rate(fmt, cfg, w, a.steps))
        print(json.dumps(result["loader"][-1]), flush=True)
    return report(result, a.json)


if __name__ == "__main__":
    main()
