"""Warm up the tokenizers on OmniWorld: text BPE, then the image and audio VQ tokenizers.

    python -m nextomni.train.tokenizers --out checkpoints/nano [--only text,image,audio]
        [--image-steps N] [--audio-steps N] [--device cpu|cuda] [--work runs/tokenizers]
        [--local-image-codes]

Each part writes its folder under --out when it finishes (tokenizer.json, image_tokenizer/,
audio_tokenizer/). Training state is saved under --work every few hundred steps and a rerun
resumes from it. Progress bars on the console, metrics as JSON lines in --work/*.jsonl.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from nextomni.data.corpus import spoken_sentences, text_corpus
from nextomni.data.speech import random_voice, speak
from nextomni.data.splits import TRAIN_SEEDS
from nextomni.data.text import canonical_caption, region_phrase
from nextomni.data.world import GRID, random_scene, render
from nextomni.tokenizers import (
    AudioTokenizer, AudioTokenizerConfig, ImageTokenizer, ImageTokenizerConfig, TextTokenizer,
)
from nextomni.tokenizers.audio import log_mel
from nextomni.tokenizers.special import PAD

log = logging.getLogger("nextomni.train.tokenizers")


@dataclass(frozen=True)
class TrainConfig:
    out: Path = Path("checkpoints/nano")
    work: Path = Path("runs/tokenizers")
    device: str = "cpu"
    seed: int = 0
    text_seeds: int = 20_000
    text_vocab: int = 1024
    image_steps: int = 9000
    image_batch: int = 32
    image_lr: float = 2e-3
    image_local: bool = False  # local image codes (ImageTokenizerConfig.local_encoder)
    image_patch: int = 8  # pixels per grid position (16: a 4x4 grid, a quarter the positions)
    audio_steps: int = 3000
    audio_batch: int = 16
    audio_lr: float = 1.5e-3
    audio_utterances: int = 8000
    eval_every: int = 2000
    save_every: int = 250


def lr_at(step: int, total: int, peak: float, warmup: int = 200) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def autocast(device: str):
    """bf16 on a GPU; fp32 on a CPU, where without bf16 instructions (AVX2 only) a bf16
    matrix product takes many times as long as an fp32 one."""
    on_gpu = device.startswith("cuda")
    return torch.autocast(device_type="cuda" if on_gpu else "cpu", dtype=torch.bfloat16,
                          enabled=on_gpu)


def pad_tokens(seqs: list[list[int]], device) -> torch.Tensor:
    width = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), width), PAD, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device)


class Checkpointer:
    """Save / resume model + optimizer + step + numpy RNG under the work folder."""

    def __init__(self, path: Path):
        self.path = path

    def load(self, model, opt) -> tuple[int, dict | None]:
        if not self.path.exists():
            return 0, None
        state = torch.load(self.path, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        log.info("resuming %s at step %d", self.path.name, state["step"])
        return state["step"], state["rng"]

    def save(self, model, opt, step: int, rng: np.random.Generator) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "rng": rng.bit_generator.state}, tmp)
        tmp.replace(self.path)


def log_line(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# --------------------------------------------------------------------------- text

def train_text(cfg: TrainConfig) -> TextTokenizer:
    tok = TextTokenizer.train(text_corpus(range(cfg.text_seeds)), cfg.text_vocab)
    tok.save_pretrained(cfg.out)
    log.info("text tokenizer: %d tokens -> %s", tok.vocab_size, cfg.out / "tokenizer.json")
    return tok


# --------------------------------------------------------------------------- image

def clip_loss(a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE between matching rows of two unit-vector batches."""
    logits = scale.exp().clamp(max=100) * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def image_batch(rng: np.random.Generator, n: int, text_tok: TextTokenizer):
    """Images, caption token ids, and the region phrase ids of every cell (row-major)."""
    scenes = [random_scene(int(s)) for s in rng.integers(TRAIN_SEEDS.stop, size=n)]
    images = np.stack([render(s) for s in scenes])
    captions = [text_tok.encode(canonical_caption(s)) for s in scenes]
    regions = [text_tok.encode(region_phrase(s, (r, c))) for s in scenes
               for r in range(GRID) for c in range(GRID)]
    return images, captions, regions


def region_loss(model: ImageTokenizer, q: torch.Tensor, regions, device) -> torch.Tensor:
    """Each region's pooled codes must pick its own phrase among the batch's distinct ones."""
    keys = [tuple(r) for r in regions]
    distinct = sorted(set(keys))
    index = {k: i for i, k in enumerate(distinct)}
    target = torch.tensor([index[k] for k in keys], device=device)
    phrases = model.caption_encoder(pad_tokens([list(k) for k in distinct], device))
    cells = model.region_embeddings(q).reshape(-1, phrases.shape[1])
    return F.cross_entropy(model.logit_scale.exp().clamp(max=100) * cells @ phrases.T, target)


def train_image(cfg: TrainConfig, text_tok: TextTokenizer) -> ImageTokenizer:
    from nextomni.eval.tokenizers import image_metrics

    torch.manual_seed(cfg.seed)
    model = ImageTokenizer(ImageTokenizerConfig(text_vocab_size=text_tok.vocab_size,
                                                local_encoder=cfg.image_local,
                                                patch=cfg.image_patch)).to(cfg.device)

    def losses(rng) -> dict[str, torch.Tensor]:
        images, captions, regions = image_batch(rng, cfg.image_batch, text_tok)
        x = model.to_tensor(images)
        with autocast(cfg.device):
            recon, codes, q, commit = model(x)
        recon, q = recon.float(), q.float()
        rec = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)
        align = clip_loss(model.align_embedding(q),
                          model.caption_encoder(pad_tokens(captions, cfg.device)),
                          model.logit_scale)
        region = region_loss(model, q, regions, cfg.device)
        return {"loss": rec + 0.25 * commit + 0.1 * align + 0.5 * region, "rec": rec,
                "commit": commit, "align": align, "region": region}

    run_loop("image", model, cfg, cfg.image_steps, cfg.image_lr, cfg.seed, losses,
             lambda: image_metrics(model, n=200))
    model.save_pretrained(cfg.out / "image_tokenizer")
    return model


def run_loop(name: str, model, cfg: TrainConfig, steps: int, lr: float, seed: int,
             losses, evaluate) -> None:
    """The shared loop: lr schedule, step, clip, tqdm, JSON-lines log, periodic state and
    evaluation; resumes from the saved state."""
    opt = torch.optim.AdamW(model.parameters(), lr, weight_decay=0.0)
    ckpt = Checkpointer(cfg.work / f"{name}_state.pt")
    start, rng_state = ckpt.load(model, opt)
    rng = np.random.default_rng(seed)
    if rng_state:
        rng.bit_generator.state = rng_state
    logfile = cfg.work / f"{name}_log.jsonl"
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=f"{name} tokenizer",
               dynamic_ncols=True)
    model.train()
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, lr)
        parts = losses(rng)
        opt.zero_grad(set_to_none=True)
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        values = {k: round(v.item(), 5) for k, v in parts.items()}
        bar.set_postfix(values)
        if step % 50 == 0:
            log_line(logfile, {"step": step, **values, "time": time.time()})
        if (step + 1) % cfg.save_every == 0:
            ckpt.save(model, opt, step + 1, rng)
        if (step + 1) % cfg.eval_every == 0 or step + 1 == steps:
            model.eval()
            metrics = evaluate()
            model.train()
            log_line(logfile, {"step": step + 1, **metrics})
            log.info("%s step %d: %s", name, step + 1, metrics)
    model.eval()


# --------------------------------------------------------------------------- audio

def _utterance(args) -> tuple[np.ndarray, list[int], str]:
    seed, k, tok_dir = args
    text = spoken_sentences(seed)[k]
    wav = speak(text, random_voice(np.random.default_rng([seed, k, 3])))
    mel = log_mel(wav, AudioTokenizerConfig()).astype(np.float16)
    return mel, _text_tokenizer(tok_dir).encode(text), text


@lru_cache(maxsize=1)
def _text_tokenizer(directory: str) -> TextTokenizer:
    return TextTokenizer.from_pretrained(directory)


def speech_cache(cfg: TrainConfig, workers: int = 2) -> list[tuple[np.ndarray, list[int]]]:
    """Spoken training sentences as (log-mel, token ids); built once, then read from disk."""
    path = cfg.work / f"speech_cache_{cfg.audio_utterances}.pt"
    if path.exists():
        return torch.load(path, weights_only=False)
    from multiprocessing import get_context

    per_seed = 5
    jobs = [(seed, k, str(cfg.out)) for seed in range(cfg.audio_utterances // per_seed + 1)
            for k in range(per_seed)][: cfg.audio_utterances]
    with get_context("spawn").Pool(workers) as pool:
        items = list(tqdm(pool.imap(_utterance, jobs, chunksize=32), total=len(jobs),
                          desc="speech data", dynamic_ncols=True))
    data = [(mel, ids) for mel, ids, _ in items]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return data


def audio_batch(rng, data, n: int, device, silence: float):
    picks = [data[int(i)] for i in rng.integers(len(data), size=n)]
    frames = [m.shape[1] for m, _ in picks]
    mel = torch.full((n, picks[0][0].shape[0], max(frames)), silence)
    for i, (m, _) in enumerate(picks):
        mel[i, :, :m.shape[1]] = torch.from_numpy(m.astype(np.float32))
    return mel.to(device), torch.tensor(frames), [ids for _, ids in picks]


def ctc(model: AudioTokenizer, q: torch.Tensor, frames: torch.Tensor, targets) -> torch.Tensor:
    logp = model.ctc_logits(q).float().transpose(0, 1)          # [P, B, V]
    k = model.config.frames_per_position
    in_len = torch.div(frames + k - 1, k, rounding_mode="floor").clamp(max=logp.shape[0])
    flat = torch.tensor([t for ids in targets for t in ids], dtype=torch.long)
    tgt_len = torch.tensor([len(ids) for ids in targets])
    return F.ctc_loss(logp, flat, in_len, tgt_len, blank=PAD, zero_infinity=True)


def masked_mse(recon: torch.Tensor, mel: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    recon = recon[..., : mel.shape[-1]]
    mask = (torch.arange(mel.shape[-1])[None] < frames[:, None]).to(mel.device)[:, None]
    return ((recon - mel) ** 2 * mask).sum() / (mask.sum() * mel.shape[1])


def train_audio(cfg: TrainConfig, text_tok: TextTokenizer) -> AudioTokenizer:
    from nextomni.eval.tokenizers import audio_metrics

    data = speech_cache(cfg)
    torch.manual_seed(cfg.seed)
    model = AudioTokenizer(AudioTokenizerConfig(text_vocab_size=text_tok.vocab_size)).to(cfg.device)
    c = model.config
    silence = float((np.log(c.log_floor) - c.mel_mean) / c.mel_std)

    def losses(rng) -> dict[str, torch.Tensor]:
        mel, frames, targets = audio_batch(rng, data, cfg.audio_batch, cfg.device, silence)
        with autocast(cfg.device):
            recon, codes, q, commit = model(mel)
            # re-encoding the reconstruction teaches the probe to read decoded speech too
            # (only the probe learns from that pass)
            with torch.no_grad():
                q_re = model.vq.snap(model.latents(recon[..., : mel.shape[-1]].float()))
        rec = masked_mse(recon.float(), mel, frames)
        align = 0.5 * (ctc(model, q.float(), frames, targets) +
                       ctc(model, q_re.float(), frames, targets))
        return {"loss": rec + 0.25 * commit + 0.1 * align, "rec": rec, "commit": commit,
                "ctc": align}

    run_loop("audio", model, cfg, cfg.audio_steps, cfg.audio_lr, cfg.seed + 1, losses,
             lambda: audio_metrics(model, text_tok, n=50))
    model.save_pretrained(cfg.out / "audio_tokenizer")
    return model


# --------------------------------------------------------------------------- main

def parse_args(argv=None) -> tuple[TrainConfig, set[str]]:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=d.out)
    p.add_argument("--work", type=Path, default=d.work)
    p.add_argument("--only", default="text,image,audio",
                   help="comma-separated parts to train (text, image, audio)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--image-steps", type=int, default=d.image_steps)
    p.add_argument("--audio-steps", type=int, default=d.audio_steps)
    p.add_argument("--audio-utterances", type=int, default=d.audio_utterances)
    p.add_argument("--eval-every", type=int, default=d.eval_every)
    p.add_argument("--local-image-codes", action="store_true",
                   help="image codes that depend on their own patch only (see "
                   "ImageTokenizerConfig.local_encoder)")
    p.add_argument("--image-patch", type=int, default=d.image_patch, choices=(4, 8, 16, 32),
                   help="pixels per image position along each axis (8: an 8x8 grid of a 64-"
                   "pixel picture; 16: 4x4, fewer positions per picture)")
    a = p.parse_args(argv)
    parts = {x.strip() for x in a.only.split(",") if x.strip()}
    unknown = parts - {"text", "image", "audio"}
    if unknown:
        p.error(f"unknown part(s) {sorted(unknown)}; choose from text, image, audio")
    cfg = replace(d, out=a.out, work=a.work, device=a.device, seed=a.seed,
                  image_steps=a.image_steps, audio_steps=a.audio_steps,
                  audio_utterances=a.audio_utterances, eval_every=a.eval_every,
                  image_local=a.local_image_codes, image_patch=a.image_patch)
    return cfg, parts


def main(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg, parts = parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg.out.mkdir(parents=True, exist_ok=True)
    text_tok = train_text(cfg) if "text" in parts else TextTokenizer.from_pretrained(cfg.out)
    if "image" in parts:
        train_image(cfg, text_tok)
    if "audio" in parts:
        train_audio(cfg, text_tok)


if __name__ == "__main__":
    main()
