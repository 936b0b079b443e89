"""DFM on a known law: train a tiny model with dfm_loss, sample it back, compare.

The law: 32 distinct arithmetic sequences (length 8, vocabulary 16), so every position depends
on the others, with unequal frequencies. Prints JSON: share of samples inside the support and
total variation from the true frequencies.

    python -m bench.dfm_toy [--seed 0] [--steps 3000] [--samples 8000]
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch
from torch import nn

from nextomni.dfm import MetricPath, dfm_loss, euler_sample

VOCAB, LENGTH, SUPPORT = 16, 8, 32


def sequence_law(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[SUPPORT, LENGTH] distinct sequences and their frequencies."""
    g = torch.Generator().manual_seed(seed)
    pairs = torch.randperm(VOCAB * (VOCAB - 1), generator=g)[:SUPPORT]
    start, step = pairs // (VOCAB - 1), pairs % (VOCAB - 1) + 1
    data = (start[:, None] + step[:, None] * torch.arange(LENGTH)) % VOCAB
    freq = torch.rand(SUPPORT, generator=g) + 0.2
    return data, freq / freq.sum()


class TinyMLP(nn.Module):
    """One-hot sequence in, logits for every position out; no time input."""

    def __init__(self, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(VOCAB * LENGTH, hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, VOCAB * LENGTH))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = nn.functional.one_hot(x, VOCAB).float().flatten(1)
        return self.net(h).view(-1, LENGTH, VOCAB)


def train(seed: int = 0, steps: int = 3000, batch: int = 256, lr: float = 2e-3):
    data, freq = sequence_law(seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model, path = TinyMLP(), MetricPath(torch.randn(VOCAB, 8, generator=g))
    opt = torch.optim.AdamW(model.parameters(), lr)
    target = torch.ones(batch, LENGTH, dtype=torch.bool)
    for it in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * 0.5 * (1 + math.cos(math.pi * it / steps))
        x1 = data[torch.multinomial(freq, batch, replacement=True, generator=g)]
        loss = dfm_loss(model, x1, path, target, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, path, data, freq, g


@torch.no_grad()
def evaluate(model, path, data, freq, g, samples: int = 8000, steps: int = 64) -> dict:
    out = euler_sample(model, torch.zeros(samples, LENGTH, dtype=torch.long), path, steps=steps,
                       temperature=1.0, generator=g)
    match = (out[:, None, :] == data[None]).all(-1)       # [samples, support]
    inside = match.any(1).float().mean()
    tv = 0.5 * ((match.float().mean(0) - freq).abs().sum() + (1 - inside))
    return {"in_support": round(float(inside), 4), "total_variation": round(float(tv), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--samples", type=int, default=8000)
    a = p.parse_args()
    t0 = time.time()
    model, path, data, freq, g = train(a.seed, a.steps)
    train_s = time.time() - t0
    result = evaluate(model, path, data, freq, g, a.samples)
    print(json.dumps({"seed": a.seed, "train_steps": a.steps, "train_seconds": round(train_s, 1),
                      **result}))


if __name__ == "__main__":
    main()
