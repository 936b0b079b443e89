"""DFM against the autoregressive baseline on the nano models, task by task.

For every task: accuracy (1 - WER for speech tasks) and reply latency p50 / p90 for DFM with
the cache on/off and dynamic length on/off (ablations), and for the AR baseline (same
backbone size, trained causally on the same data and budget; checkpoints/nano-ar) decoded
with a key/value cache. DFM decodes as the app does (`Settings`' steps, image steps and
settling; `--steps`, `--image-steps`, `--no-settle` change them); neither mode is guided,
the baseline has no guidance. Prints a markdown table and JSON: the rows, AR p50 / DFM p50
per task (`ar_over_dfm_p50`, the goal is >= 1 everywhere, 3 ideally) and DFM's accuracy
minus AR's (`dfm_minus_ar_accuracy`).

    python -m bench.dfm_vs_ar [--n 50] [--tasks caption,vqa,...] [--json FILE]
        [--dfm checkpoints/nano] [--ar checkpoints/nano-ar] [--variants all|dfm-cache-dynamic,ar]

Rows: {"mode", "cache", "dynamic", "task", "accuracy", "latency_p50_ms", "latency_p90_ms",
"cpu_p50_ms", "n"}; `--json` writes the whole result.
Latency is the decoder's own time on one thread (`DecodeStats.latency_s`), and its CPU time
(`cpu_s`: what other work on the machine moves least; `ar_over_dfm_cpu_p50` compares it).
Without an AR checkpoint the AR rows are left out and the output says so.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

TASKS = ("caption", "vqa", "asr", "t2i", "tts", "video", "edit")
VARIANTS = (  # (mode, cache, dynamic)
    ("dfm", True, True), ("dfm", False, True), ("dfm", True, False), ("ar", True, True))


def variant_name(v) -> str:
    mode, cache, dynamic = v
    if mode == "ar":
        return "ar"
    return f"dfm-{'cache' if cache else 'nocache'}-{'dynamic' if dynamic else 'fixed'}"


def pick_variants(spec: str) -> list:
    """`all`, or names like dfm-cache-dynamic,dfm-nocache-dynamic,dfm-cache-fixed,ar."""
    if spec == "all":
        return list(VARIANTS)
    names = {variant_name(v): v for v in VARIANTS}
    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in names]
    if unknown or not wanted:
        raise SystemExit(f"unknown variant(s) {unknown or spec!r}; choose from all or "
                         f"{', '.join(names)}")
    return [names[w] for w in wanted]


def options_for(mode: str, cache: bool, dynamic: bool, steps: int,
                image_steps: int | None = None, settle: bool = False):
    from nextomni.model.decoding import DecodeOptions

    if mode == "ar":  # next-token decoding: one-token blocks, one step each
        return DecodeOptions(steps=1, confidence=1.0, block_size=1, max_text_blocks=128,
                             max_audio_blocks=256, cache=cache, dynamic=dynamic)
    # without dynamic length the canvas is the longest the task set needs (8 text blocks)
    return DecodeOptions(steps=steps, image_steps=image_steps, settle=settle, cache=cache,
                         dynamic=dynamic, fixed_blocks=8)


def run(variant, model, fmt, tasks, n: int, steps: int, image_steps: int | None = None,
        settle: bool = False) -> list[dict]:
    from nextomni.eval.omni import Evaluator

    mode, cache, dynamic = variant
    rows = []
    for task in tasks:
        ev = Evaluator(model, fmt, options_for(mode, cache, dynamic, steps, image_steps, settle))
        r = ev.task(task, n)
        acc = r["acc"] if "acc" in r else max(0.0, 1.0 - r["wer"])
        lat, cpu = np.array(ev.latencies) * 1000, np.array(ev.cpu_seconds) * 1000
        rows.append({"mode": mode, "cache": cache, "dynamic": dynamic, "task": task,
                     "accuracy": round(float(acc), 4),
                     "latency_p50_ms": round(float(np.percentile(lat, 50)), 1),
                     "latency_p90_ms": round(float(np.percentile(lat, 90)), 1),
                     "cpu_p50_ms": round(float(np.percentile(cpu, 50)), 1), "n": n})
        logging.info("%s", rows[-1])
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| mode | cache | dynamic | task | accuracy | p50 ms | p90 ms | CPU p50 ms | n |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['mode']} | {'on' if r['cache'] else 'off'} | "
                     f"{'on' if r['dynamic'] else 'off'} | {r['task']} | {r['accuracy']:.3f} | "
                     f"{r['latency_p50_ms']:.0f} | {r['latency_p90_ms']:.0f} | "
                     f"{r['cpu_p50_ms']:.0f} | {r['n']} |")
    return "\n".join(lines)


def speedups(rows: list[dict], key: str = "latency_p50_ms") -> dict:
    """Per task: AR p50 latency / full-DFM p50 latency (`key="cpu_p50_ms"`: of CPU time,
    the fairer measure when other work shares the machine)."""
    return _against_ar(rows, lambda d, a: round(a[key] / max(d[key], 1e-9), 2))


def accuracy_gaps(rows: list[dict]) -> dict:
    """Per task: full-DFM accuracy - AR accuracy (>= 0: DFM is as good or better)."""
    return _against_ar(rows, lambda d, a: round(d["accuracy"] - a["accuracy"], 4))


def _against_ar(rows: list[dict], compare) -> dict:
    by = {(r["mode"], r["cache"], r["dynamic"], r["task"]): r for r in rows}
    out = {}
    for (mode, cache, dynamic, task), r in by.items():
        ar = by.get(("ar", True, True, task))
        if mode == "dfm" and cache and dynamic and ar:
            out[task] = compare(r, ar)
    return out


def main(argv=None) -> None:
    from nextomni.engine import Settings
    from nextomni.model.loading import load_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dfm", default="checkpoints/nano")
    p.add_argument("--ar", default="checkpoints/nano-ar")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--steps", type=int, default=Settings.steps)
    p.add_argument("--image-steps", type=int, default=Settings.image_steps)
    p.add_argument("--no-settle", dest="settle", action="store_false",
                   help="run every DFM block to its confidence or its last step")
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--variants", default="all",
                   help="all, or some of dfm-cache-dynamic,dfm-nocache-dynamic,"
                        "dfm-cache-fixed,ar")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.manual_seed(0)
    torch.set_num_threads(1)  # the decoders' own cost, not the machine's thread pool
    tasks = [t for t in a.tasks.split(",") if t]
    variants = pick_variants(a.variants)
    notes = []
    if not (Path(a.ar) / "config.json").exists():
        variants = [v for v in variants if v[0] != "ar"]
        notes.append(f"no AR baseline at {a.ar}: AR rows left out")
    dfm = load_checkpoint(a.dfm)
    ar = load_checkpoint(a.ar) if any(v[0] == "ar" for v in variants) else None
    rows = []
    for v in variants:
        model, fmt = ar if v[0] == "ar" else dfm
        rows += run(v, model, fmt, tasks, a.n, a.steps, a.image_steps, a.settle)
    print(table(rows))
    result = {"rows": rows, "ar_over_dfm_p50": speedups(rows),
              "ar_over_dfm_cpu_p50": speedups(rows, "cpu_p50_ms"),
              "dfm_minus_ar_accuracy": accuracy_gaps(rows),
              "dfm": {"steps": a.steps, "image_steps": a.image_steps, "settle": a.settle},
              "notes": notes}
    print(json.dumps(result, indent=1))
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
