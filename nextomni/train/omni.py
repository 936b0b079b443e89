"""Train the omni model in three stages (PT -> CPT -> SFT) on OmniWorld.

    python -m nextomni.train.omni --out checkpoints/nano [--stages pt,cpt,sft]
        [--pt-steps N --cpt-steps N --sft-steps N] [--batch 16] [--work runs/omni]

Built on accelerate: the same command runs on CPU, one GPU, or, under `accelerate launch`,
several GPUs / nodes (each process draws its own batches). bf16 autocast, resumable (state
under --work every --save-every steps; rerun the command to continue), tqdm, JSON-lines loss
logs, one seed. Needs the tokenizers in --out (python -m nextomni.train.tokenizers).

Objective per step: DFM cross-entropy on the response variables
  + w_ret * contrastive loss between unified representations of paired items
  + w_img * image reconstruction + w_aud * audio reconstruction (tokenizer decoders keep
    training; their encoders and codebooks stay frozen so the codes do not move).

The autoregressive baseline is the same script on the same data and budget:

    python -m nextomni.train.omni --causal --out checkpoints/nano-ar \
        --tokenizers checkpoints/nano --work runs/omni-ar

(causal attention, next-token cross-entropy over the whole reply, the same retrieval term;
it links to the DFM model's tokenizers and leaves them unchanged).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from nextomni.data.mixture import (
    STAGES, one_modality, parse_mix, sample_retrieval_pairs, sample_tasks,
)
from nextomni.data.speech import random_voice, speak
from nextomni.data.splits import TRAIN_SEEDS
from nextomni.chat import Turn, text as text_part
from nextomni.data.media import as_media, part_media
from nextomni.data.tasks import Example
from nextomni.data.world import random_scene, render
from nextomni.model import OmniConfig, OmniModel
from nextomni.model.formatting import ChatFormatter, Tokenizers
from nextomni.model.loading import load_tokenizers
from nextomni.model.modeling import from_pretrained, save_pretrained
from nextomni.model.objective import ar_objective, dfm_objective
from nextomni.model.sequence import Batch, collate
from nextomni.tokenizers import AudioTokenizer, ImageTokenizer
from nextomni.tokenizers.special import NULL, SPECIAL_TOKENS

log = logging.getLogger("nextomni.train.omni")

GENERATION_TASKS = ("t2i", "a2i", "tts", "i2s", "edit")


@dataclass(frozen=True)
class OmniTrainConfig:
    out: Path = Path("checkpoints/nano")
    work: Path = Path("runs/omni")
    seed: int = 0
    # backbone shape (nano)
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 4
    intermediate_size: int = 768
    block_size: int = 16
    # schedule
    stages: tuple[str, ...] = ("pt", "cpt", "sft")
    pt_steps: int = 800
    cpt_steps: int = 1300
    sft_steps: int = 1300
    batch: int = 32            # at most this many examples per step ...
    batch_tokens: int = 2560   # ... and at most this many padded positions
    lr: float = 1e-3
    warmup: int = 200
    max_len: int = 448
    cond_dropout: float = 0.1
    retrieval_pairs: int = 6
    w_retrieval: float = 0.2
    w_image_rec: float = 0.1
    w_audio_rec: float = 0.1
    save_every: int = 250
    bf16: bool = True
    data_workers: int = 1  # processes preparing batches (0: in the training process)
    # CPU threads of the training step (None: torch's default, one per core). Two runs side
    # by side on one machine want 1 each: oversubscribed OpenMP pools spin against each
    # other and made a step ~4x slower here
    threads: int | None = None
    # stop (state saved) once this many minutes have passed; rerunning continues the run,
    # so a long schedule can go in pieces that each fit a time-limited machine
    max_minutes: float | None = None
    # the autoregressive baseline: a causal model trained on next tokens, same data and budget;
    # it reads (and never changes) the tokenizers of `tokenizers`
    causal: bool = False
    # DFM: teach every reply block of an example per step (noised copies) instead of one
    # target block. The shipped nano used it from step 0; the CPU-trained one before it
    # switched to it at step 1750: with one target block, short answers (one word: the
    # layout block) were taught in only 15% of their examples.
    all_blocks: bool = False
    all_blocks_from: int = 1750
    # every example weighs the same in the DFM (or next-token) loss, instead of every
    # variable: an image reply holds 256 variables and a one-word answer 16, so by variable
    # the text tasks that read images and speech get under a tenth of the gradient
    per_example_loss: bool = False
    # image / audio reply blocks at t = u^p (p > 1: more of them near pure noise, where the
    # prompt is all there is to go on; see dfm_objective)
    code_time_power: float = 1.0
    # task weights that replace every stage's mixture (None: the stages' own, see
    # nextomni/data/mixture.py), e.g. {"t2i": 1} to train one task alone
    mix: dict[str, float] | None = None
    # every batch of one reply modality (text, image or speech; `mixture.one_modality`):
    # even lengths, so less padding, and one kind of head per step; each modality then gets
    # its weight's share of the steps rather than of the examples
    one_modality: bool = False
    tokenizers: Path | None = None  # where the tokenizers are (default: --init-from, --out)
    # warm start: begin from this checkpoint's weights (its shape, not the one above) with a
    # fresh optimizer and schedule, e.g. to train the shipped model further
    init_from: Path | None = None


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, cosine to 10% over the whole run (all stages)."""
    if step < warmup:
        return peak * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))


def drop_condition(ex: Example) -> Example:
    """The unconditional version of a generation example (classifier-free guidance)."""
    return Example(ex.task, [Turn("user", [text_part(SPECIAL_TOKENS[NULL])]), ex.turns[-1]],
                   ex.answer)


def silence_code(audio_tok: AudioTokenizer) -> tuple[int, ...]:
    codes = audio_tok.encode(np.zeros(16_000, np.float32))
    return tuple(int(c) for c in torch.mode(codes, dim=0).values)


def build_model(cfg: OmniTrainConfig, tok: Tokenizers) -> OmniModel:
    config = OmniConfig.for_tokenizers(
        tok.text, tok.image, tok.audio, silence=silence_code(tok.audio),
        hidden_size=cfg.hidden_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
        num_kv_heads=cfg.num_kv_heads, intermediate_size=cfg.intermediate_size,
        block_size=cfg.block_size, causal=cfg.causal)
    model = OmniModel(config)
    with torch.no_grad():  # frozen metric spaces / projector inputs from the tokenizers
        model.image_codebook.copy_(tok.image.vq.codebook)
        model.audio_codebook.copy_(tok.audio.vq.codebook)
        emb = tok.image.caption_encoder.emb.weight  # text metric: the caption embedding
        model.text_metric.copy_(emb[:, : config.text_metric_dim])
    return model


# --------------------------------------------------------------------------- batches

@dataclass
class Inputs:
    """One step's data, prepared outside the model (CPU work: rendering, speech, tokenizing)."""

    dfm: Batch              # response-target sequences of the stage's tasks
    pairs: Batch            # 2n embedding sequences: item, description, item, ...
    images: torch.Tensor    # [b, 3, S, S] for the image decoder's reconstruction
    mels: torch.Tensor      # [b, n_mels, T] for the audio decoder's reconstruction
    frames: torch.Tensor    # [b] valid mel frames

    def to(self, device) -> "Inputs":
        return Inputs(self.dfm.to(device), self.pairs.to(device), self.images.to(device),
                      self.mels.to(device), self.frames.to(device))


def dfm_batch(fmt: ChatFormatter, stage: str, rng, cfg: OmniTrainConfig) -> Batch:
    """Examples of the stage until the padded batch would exceed `batch_tokens` (so long
    multi-turn examples come a few at a time and short ones many, with little padding)."""
    seqs: list = []
    longest = 0
    mix = one_modality(cfg.mix or STAGES[stage], rng) if cfg.one_modality else cfg.mix
    while len(seqs) < cfg.batch:
        ex = sample_tasks(stage, rng, 1, mix)[0]
        if cfg.causal:  # next-token targets over the whole reply; no guidance to learn
            s = fmt.encode_full(as_media(ex.turns))
        else:
            if ex.task in GENERATION_TASKS and rng.random() < cfg.cond_dropout:
                ex = drop_condition(ex)
            turns = as_media(ex.turns)
            s = fmt.encode_all(turns) if cfg.all_blocks else fmt.encode(turns, rng)
        if len(s) > cfg.max_len:
            continue
        if seqs and (len(seqs) + 1) * max(longest, len(s)) > cfg.batch_tokens:
            break
        seqs.append(s)
        longest = max(longest, len(s))
    return collate(seqs)


def pair_batch(fmt: ChatFormatter, rng, n: int) -> Batch:
    return collate([fmt.embedding_sequence(part_media(p)) for pair in sample_retrieval_pairs(rng, n)
                    for p in pair])


def mel_batch(tok: AudioTokenizer, rng, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from nextomni.data.corpus import spoken_sentences

    mels = [torch.from_numpy(tok.mel(speak(spoken_sentences(int(s))[int(rng.integers(5))],
                                           random_voice(rng))))
            for s in rng.integers(TRAIN_SEEDS.stop, size=n)]
    frames = torch.tensor([m.shape[1] for m in mels])
    c = tok.config
    silence = float((np.log(c.log_floor) - c.mel_mean) / c.mel_std)
    out = torch.full((n, c.n_mels, int(frames.max())), silence)
    for i, m in enumerate(mels):
        out[i, :, : m.shape[1]] = m
    return out, frames


def prepare_inputs(fmt: ChatFormatter, stage: str, rng, cfg: OmniTrainConfig) -> Inputs:
    scenes = [random_scene(int(s)) for s in rng.integers(TRAIN_SEEDS.stop, size=8)]
    images = fmt.tok.image.to_tensor(np.stack([render(s) for s in scenes])).cpu()
    mels, frames = mel_batch(fmt.tok.audio, rng, 2)
    return Inputs(dfm_batch(fmt, stage, rng, cfg), pair_batch(fmt, rng, cfg.retrieval_pairs),
                  images, mels, frames)


class InputStream(torch.utils.data.IterableDataset):
    """(step, inputs) from `start` on, made in worker processes while the model trains."""

    def __init__(self, fmt: ChatFormatter, cfg: OmniTrainConfig, start: int, total: int,
                 process: int):
        self.fmt, self.cfg, self.start, self.total, self.process = fmt, cfg, start, total, process

    def __iter__(self):
        """Worker w of W makes steps start + w, start + w + W, ...; the loader takes the
        workers' outputs round-robin, so the steps arrive in order and none twice."""
        one_thread()
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        seed = [self.cfg.seed, self.process, self.start] + ([worker] if workers > 1 else [])
        rng = np.random.default_rng(seed)
        for step in range(self.start + worker, self.total, workers):
            cfg = self.cfg
            if not cfg.all_blocks and step >= cfg.all_blocks_from:
                cfg = replace(cfg, all_blocks=True)
            yield step, prepare_inputs(self.fmt, stage_of(step, cfg), rng, cfg)


def one_thread() -> None:
    """Every library of the data side on one thread: a worker is one of many processes, and
    torch, OpenCV and the BLAS under numpy / librosa otherwise each start a pool per core."""
    import cv2
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    threadpool_limits(1)


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


class Objective(nn.Module):
    """Every trainable part behind one forward, so data-parallel wrappers see all of it:
    the omni model, and the tokenizers' decoders (their encoders and codebooks are frozen,
    so the codes the model learns on do not move)."""

    def __init__(self, model: OmniModel, image_tok: ImageTokenizer, audio_tok: AudioTokenizer,
                 cfg: OmniTrainConfig):
        super().__init__()
        self.model, self.image_tok, self.audio_tok, self.cfg = model, image_tok, audio_tok, cfg
        for tok in (image_tok, audio_tok):
            tok.requires_grad_(False)
            if not cfg.causal:  # the baseline shares the DFM model's tokenizers unchanged
                tok.decoder.requires_grad_(True)
        self.paths = model.paths()

    def placed(self, device) -> "Objective":
        """Call once the weights are on `device`: the metric paths follow them, and each RNN
        weight gets its own storage (see `unshare_rnn_weights`)."""
        unshare_rnn_weights(self)
        self.paths = [p.to(device) for p in self.paths]
        return self

    def forward(self, x: Inputs) -> dict[str, torch.Tensor]:
        if self.cfg.causal:
            dfm = ar_objective(self.model, x.dfm, per_example=self.cfg.per_example_loss)
            img = aud = torch.zeros((), device=dfm.device)
        else:
            dfm = dfm_objective(self.model, x.dfm, self.paths,
                                per_example=self.cfg.per_example_loss,
                                code_time_power=self.cfg.code_time_power)
            img = self.image_reconstruction(x.images)
            aud = self.audio_reconstruction(x.mels, x.frames)
        ret = self.retrieval(x.pairs)
        c = self.cfg
        loss = dfm + c.w_retrieval * ret + c.w_image_rec * img + c.w_audio_rec * aud
        return {"loss": loss, "dfm": dfm, "retrieval": ret, "image_rec": img, "audio_rec": aud}

    def retrieval(self, pairs: Batch) -> torch.Tensor:
        """InfoNCE between the unified representations of (item, description) pairs."""
        h = self.model(pairs.ids, pairs.kind, pairs.mpos, pairs.attention_mask,
                       segment=pairs.segment).last_hidden_state
        emb = self.model.unified_embedding(h.float(), pairs.attention_mask.sum(1) - 1)
        emb = emb.reshape(-1, 2, emb.shape[-1])
        logits = emb[:, 0] @ emb[:, 1].T / 0.05
        target = torch.arange(len(emb), device=emb.device)
        return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))

    def image_reconstruction(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            q = self.image_tok.vq.snap(self.image_tok.latents(x))
        recon = self.image_tok.decode_vectors(q).float()
        return F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)

    def audio_reconstruction(self, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            q = self.audio_tok.vq.snap(self.audio_tok.latents(mel))
        recon = self.audio_tok.decode_vectors(q)[..., : mel.shape[-1]].float()
        mask = (torch.arange(mel.shape[-1], device=mel.device)[None] < frames[:, None])[:, None]
        return ((recon - mel) ** 2 * mask).sum() / (mask.sum() * mel.shape[1])


def build_objective(cfg: OmniTrainConfig, tok: Tokenizers):
    """A model (fresh, or `cfg.init_from`'s) behind its training objective, what of it
    trains, and the optimizer."""
    model = build_model(cfg, tok) if cfg.init_from is None else warm_start(cfg, tok)
    objective = Objective(model, tok.image, tok.audio, cfg)
    trainable = [p for p in objective.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, cfg.lr, weight_decay=0.01, betas=(0.9, 0.95))
    return objective, trainable, opt


def warm_start(cfg: OmniTrainConfig, tok: Tokenizers | None = None) -> OmniModel:
    """The checkpoint at `cfg.init_from`, in fp32, to train on with this run's objective.

    With `tok` (the run's tokenizers, e.g. `--tokenizers` naming a new image tokenizer), the
    model's frozen copies of the image and audio codebooks are taken from them, so its
    projectors and metric paths read the codes the run will feed it; the projectors and code
    heads then relearn from their old weights. The text metric stays the checkpoint's: it
    defines the text path the model was trained on."""
    model = from_pretrained(cfg.init_from, dtype=torch.float32)
    if model.config.causal != cfg.causal:
        kind = "causal (autoregressive)" if model.config.causal else "DFM"
        raise ValueError(f"{cfg.init_from} holds a {kind} model; "
                         f"{'add' if model.config.causal else 'drop'} --causal "
                         "or start from a matching checkpoint")
    if tok is not None:
        with torch.no_grad():
            for name, codebook in (("image", tok.image.vq.codebook),
                                   ("audio", tok.audio.vq.codebook)):
                mine = getattr(model, f"{name}_codebook")
                if mine.shape != codebook.shape:
                    raise ValueError(f"the {name} tokenizer's codebook is {tuple(codebook.shape)}"
                                     f" but {cfg.init_from} was trained on {tuple(mine.shape)}")
                if not torch.allclose(mine, codebook.float(), atol=1e-2):
                    log.info("%s codes differ from %s's: taking the tokenizer's", name,
                             cfg.init_from)
                mine.copy_(codebook)
    return model


def tokenizer_folder(cfg: OmniTrainConfig) -> Path:
    return cfg.tokenizers or cfg.init_from or cfg.out


# --------------------------------------------------------------------------- loop

def stage_of(step: int, cfg: OmniTrainConfig) -> str:
    bounds = np.cumsum([getattr(cfg, f"{s}_steps") for s in cfg.stages])
    return cfg.stages[int(np.searchsorted(bounds, step, side="right"))]


def train(cfg: OmniTrainConfig) -> OmniModel:
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    acc = Accelerator(mixed_precision="bf16" if cfg.bf16 else "no")
    set_seed(cfg.seed)
    tok = load_tokenizers(tokenizer_folder(cfg))
    objective, trainable, opt = build_objective(cfg, tok)
    model = objective.model
    wrapped, opt = acc.prepare(objective, opt)
    objective.placed(acc.device)
    # the data side gets its own CPU copy of the tokenizers: the model's copies live on the
    # accelerator (and their decoders train), and forked workers must not touch CUDA
    fmt = ChatFormatter(model.config, load_tokenizers(tokenizer_folder(cfg)))
    total = sum(getattr(cfg, f"{s}_steps") for s in cfg.stages)
    state_dir = cfg.work / "state"
    start = _resume(acc, state_dir)
    stream = torch.utils.data.DataLoader(
        InputStream(fmt, cfg, start, total, acc.process_index), batch_size=None,
        num_workers=cfg.data_workers, prefetch_factor=2 if cfg.data_workers else None)
    logfile = cfg.work / "log.jsonl"
    bar = tqdm(stream, initial=start, total=total, desc="omni",
               disable=not acc.is_main_process, dynamic_ncols=True)
    wrapped.train()
    clock, began, finished = StepClock(), time.monotonic(), start >= total
    for step, inputs in bar:
        clock.ready()
        stage = stage_of(step, cfg)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total, cfg.lr, cfg.warmup)
        inputs = inputs.to(acc.device)
        with acc.autocast():
            parts = wrapped(inputs)
        opt.zero_grad(set_to_none=True)
        acc.backward(parts["loss"])
        acc.clip_grad_norm_(trainable, 1.0)
        opt.step()
        values = {k: round(v.item(), 4) for k, v in parts.items()}
        clock.done()
        bar.set_postfix(stage=stage, dfm=values["dfm"], ret=values["retrieval"],
                        wait=f"{clock.waiting:.0%}")
        if acc.is_main_process and step % 25 == 0:
            _log(logfile, {"step": step, "stage": stage, **values, "len": inputs.dfm.ids.shape[1],
                           "lr": opt.param_groups[0]["lr"], **clock.window(),
                           "time": time.time()})
        finished = step + 1 == total
        out_of_time = cfg.max_minutes is not None and \
            time.monotonic() - began >= 60 * cfg.max_minutes
        if cfg.max_minutes is not None and acc.num_processes > 1:  # all stop at one step
            flag = torch.tensor(float(out_of_time), device=acc.device)
            out_of_time = bool(acc.reduce(flag, reduction="sum") > 0)
        if (step + 1) % cfg.save_every == 0 or finished or out_of_time:
            _save_state(acc, state_dir, step + 1)
        if out_of_time and not finished:
            log.info("stopped after %.1f min at step %d of %d (state saved); rerun the same "
                     "command to continue", cfg.max_minutes, step + 1, total)
            break
    bar.close()
    acc.wait_for_everyone()
    if finished and acc.is_main_process:
        export(model, tok, cfg.out, tokenizer_folder(cfg) if cfg.causal else None)
    return model


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


def _resume(acc, state_dir: Path) -> int:
    meta = state_dir / "step.json"
    if not meta.exists():
        return 0
    acc.load_state(str(state_dir))
    step = json.loads(meta.read_text())["step"]
    log.info("resuming at step %d", step)
    return step


def unshare_rnn_weights(module: nn.Module) -> None:
    """Each RNN weight in its own storage. Moved to a GPU, an RNN (the audio tokenizer's
    recognition probe, frozen here) packs its weights into one cuDNN buffer; the saved state
    then keeps one of them and a resume refuses to load. Training never runs that RNN, so
    the packing buys nothing."""
    for m in module.modules():
        if isinstance(m, nn.RNNBase):
            for p in m.parameters(recurse=False):
                p.data = p.data.clone()


def _save_state(acc, state_dir: Path, step: int) -> None:
    acc.save_state(str(state_dir))
    if acc.is_main_process:
        (state_dir / "step.json").write_text(json.dumps({"step": step}))


def _log(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def parse_args(argv=None) -> OmniTrainConfig:
    d = OmniTrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--work", type=Path, default=d.work)
    p.add_argument("--stages", default=",".join(d.stages))
    for name in ("pt_steps", "cpt_steps", "sft_steps", "batch", "batch_tokens", "seed",
                 "hidden_size", "num_layers", "block_size", "save_every", "data_workers",
                 "retrieval_pairs", "warmup"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--code-time-power", type=float, default=d.code_time_power,
                   help="DFM: draw image / audio reply blocks at t = u^P (P > 1: nearer noise)")
    p.add_argument("--mix", default=None,
                   help="task weights replacing every stage's mixture, e.g. t2i=3,caption=1")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads of the training step (default: one per core)")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="save and stop after this long; rerun the command to continue")
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--causal", action="store_true",
                   help="train the autoregressive baseline (next-token, causal attention)")
    p.add_argument("--all-blocks", action="store_true",
                   help="teach every reply block per example (noised copies), not one")
    p.add_argument("--all-blocks-from", type=int, default=d.all_blocks_from,
                   help="switch to --all-blocks from this step on")
    p.add_argument("--per-example-loss", action="store_true",
                   help="weigh every example the same in the loss (default: every variable)")
    p.add_argument("--one-modality", action="store_true",
                   help="every batch's replies of one modality (text, image or speech)")
    p.add_argument("--tokenizers", type=Path, default=None,
                   help="read the tokenizers here (default --init-from, else --out); the "
                   "baseline links to them")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from this checkpoint's weights (fresh optimizer and schedule)")
    a = p.parse_args(argv)
    stages = tuple(s.strip() for s in a.stages.split(",") if s.strip())
    bad = [s for s in stages if s not in ("pt", "cpt", "sft")]
    if bad:
        p.error(f"unknown stage(s) {bad}; choose from pt, cpt, sft")
    if a.code_time_power <= 0:
        p.error("--code-time-power must be > 0")
    if a.threads is not None and a.threads < 1:
        p.error("--threads must be at least 1")
    try:
        mix = parse_mix(a.mix) if a.mix is not None else None
    except ValueError as e:
        p.error(str(e))
    return replace(d, out=a.out, work=a.work, stages=stages, pt_steps=a.pt_steps,
                   cpt_steps=a.cpt_steps, sft_steps=a.sft_steps, batch=a.batch,
                   batch_tokens=a.batch_tokens, data_workers=a.data_workers, seed=a.seed,
                   hidden_size=a.hidden_size, num_layers=a.num_layers, block_size=a.block_size,
                   save_every=a.save_every, lr=a.lr, bf16=not a.no_bf16, causal=a.causal,
                   tokenizers=a.tokenizers, all_blocks=a.all_blocks,
                   all_blocks_from=a.all_blocks_from, max_minutes=a.max_minutes,
                   per_example_loss=a.per_example_loss, retrieval_pairs=a.retrieval_pairs,
                   warmup=a.warmup, init_from=a.init_from, threads=a.threads,
                   code_time_power=a.code_time_power, mix=mix, one_modality=a.one_modality)


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    train(parse_args(argv))


if __name__ == "__main__":
    main()
