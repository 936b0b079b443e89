"""Benchmarks: scripts that print their results as JSON (and write them with --json)."""

from __future__ import annotations

import json
from pathlib import Path


def report(result, path: Path | None = None):
    """Print `result` as JSON and, given a path, write the same there; returns `result`."""
    text = json.dumps(result, indent=1)
    print(text)
    if path:
        Path(path).write_text(text + "\n")
    return result
