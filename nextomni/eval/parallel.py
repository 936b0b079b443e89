"""The held-out evaluation spread over worker processes, one task at a time each.

Every reply's sampler is seeded by its task and item, so the numbers are those of one
process (up to the float rounding of a different thread count); only the wall time shrinks.
Each worker loads the checkpoint once and runs on `threads` threads.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed

from tqdm import tqdm

_worker: dict = {}


def _start(checkpoint: str, steps: int, guidance: float, speech_guidance: float | None,
           seed: int, threads: int) -> None:
    import torch

    from nextomni.eval.omni import Evaluator
    from nextomni.model.generate import DecodeOptions
    from nextomni.model.loading import load_checkpoint

    torch.set_num_threads(threads)
    model, fmt = load_checkpoint(checkpoint)
    options = DecodeOptions(steps=steps, guidance=guidance, speech_guidance=speech_guidance)
    _worker["ev"] = Evaluator(model, fmt, options, seed)
    _worker["ev"].progress = False


def _run(job: str, n: int) -> dict:
    from nextomni.eval.omni import task_numbers

    ev = _worker["ev"]
    return {"retrieval_r1": ev.retrieval(n)} if job == "retrieval" else task_numbers(ev, job, n)


def evaluate_parallel(checkpoint, workers: int, n: int = 200, steps: int = 16, tasks=None,
                      seed: int = 0, guidance: float = 0.0,
                      speech_guidance: float | None = None, threads: int = 1) -> dict:
    """`omni.evaluate` of the checkpoint at `checkpoint`, its tasks shared by `workers`
    processes; the same keys in the same order."""
    from nextomni.eval.omni import LAYOUT

    jobs = list(tasks or LAYOUT) + ["retrieval"]
    # the costly tasks first, so that no worker starts one last while the others idle
    order = sorted(jobs, key=lambda j: LAYOUT.get(j) not in ("audio", "image"))
    done: dict[str, dict] = {}
    ctx = multiprocessing.get_context("spawn")  # torch's threads do not survive a fork
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_start,
                             initargs=(str(checkpoint), steps, guidance, speech_guidance, seed,
                                       threads)) as pool:
        futures = {pool.submit(_run, job, n): job for job in order}
        for f in tqdm(as_completed(futures), total=len(futures), desc="tasks"):
            done[futures[f]] = f.result()
    result: dict = {}
    for job in jobs:
        result.update(done[job])
    result["n"] = n
    result["steps"] = steps
    return result
