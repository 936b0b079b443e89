"""What a person waits for in the app: the shipped model through `OmniEngine.chat` as the
chat box calls it, every setting at the app's default.

    python -m bench.app_latency [--checkpoint checkpoints/nano] [--n 20] [--threads N]
        [--json FILE]

Held-out OmniWorld items (pictures written to PNG files and read back as an upload is),
each reply in a new chat; the reply kind is fixed to the one measured (the switch by the
message box), everything else is `Settings()`. Times are wall-clock seconds from the call to
`chat` (reading the upload and building the prompt included):

- first_update_s: the first streamed event of any reply (the page's first sign of life);
- text_one_word_s: a whole text reply to a question whose answer is one word (VQA);
- image_s: a whole image reply (the picture, decoded);
- speech_first_audio_s: the first streamed piece of speech; speech_s: the whole reply.

Prints p50 / p90 of each (and the CPU seconds of the process, which other work on the
machine moves less), whether each target is met and by how much it is missed. One reply of
each kind runs first and is not counted: a running app has done that work already.
Threads: the engine's choice on a CPU (every core but one, as in the app) unless --threads.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench import report

TARGETS = {"first_update_s": 0.3, "text_one_word_s": 0.5, "image_s": 1.0,
           "speech_first_audio_s": 1.0}
KINDS = {"vqa": "text", "t2i": "image", "tts": "speech"}  # task -> reply kind measured


def messages(task: str, seed: int, folder: Path) -> list[dict]:
    """The user's message of a held-out item, as the chat box sends it (files by path)."""
    from PIL import Image

    from nextomni.data.media import as_media
    from nextomni.data.tasks import make_example

    turn = as_media(make_example(task, seed).turns[:-1])[-1]
    parts = []
    for i, p in enumerate(turn.parts):
        if p.kind == "image":
            path = folder / f"{task}-{seed}-{i}.png"
            Image.fromarray(np.asarray(p.value)).save(path)
            parts.append({"kind": "image", "path": str(path)})
        elif p.kind == "text":
            parts.append({"kind": "text", "text": p.value})
        else:
            raise ValueError(f"a {task} prompt holds {p.kind}, which this bench does not send")
    return [{"role": "user", "parts": parts}]


def timed_reply(engine, msgs, settings) -> dict:
    """Wall and CPU seconds from the call to the first update, the first audio, the reply's
    segment and the end; the reply's words (text) and streamed pieces (speech)."""
    from nextomni.engine import Finished, Progress

    t0, c0 = time.perf_counter(), time.process_time()
    out = {"chunks": 0}
    for ev in engine.chat(msgs, settings, session=uuid.uuid4().hex):
        now = time.perf_counter() - t0
        out.setdefault("first_update_s", now)
        if isinstance(ev, Progress):
            if ev.audio is not None:
                out.setdefault("first_audio_s", now)
                out["chunks"] += 1
        elif isinstance(ev, Finished):
            out["done_s"], out["cpu_s"] = now, time.process_time() - c0
            out["forward_passes"] = ev.stats.forward_passes + ev.stats.guidance_forward_passes
        else:
            out["reply_s"], out["kind"] = now, ev.kind
            out["words"] = len(ev.text.split()) if ev.kind == "text" else None
    return out


def percentiles(values: list[float]) -> dict:
    v = np.asarray(values, dtype=float)
    return {"p50": round(float(np.percentile(v, 50)), 4),
            "p90": round(float(np.percentile(v, 90)), 4)}


def measure(engine, n: int, folder: Path) -> dict:
    from nextomni.data.splits import heldout
    from nextomni.engine import Settings

    runs = {}
    for task, kind in KINDS.items():
        settings = Settings(reply=kind)
        seeds = list(heldout(n + 1))
        timed_reply(engine, messages(task, seeds[0], folder), settings)  # warm-up
        runs[kind] = [timed_reply(engine, messages(task, s, folder), settings)
                      for s in seeds[1:]]
    return runs


def summary(runs: dict) -> dict:
    every = [r for rs in runs.values() for r in rs]
    text, image, speech = runs["text"], runs["image"], runs["speech"]
    times = {
        "first_update_s": percentiles([r["first_update_s"] for r in every]),
        "text_one_word_s": percentiles([r["reply_s"] for r in text]),
        "image_s": percentiles([r["reply_s"] for r in image]),
        "speech_first_audio_s": percentiles([r.get("first_audio_s", r["reply_s"])
                                             for r in speech]),
        "speech_s": percentiles([r["reply_s"] for r in speech]),
    }
    cpu = {k: percentiles([r["cpu_s"] for r in rs]) for k, rs in runs.items()}
    met = {k: times[k]["p50"] <= t for k, t in TARGETS.items()}
    miss = {k: round(times[k]["p50"] - t, 4) for k, t in TARGETS.items() if not met[k]}
    return {"seconds": times, "cpu_s_per_reply": cpu, "targets_p50": TARGETS, "met": met,
            "missed_by_s": miss,
            "text_words_p50": float(np.median([r["words"] for r in text])),
            "speech_chunks_p50": float(np.median([r["chunks"] for r in speech])),
            "speech_streamed": all(r["chunks"] > 0 and r["first_audio_s"] < r["reply_s"]
                                   for r in speech if r["chunks"]),
            "forward_passes_p50": {k: float(np.median([r["forward_passes"] for r in rs]))
                                   for k, rs in runs.items()}}


def main(argv=None) -> dict:
    import torch

    from nextomni.engine import OmniEngine

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--n", type=int, default=20, help="replies of each kind")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: the engine's, as in the app)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    engine = OmniEngine.load(a.checkpoint, device="cpu")  # sets the app's thread count
    if a.threads:
        torch.set_num_threads(a.threads)
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as folder:
        runs = measure(engine, a.n, Path(folder))
    result = {"checkpoint": a.checkpoint, "n": a.n, "threads": torch.get_num_threads(),
              "cpus": os.cpu_count(), "load_before": round(load, 2),
              "load_after": round(os.getloadavg()[0], 2), **summary(runs)}
    return report(result, a.json)


if __name__ == "__main__":
    main()
