"""Training examples per second from the example bank against the live generator.

    python -m bench.bank_speed --bank runs/bank [--minutes 2] [--threads 2]

Trains the nano shape for `--minutes` of the training process's CPU time from scratch twice,
once making examples as it goes (OmniWorld rendering, eSpeak, video in the training process)
and once reading them from the bank, on the same threads with no data workers, and prints the
examples and steps per CPU second of each as JSON (CPU time, so that other work on the machine
does not move the numbers; on an idle machine with one thread, CPU and wall time agree).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def rate(work: Path, cpu_s: float) -> dict:
    """Steps and examples per CPU second of the training process, from its log and state."""
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    steps = json.loads((work / "state" / "step.json").read_text())["step"]
    per_step = sum(r["examples"] for r in records) / len(records)
    return {"steps": steps, "steps_per_cpu_s": round(steps / cpu_s, 4),
            "examples_per_cpu_s": round(steps * per_step / cpu_s, 2),
            "examples_per_step": round(per_step, 1)}


def main(argv=None) -> dict:
    import logging

    from nextomni.train.omni import parse_args, train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokenizers", type=Path, default=Path("checkpoints/nano"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {"minutes": a.minutes, "threads": a.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("live", []), ("bank", ["--bank", str(a.bank)])):
            work = Path(tmp) / name
            train(parse_args(["--cpu-minutes", str(a.minutes), "--threads", str(a.threads),
                              "--data-workers", "0", "--stages", "sft", "--all-blocks",
                              "--batch-tokens", "4096", "--save-every", "1000000",
                              "--tokenizers", str(a.tokenizers), "--work", str(work),
                              "--out", str(Path(tmp) / f"{name}-model")] + extra))
            out[name] = rate(work, 60 * a.minutes)
    out["speedup"] = round(out["bank"]["examples_per_cpu_s"] / out["live"]["examples_per_cpu_s"],
                           2)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
