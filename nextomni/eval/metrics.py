"""Plain metrics: word error rate, PSNR; and how evaluation commands report them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: what WER compares."""
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus word error rate: total word edits / total reference words."""
    if len(references) != len(hypotheses):
        raise ValueError("references and hypotheses differ in number")
    edits = sum(edit_distance(words(r), words(h)) for r, h in zip(references, hypotheses))
    total = sum(len(words(r)) for r in references)
    return edits / max(total, 1)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images (dB)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


def report(result: dict, path: Path | None = None) -> None:
    """Print the numbers as JSON and, if asked, write them to `path` too."""
    text = json.dumps(result, indent=1)
    print(text)
    if path is not None:
        Path(path).write_text(text + "\n")
