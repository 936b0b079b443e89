"""Where a reply's time goes: the CPU seconds of one reply of each kind through the engine at
the app's defaults, and a profile of it by kind of work.

    python -m bench.reply_profile [--checkpoint checkpoints/nano] [--repeats 5] [--json FILE]

For an image, a one-word answer about a picture, a caption and a spoken sentence (the app's
examples): the median CPU seconds of `--repeats` replies, their steps and forward passes,
the engine's media time, and each kind of work's share of a cProfile of one more reply
(its own time, function by function, grouped: matrix products, attention, transformers'
code, torch's module calls, the DFM sampler, media decoding, ...). CPU time, so that
other work on the machine moves the numbers less; the profile sees the calling thread.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from pathlib import Path

from bench import report

EXAMPLES = Path(__file__).resolve().parents[1] / "ui" / "examples"
REPLIES = {  # name: (the user's parts, the reply kind asked for)
    "image": ([{"kind": "text", "text": "generate an image of a small red circle in the top "
                "left on a white background."}], "image"),
    "one_word": ([{"kind": "image", "path": str(EXAMPLES / "scene.png")},
                  {"kind": "text", "text": "how many blue shapes are there?"}], "text"),
    "caption": ([{"kind": "image", "path": str(EXAMPLES / "scene.png")},
                 {"kind": "text", "text": "what do you see?"}], "text"),
    "speech": ([{"kind": "text", "text": "read this aloud: a small green triangle on the "
                 "left on a white background"}], "speech"),
}
GROUPS = (  # (group, test on (file, function name)), first match wins
    ("matrix products", lambda f, n: "linear" in n or n.endswith(("matmul>", "mm>"))),
    ("attention", lambda f, n: "scaled_dot_product" in n),
    ("media decoding", lambda f, n: "conv" in n or "librosa" in f or "scipy" in f
     or "pocketfft" in n or "tokenizers/" in f),
    ("transformers' code", lambda f, n: "transformers" in f),
    ("torch module calls", lambda f, n: "torch/nn/" in f),
    ("DFM sampler", lambda f, n: "nextomni/dfm" in f),
    ("other nextomni code", lambda f, n: "nextomni" in f),
    ("other torch operations", lambda f, n: f == "~"),
)


def group_of(filename: str, name: str) -> str:
    return next((g for g, test in GROUPS if test(filename, name)), "other")


def one_reply(engine, parts, settings):
    for ev in engine.chat([{"role": "user", "parts": parts}], settings):
        last = ev
    return last


def profile(engine, parts, settings, repeats: int) -> dict:
    one_reply(engine, parts, settings)  # warm
    cpu = []
    for _ in range(repeats):
        started = time.process_time()
        done = one_reply(engine, parts, settings)
        cpu.append(time.process_time() - started)
    prof = cProfile.Profile()
    prof.runcall(one_reply, engine, parts, settings)
    shares: dict[str, float] = {}
    for (filename, _, name), row in pstats.Stats(prof).stats.items():
        shares[group_of(filename, name)] = shares.get(group_of(filename, name), 0) + row[2]
    total = sum(shares.values())
    return {"cpu_s_median": round(statistics.median(cpu), 4), "steps": done.stats.steps,
            "forward_passes": done.stats.forward_passes + done.stats.guidance_forward_passes,
            "media_s": round(done.media_s, 4),
            "shares": {g: round(t / total, 3) for g, t in
                       sorted(shares.items(), key=lambda kv: -kv[1])}}


def main(argv=None) -> dict:
    import torch

    from nextomni.engine import OmniEngine, Settings

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="checkpoints/nano")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    engine = OmniEngine.load(a.checkpoint, device="cpu")
    engine.warm_up()
    result = {name: profile(engine, parts, Settings(reply=kind), a.repeats)
              for name, (parts, kind) in REPLIES.items()}
    return report({**result, "threads": torch.get_num_threads()}, a.json)


if __name__ == "__main__":
    main()
