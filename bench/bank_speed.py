"""Training examples per second from the example bank against the live generator.

    python -m bench.bank_speed --bank runs/bank [--minutes 2] [--threads 2]

Trains the nano shape for `--minutes` from scratch twice, once making examples as it goes
(OmniWorld rendering, eSpeak, video in the training process) and once reading them from the
bank, both on the same threads with no data workers, and prints examples/s and steps/s of
each as JSON. The first step (which pays for imports and librosa's compile) is not counted.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def rate(work: Path) -> dict:
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    steps = json.loads((work / "state" / "step.json").read_text())["step"]
    timed = [r for r in records if r["step"] > 0]
    if len(timed) < 2:
        return {"steps": steps, "examples_per_s": None, "steps_per_s": None}
    span = timed[-1]["time"] - timed[0]["time"]
    done = timed[-1]["step"] - timed[0]["step"]
    per_step = sum(r["examples"] for r in timed) / len(timed)
    return {"steps": steps, "steps_per_s": round(done / span, 3),
            "examples_per_s": round(done * per_step / span, 1),
            "examples_per_step": round(per_step, 1),
            "data_s_per_step": round(sum(r["data_s"] for r in timed) / len(timed), 3),
            "compute_s_per_step": round(sum(r["compute_s"] for r in timed) / len(timed), 3)}


def main(argv=None) -> dict:
    import logging

    from nextomni.train.omni import parse_args, train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokenizers", type=Path, default=Path("checkpoints/nano"))
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {"minutes": a.minutes, "threads": a.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("live", []), ("bank", ["--bank", str(a.bank)])):
            work = Path(tmp) / name
            train(parse_args(["--minutes", str(a.minutes), "--threads", str(a.threads),
                              "--data-workers", "0", "--stages", "sft", "--all-blocks",
                              "--batch-tokens", "4096", "--save-every", "1000000",
                              "--tokenizers", str(a.tokenizers), "--work", str(work),
                              "--out", str(Path(tmp) / f"{name}-model")] + extra))
            out[name] = rate(work)
    if out["live"]["examples_per_s"] and out["bank"]["examples_per_s"]:
        out["speedup"] = round(out["bank"]["examples_per_s"] / out["live"]["examples_per_s"], 2)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
