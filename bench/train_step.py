"""How long one training step takes on a device, where its time goes, and how many operators
it dispatches.

    python -m bench.train_step [--checkpoint checkpoints/nano] [--device auto] [--steps 10]
        [--stage sft] [--batch 32 --batch-tokens 4096] [--causal] [--json FILE]

The steps run the training loop's own objective, optimizer, bf16 autocast and clipping on
batches prepared before the clock starts (the data side is bench/data_pipeline.py's job), on
a freshly initialised model of the nano shape (a step's cost does not depend on the weights).
Seconds per step are split into forward, backward and optimizer (the device synchronised
after each), and one profiled step counts the operators dispatched and, on a GPU, the
kernels launched: a small model's step on a GPU is bound by launching them, not by
arithmetic, and a larger batch then costs little more per step. `--compile` measures the same
steps with the backbone under `torch.compile` (dynamic shapes: every batch has its own
length); its compilation is in `compile_s`, outside the timed steps.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench import report


def significant(x: float, digits: int = 4) -> float:
    """`x` to `digits` significant figures: rounding to fixed decimals would report a slow
    machine's examples per second (or a fast optimizer step) as 0."""
    return float(f"{x:.{digits}g}")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None) -> dict:
    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.train.config import OmniTrainConfig
    from nextomni.train.inputs import prepare_inputs
    from nextomni.train.objective import build_objective

    d = OmniTrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/nano"))
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--stage", default="sft", choices=("pt", "cpt", "sft"))
    p.add_argument("--batch", type=int, default=d.batch)
    p.add_argument("--batch-tokens", type=int, default=4096)
    p.add_argument("--causal", action="store_true", help="the autoregressive baseline's step")
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--compile", action="store_true",
                   help="the backbone under torch.compile (dynamic shapes)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be at least 1")
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available()
                          else "cpu" if a.device == "auto" else a.device)
    cfg = replace(d, batch=a.batch, batch_tokens=a.batch_tokens, causal=a.causal,
                  all_blocks=not a.causal, per_example_loss=True,
                  precision="fp32" if a.no_bf16 else "bf16")
    torch.manual_seed(cfg.seed)
    tok = load_tokenizers(a.checkpoint)
    objective, trainable, opt = build_objective(cfg, tok)
    objective.to(device).placed(device)
    if a.compile:
        objective.model.backbone = torch.compile(objective.model.backbone, dynamic=True)
    fmt = ChatFormatter(objective.model.config, load_tokenizers(a.checkpoint))
    rng = np.random.default_rng(cfg.seed)
    batches = [prepare_inputs(fmt, a.stage, rng, cfg) for _ in range(a.steps + 2)]

    def step(inputs, clock: dict | None = None) -> None:
        def lap(name):
            if clock is not None:
                synchronize(device)
                now = time.perf_counter()
                clock[name] = clock.get(name, 0.0) + now - clock.pop("_t", now)
                clock["_t"] = now

        lap("start")
        inputs = inputs.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
            parts = objective(inputs)
        lap("forward")
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        lap("backward")
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        opt.step()
        {k: v.item() for k, v in parts.items()}  # the loop logs every part each step
        lap("optimizer")

    objective.train()
    began = time.perf_counter()
    step(batches[0])  # warm-up: allocator, kernels' first launches (and compilation)
    compile_s = time.perf_counter() - began
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        step(batches[1])
    events = prof.events()
    ops = sum(1 for e in events if e.name.startswith("aten::"))
    kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)

    synchronize(device)
    start = time.perf_counter()
    for inputs in batches[2:]:
        step(inputs)
    synchronize(device)
    per_step = (time.perf_counter() - start) / a.steps
    clock: dict = {}
    for inputs in batches[2:]:
        step(inputs, clock)
    clock.pop("_t", None)
    clock.pop("start", None)
    examples = sum(b.dfm.ids.shape[0] for b in batches[2:]) / a.steps
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "causal": a.causal, "stage": a.stage,
        "compiled": a.compile, "compile_s": significant(compile_s) if a.compile else None,
        "batch": a.batch, "batch_tokens": a.batch_tokens, "steps": a.steps,
        "examples_per_step": significant(examples),
        "seconds_per_step": significant(per_step),
        "examples_per_s": significant(examples / per_step),
        "synchronised_parts_s": {k: significant(v / a.steps) for k, v in clock.items()},
        "aten_ops_per_step": ops,
        "gpu_kernels_per_step": kernels if device.type == "cuda" else None,
    }
    return report(result, a.json)


if __name__ == "__main__":
    main()
