"""How much a reply depends on its prompt: the DFM loss of held-out replies given their own
prompt, the `<|null|>` prompt (guidance's unconditional one), and another example's prompt.

    python -m bench.condition_use [--checkpoint checkpoints/nano] [--n 24] [--t 0.05,0.5]
        [--tasks caption,t2i,tts] [--json FILE]

A model that reads its prompt has a far lower loss with its own (captions: ~0.4 against
~2.8 with another's); the same loss under all three means the reply is drawn from the
task's marginal, whatever was asked. Losses are per example (mean over a reply's
variables), with one fixed t for every reply block and the same generator seed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from bench import report

PROMPTS = ("own", "null", "other")


def with_prompts(examples, which: str):
    """The examples with their replies kept and their prompts swapped as `which` says."""
    from nextomni.data.tasks import Example
    from nextomni.train.inputs import drop_condition

    if which == "own":
        return examples
    if which == "null":  # the prompt condition dropout trains with
        return [Example(e.task, drop_condition(e.turns), e.answer) for e in examples]
    shifted = examples[1:] + examples[:1]  # each reply under the next example's prompt
    return [Example(e.task, o.turns[:-1] + [e.turns[-1]], e.answer)
            for e, o in zip(examples, shifted)]


def load_dfm(p: argparse.ArgumentParser, checkpoint):
    """(model in eval mode, formatter); a causal checkpoint is a usage error here."""
    from nextomni.model.loading import load_checkpoint

    model, fmt = load_checkpoint(checkpoint)
    if model.config.causal:
        p.error(f"{checkpoint} is a causal (autoregressive) checkpoint; this measures DFM")
    return model.eval(), fmt


def reply_loss(model, fmt, examples, t: float) -> float:
    """Mean over `examples` of each reply's mean DFM loss, every block at noise level t, with
    the same generator seed whatever the prompts."""
    from nextomni.data.media import as_media
    from nextomni.model.objective import dfm_objective
    from nextomni.model.sequence import collate

    batch = collate([fmt.encode_all(as_media(e.turns)) for e in examples])
    b, length, g = batch.ids.shape
    with torch.no_grad():
        return dfm_objective(model, batch, generator=torch.Generator().manual_seed(0),
                             t=torch.full((b, length * g), t), per_example=True).item()


def main(argv=None) -> dict:
    from nextomni.data.splits import heldout
    from nextomni.data.tasks import make_example

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--n", type=int, default=24, help="held-out examples per task (>= 2)")
    p.add_argument("--t", default="0.05,0.5", help="noise levels (0: all noise, 1: clean)")
    p.add_argument("--tasks", default="caption,vqa,asr,t2i,tts,edit")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    if a.n < 2:
        p.error("--n must be at least 2 (the 'other' prompt is another example's)")
    model, fmt = load_dfm(p, a.checkpoint)
    result = {}
    for task in [t for t in a.tasks.split(",") if t]:
        examples = [make_example(task, s) for s in heldout(a.n)]
        row = {}
        for t in (float(x) for x in a.t.split(",")):
            for which in PROMPTS:
                loss = reply_loss(model, fmt, with_prompts(examples, which), t)
                row[f"t={t:g} {which}"] = round(loss, 4)
            row[f"t={t:g} other/own"] = round(row[f"t={t:g} other"] / row[f"t={t:g} own"], 3)
        result[task] = row
    result["n_per_task"] = a.n
    return report(result, a.json)


if __name__ == "__main__":
    main()
