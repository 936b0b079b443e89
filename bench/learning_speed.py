"""How fast a training recipe learns: train a variant from scratch for a fixed budget, score it.

    python -m bench.learning_speed --variant wide --minutes 20 --threads 1 \
        --tasks caption,vqa,vqa:heldout,t2i --n 100 --bank runs/bank \
        -- --hidden-size 384 --num-layers 4 [more training flags]

Everything after `--` goes to the training command (`python -m nextomni.train.omni`); the
harness adds the budget (`--minutes` of the training process's CPU time, whose learning rate
follows the elapsed share of it, so that runs side by side or beside other work stay
comparable), the threads, the bank and the run's folders. The finished model is
scored on `--n` held-out items per task with the project's eval (`nextomni.eval.omni`), and
one JSON row is printed and appended to `--results`: the variant, its flags, the budget, the
steps and examples it trained on, and the per-task metrics. Compare rows of equal budget.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

RESULTS = Path("bench/results/learning-speed/runs.jsonl")
TOKENIZERS = Path("checkpoints/nano")  # the shipped ones; rows before the field used these


def split_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """(the harness's own arguments, the training flags after `--`)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def parse(argv=None):
    own, train_flags = split_argv(list(sys.argv[1:] if argv is None else argv))
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", required=True, help="the run's name (its folder under --runs)")
    p.add_argument("--minutes", type=float, default=20.0,
                   help="training budget in CPU minutes of the training process (other work "
                   "on the machine does not eat into it)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads of the training step")
    p.add_argument("--tasks", default="caption,vqa,vqa:heldout,t2i",
                   help="tasks to score (TASK:heldout: the held-out phrasings)")
    p.add_argument("--n", type=int, default=100, help="held-out items per task")
    p.add_argument("--steps", type=int, default=16, help="DFM sampling steps in the eval")
    p.add_argument("--bank", type=Path, default=None, help="example bank to train from")
    p.add_argument("--tokenizers", type=Path, default=TOKENIZERS,
                   help="tokenizers of the run (a folder holding them)")
    p.add_argument("--runs", type=Path, default=Path("runs/learning-speed"))
    p.add_argument("--results", type=Path, default=RESULTS)
    a = p.parse_args(own)
    if a.minutes <= 0 or a.n < 1 or a.threads < 1:
        p.error("--minutes must be > 0, --n and --threads at least 1")
    return a, train_flags


def train_config(a, train_flags: list[str]):
    from nextomni.train.omni import parse_args

    folder = a.runs / a.variant
    flags = ["--cpu-minutes", str(a.minutes), "--threads", str(a.threads), "--data-workers", "0",
             "--out", str(folder / "model"), "--work", str(folder / "work"),
             "--tokenizers", str(a.tokenizers)] + train_flags
    if a.bank is not None:
        flags += ["--bank", str(a.bank)]
    return parse_args(flags)


def trained_on(work: Path) -> dict:
    """Steps (from the saved state) and examples (the loss log's mean examples per step, one
    record every 25 steps, times the steps) of the run."""
    logfile, state = work / "log.jsonl", work / "state" / "step.json"
    records = [json.loads(line) for line in logfile.read_text().splitlines()] \
        if logfile.exists() else []
    steps = json.loads(state.read_text())["step"] if state.exists() else 0
    if not records:
        return {"steps": steps, "examples": 0}
    per_step = sum(r.get("examples", 0) for r in records) / len(records)
    last = {k: records[-1][k] for k in ("dfm", "retrieval") if k in records[-1]}
    return {"steps": steps, "examples": int(round(per_step * steps)), "last_loss": last}


def main(argv=None) -> dict:
    import torch

    from nextomni.eval.omni import evaluate
    from nextomni.model.loading import load_checkpoint
    from nextomni.train.omni import train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    a, train_flags = parse(argv)
    cfg = train_config(a, train_flags)
    began = time.monotonic()
    if not (cfg.out / "model.safetensors").exists():
        train(cfg)
    trained_s = time.monotonic() - began
    torch.set_num_threads(a.threads)
    model, fmt = load_checkpoint(cfg.out)
    tasks = [t for t in a.tasks.split(",") if t]
    metrics = evaluate(model, fmt, a.n, a.steps, tasks)
    row = {"variant": a.variant, "flags": train_flags, "tokenizers": str(a.tokenizers),
           "minutes": a.minutes, "threads": a.threads, "bank": a.bank is not None, **trained_on(cfg.work),
           "parameters": model.num_parameters(), "train_wall_s": round(trained_s, 1),
           "eval_wall_s": round(time.monotonic() - began - trained_s, 1),
           "metrics": metrics, "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    a.results.parent.mkdir(parents=True, exist_ok=True)
    with open(a.results, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row))
    return row


if __name__ == "__main__":
    main()
