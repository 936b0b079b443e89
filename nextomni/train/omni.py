"""Train the omni model in three stages (PT -> CPT -> SFT) on OmniWorld.

    python -m nextomni.train.omni --out checkpoints/nano [--stages pt,cpt,sft]
        [--pt-steps N --cpt-steps N --sft-steps N] [--batch 16] [--work runs/omni]

Built on accelerate: the same command runs on CPU, one GPU, or, under `accelerate launch`,
several GPUs / nodes (each process draws its own batches). bf16 autocast on a GPU, resumable (state
under --work every --save-every steps; rerun the command to continue), tqdm, JSON-lines loss
logs, one seed. Needs the tokenizers in --out (python -m nextomni.train.tokenizers).

The run reads like its parts: the settings and their flags (`train/config.py`), the inputs
(`train/inputs.py`: examples live or from an example bank), the objective
(`train/objective.py`), and below the loop: setup, model, optimizer, steps, save.
With `--minutes M` a run has a fixed wall time instead of fixed steps (the learning rate
follows the elapsed share of M), which is how runs of different cost compare at equal budget.

The autoregressive baseline is the same script on the same data and budget:

    python -m nextomni.train.omni --causal --out checkpoints/nano-ar \
        --tokenizers checkpoints/nano --work runs/omni-ar

(causal attention, next-token cross-entropy over the whole reply, the same retrieval term;
it links to the DFM model's tokenizers and leaves them unchanged).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import torch
from tqdm import tqdm

from nextomni.model import OmniModel
from nextomni.model.formatting import ChatFormatter, Tokenizers
from nextomni.model.loading import load_tokenizers
from nextomni.model.modeling import save_pretrained
from nextomni.train.config import OmniTrainConfig, parse_args as _parse_args, uses_bf16
from nextomni.train.inputs import InputStream, stage_of
from nextomni.train.objective import build_objective

log = logging.getLogger("nextomni.train.omni")

UNBOUNDED = 10 ** 9  # the step count of a --minutes run: it ends when its time is up


def lr_at(step: int, total: int, peak: float, warmup: int, progress: float | None = None) -> float:
    """Linear warm-up, cosine to 10% over the whole run (all stages). `progress` (0..1), when
    given, replaces step / total: a run of fixed minutes follows its elapsed time."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup)) if progress is None else \
        min(1.0, progress)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (eSpeak runs as one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def tokenizer_folder(cfg: OmniTrainConfig) -> Path:
    return cfg.tokenizers or cfg.init_from or cfg.out


class StepClock:
    """Where the training loop's time goes: waiting for data (the loader had no step ready)
    or computing; a run whose waits dominate is bound by the data side, not the device."""

    def __init__(self):
        self.last = time.perf_counter()
        self.data = self.compute = 0.0
        self.steps = 0

    def ready(self) -> None:
        now = time.perf_counter()
        self.data += now - self.last
        self.last = now

    def done(self) -> None:
        now = time.perf_counter()
        self.compute += now - self.last
        self.last = now
        self.steps += 1

    def window(self) -> dict[str, float]:
        """Mean seconds per step since the last call, then start a new window."""
        n = max(1, self.steps)
        out = {"data_s": round(self.data / n, 4), "compute_s": round(self.compute / n, 4)}
        self.data = self.compute = 0.0
        self.steps = 0
        return out

    @property
    def waiting(self) -> float:
        """Fraction of the current window spent waiting for data."""
        return self.data / max(1e-9, self.data + self.compute)


def train(cfg: OmniTrainConfig) -> OmniModel:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    # setup
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    acc = Accelerator(mixed_precision="bf16" if uses_bf16(cfg, device) else "no")
    set_seed(cfg.seed)
    tok = load_tokenizers(tokenizer_folder(cfg))
    # model and optimizer
    objective, trainable, opt = build_objective(cfg, tok)
    model = objective.model
    wrapped, opt = acc.prepare(objective, opt)
    objective.placed(acc.device)
    # the data side gets its own CPU copy of the tokenizers: the model's copies live on the
    # accelerator (and their decoders train), and forked workers must not touch CUDA
    fmt = ChatFormatter(model.config, load_tokenizers(tokenizer_folder(cfg)))
    total = UNBOUNDED if cfg.budget_s is not None else cfg.total_steps
    state_dir = cfg.work / "state"
    start, spent = _resume(acc, state_dir)
    stream = torch.utils.data.DataLoader(
        InputStream(fmt, cfg, start, total, acc.process_index), batch_size=None,
        num_workers=cfg.data_workers, prefetch_factor=2 if cfg.data_workers else None)
    # loop
    finished = _loop(cfg, acc, wrapped, opt, trainable, stream, start, total, spent)
    acc.wait_for_everyone()
    if finished and acc.is_main_process:
        export(model, tok, cfg.out, tokenizer_folder(cfg) if cfg.causal else None)
    return model


def _loop(cfg, acc, wrapped, opt, trainable, stream, start: int, total: int,
          spent: float) -> bool:
    """The training steps from `start`; True once the run is complete (state saved at every
    `save_every`, at the end, and when --max-minutes stops it)."""
    logfile = cfg.work / "log.jsonl"
    bar = tqdm(stream, initial=start, total=None if cfg.budget_s else total, desc="omni",
               disable=not acc.is_main_process, dynamic_ncols=True)
    wrapped.train()
    clock, began = StepClock(), time.monotonic()
    spend = cpu_seconds if cfg.cpu_minutes is not None else time.monotonic
    spend_began = spend()
    finished = start >= total
    for step, inputs in bar:
        clock.ready()
        elapsed = spent + spend() - spend_began
        progress = elapsed / cfg.budget_s if cfg.budget_s else None
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg.lr, cfg.warmup, progress)
        inputs = inputs.to(acc.device)
        with acc.autocast():
            parts = wrapped(inputs)
        opt.zero_grad(set_to_none=True)
        acc.backward(parts["loss"])
        acc.clip_grad_norm_(trainable, 1.0)
        opt.step()
        values = {k: round(v.item(), 4) for k, v in parts.items()}
        clock.done()
        stage = stage_of(step, cfg)
        bar.set_postfix(stage=stage, dfm=values["dfm"], ret=values["retrieval"],
                        wait=f"{clock.waiting:.0%}")
        if acc.is_main_process and step % 25 == 0:
            _log(logfile, {"step": step, "stage": stage, **values, "len": inputs.dfm.ids.shape[1],
                           "examples": inputs.dfm.ids.shape[0], "lr": opt.param_groups[0]["lr"],
                           **clock.window(), "time": time.time()})
        elapsed = spent + spend() - spend_began
        finished = step + 1 == total or (cfg.budget_s is not None and elapsed >= cfg.budget_s)
        out_of_time = _all_agree(acc, cfg.max_minutes is not None
                                 and time.monotonic() - began >= 60 * cfg.max_minutes)
        finished = _all_agree(acc, finished)
        if (step + 1) % cfg.save_every == 0 or finished or out_of_time:
            _save_state(acc, state_dir=cfg.work / "state", step=step + 1, spent=elapsed)
        if finished:
            break
        if out_of_time:
            log.info("stopped after %.1f min at step %d (state saved); rerun the same "
                     "command to continue", cfg.max_minutes, step + 1)
            break
    bar.close()
    return finished


def _all_agree(acc, flag: bool) -> bool:
    """True on every process once one says so (all stop at one step)."""
    if acc.num_processes == 1:
        return flag
    t = torch.tensor(float(flag), device=acc.device)
    return bool(acc.reduce(t, reduction="sum") > 0)


def export(model: OmniModel, tok: Tokenizers, out: Path, shared: Path | None = None) -> None:
    """The shipped checkpoint: bf16 weights (half the bytes), tokenizers beside them; with
    `shared`, relative links to that folder's tokenizers instead of copies."""
    model = model.to(torch.bfloat16) if any(p.dtype == torch.float32 for p in model.parameters()) \
        else model
    if shared is not None and Path(shared).resolve() != Path(out).resolve():
        save_pretrained(model, out)
        for name in ("tokenizer.json", "image_tokenizer", "audio_tokenizer"):
            link = Path(out) / name
            if link.is_symlink() or link.exists():
                continue
            link.symlink_to(os.path.relpath(Path(shared).resolve() / name, Path(out).resolve()))
    else:
        save_pretrained(model, out, tok)
    log.info("saved %s", out)


def _resume(acc, state_dir: Path) -> tuple[int, float]:
    """(the step to continue from, the seconds of training already spent)."""
    meta = state_dir / "step.json"
    if not meta.exists():
        return 0, 0.0
    acc.load_state(str(state_dir))
    saved = json.loads(meta.read_text())
    log.info("resuming at step %d", saved["step"])
    return saved["step"], float(saved.get("spent_s", 0.0))


def _save_state(acc, state_dir: Path, step: int, spent: float = 0.0) -> None:
    acc.save_state(str(state_dir))
    if acc.is_main_process:
        (state_dir / "step.json").write_text(json.dumps({"step": step, "spent_s": spent}))


def _log(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def parse_args(argv=None) -> OmniTrainConfig:
    return _parse_args(argv, __doc__.splitlines()[0])


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train(parse_args(argv))


if __name__ == "__main__":
    main()
