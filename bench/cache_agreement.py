"""How often the key/value cache changes an output token: every task's held-out prompts
decoded with the cache on and off (same seeds), tokens compared position by position.

    python -m bench.cache_agreement [--checkpoint checkpoints/nano] [--n 50] [--json FILE]

Block-causal attention makes the cache exact in arithmetic; what remains is floating-point
order (a cached prefix is computed in another shape), which can flip a near-tie.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench import report
from bench.dfm_vs_ar import TASKS
from nextomni.model.decoding import LAYOUTS


def tokens(out) -> list[int]:
    seq = [LAYOUTS.index(out.layout)] + list(out.text_ids)
    for codes in (out.image_codes, out.audio_codes):
        if codes is not None:
            seq += codes.flatten().tolist()
    return seq


def agreement(a: list[int], b: list[int]) -> tuple[int, int]:
    """(matching positions, compared positions); a length difference counts as mismatches."""
    same = sum(x == y for x, y in zip(a, b))
    return same, max(len(a), len(b))


def main(argv=None) -> dict:
    from nextomni.data.media import as_media
    from nextomni.data.splits import heldout
    from nextomni.data.tasks import make_example
    from nextomni.model.decoding import DecodeOptions
    from nextomni.model.generate import generate
    from nextomni.model.loading import load_checkpoint

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--n", type=int, default=50)
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    model, fmt = load_checkpoint(a.checkpoint)
    result, total_same, total = {}, 0, 0
    for task in [t for t in a.tasks.split(",") if t]:
        same = count = identical = 0
        for i, seed in enumerate(heldout(a.n)):
            prompt = fmt.prompt(as_media(make_example(task, seed).turns[:-1])).build()
            outs = [tokens(generate(model, prompt, DecodeOptions(steps=a.steps, cache=c),
                                    torch.Generator().manual_seed(i))) for c in (True, False)]
            s, n = agreement(*outs)
            same, count, identical = same + s, count + n, identical + (outs[0] == outs[1])
        result[task] = {"token_agreement": round(same / count, 5),
                        "identical_replies": round(identical / a.n, 4)}
        total_same, total = total_same + same, total + count
    result["all"] = {"token_agreement": round(total_same / total, 5), "n_per_task": a.n}
    return report(result, a.json)


if __name__ == "__main__":
    main()
