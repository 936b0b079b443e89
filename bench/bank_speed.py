"""Training examples per second from the example bank against the live generator.

    python -m bench.bank_speed --bank runs/bank [--minutes 2] [--threads 2]

Trains the nano shape for `--minutes` of the training process's CPU time from scratch twice,
once making examples as it goes (OmniWorld rendering, eSpeak, video in the training process)
and once reading them from the bank, on the same threads with no data workers, and prints the
examples and steps per CPU second of each as JSON (CPU time, so that other work on the machine
does not move the numbers; on an idle machine with one thread, CPU and wall time agree).
First, the data side alone: `prepare_inputs` per step from each source.
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


def data_rate(bank: Path, tokenizers: Path, steps: int) -> dict:
    """CPU seconds per step and examples per CPU second of the data side alone
    (`prepare_inputs`, tokenizing included, eSpeak's own processes counted), live and from
    the bank."""
    import numpy as np

    from nextomni.data.bank import ExampleBank
    from nextomni.model.formatting import ChatFormatter
    from nextomni.model.loading import load_tokenizers
    from nextomni.threads import one_thread
    from nextomni.train.config import OmniTrainConfig
    from nextomni.train.inputs import LiveSource, prepare_inputs
    from nextomni.train.objective import build_model
    from nextomni.train.omni import cpu_seconds

    one_thread()
    tok = load_tokenizers(tokenizers)
    cfg = OmniTrainConfig(all_blocks=True, batch_tokens=4096)
    fmt = ChatFormatter(build_model(cfg, tok).config, tok)
    out = {}
    for name, source in (("live", LiveSource()), ("bank", ExampleBank(bank))):
        rng = np.random.default_rng(0)
        prepare_inputs(fmt, "sft", rng, cfg, source)  # warm-up: librosa's first call compiles
        start, examples = cpu_seconds(), 0
        for _ in range(steps):
            examples += prepare_inputs(fmt, "sft", rng, cfg, source).dfm.ids.shape[0]
        cpu = cpu_seconds() - start
        out[name] = {"cpu_s_per_step": round(cpu / steps, 3),
                     "examples_per_cpu_s": round(examples / cpu, 1)}
    out["speedup"] = round(out["bank"]["examples_per_cpu_s"] / out["live"]["examples_per_cpu_s"],
                           2)
    return out


def main(argv=None) -> dict:
    import logging

    from nextomni.train.omni import parse_args, train

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bank", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--tokenizers", type=Path, default=Path("checkpoints/nano"))
    p.add_argument("--data-steps", type=int, default=20, help="steps of the data-only part")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = {"minutes": a.minutes, "threads": a.threads,
           "data_only": data_rate(a.bank, a.tokenizers, a.data_steps)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in (("live", []), ("bank", ["--bank", str(a.bank)])):
            work = Path(tmp) / name
            train(parse_args(["--cpu-minutes", str(a.minutes), "--threads", str(a.threads),
                              "--data-workers", "0", "--stages", "sft", "--all-blocks",
                              "--batch-tokens", "4096", "--save-every", "1000000",
                              "--tokenizers", str(a.tokenizers), "--work", str(work),
                              "--out", str(Path(tmp) / f"{name}-model")] + extra))
            out[name] = rate(work, 60 * a.minutes)
    out["training_speedup"] = round(out["bank"]["examples_per_cpu_s"]
                                    / out["live"]["examples_per_cpu_s"], 2)
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
