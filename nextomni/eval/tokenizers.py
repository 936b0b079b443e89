"""Held-out quality of the tokenizers (the numbers the README reports).

    python -m nextomni.eval.tokenizers --checkpoint checkpoints/nano [--images 500] [--speech 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from nextomni.data.corpus import spoken_sentences
from nextomni.data.speech import random_voice, speak
from nextomni.data.splits import heldout
from nextomni.data.world import GRID, random_scene, random_shape, render
from nextomni.eval.metrics import psnr, report, wer
from nextomni.eval.scene_detector import detect


@torch.no_grad()
def image_metrics(tok, n: int = 500, batch: int = 100) -> dict:
    """Scene exactness after a round trip, PSNR, codebook usage and code spill (see
    `code_spill`) on held-out scenes."""
    hits, psnrs, codes_all = 0, [], []
    seeds = list(heldout(n))
    for i in range(0, n, batch):
        scenes = [random_scene(s) for s in seeds[i:i + batch]]
        images = np.stack([render(s) for s in scenes])
        codes = tok.encode(images)
        recon = tok.decode(codes)
        hits += sum(detect(r) == s for r, s in zip(recon, scenes))
        psnrs += [psnr(a, b) for a, b in zip(images, recon)]
        codes_all.append(codes)
    usage = tok.vq.usage(torch.cat(codes_all)).tolist()
    return {"image_scene_exact": hits / n, "image_psnr_db": float(np.mean(psnrs)),
            "image_codebook_usage": [round(u, 4) for u in usage],
            "image_code_spill": code_spill(tok, min(n, 200)), "image_n": n}


@torch.no_grad()
def code_spill(tok, n: int = 200) -> float:
    """How far codes reach: draw one more shape into a free cell of a held-out scene and
    count, among the grid positions whose patch lies at least one patch clear of that cell,
    the share whose codes change. 0 means codes are local (what a shape looks like is
    written where it is); near 1, every code depends on the whole picture."""
    changed, far = 0, 0
    side, grid = tok.config.image_size, tok.config.grid
    patch = side // grid
    rows, cols = np.divmod(np.arange(grid * grid), grid)
    for seed in heldout(n):
        rng = np.random.default_rng([seed, 21])
        scene = random_scene(seed)
        free = scene.free_cells()
        if not free:
            continue
        cell = free[int(rng.integers(len(free)))]
        more = scene.with_shapes(scene.shapes + (random_shape(rng, cell),))
        a, b = tok.encode(np.stack([render(scene), render(more)]))
        lo = [k * side / GRID - patch for k in cell]           # the cell's pixels, one patch
        hi = [(k + 1) * side / GRID + patch for k in cell]     # of margin around them
        clear = ~((rows * patch < hi[0]) & ((rows + 1) * patch > lo[0]) &
                  (cols * patch < hi[1]) & ((cols + 1) * patch > lo[1]))
        diff = (a != b).any(-1).cpu().numpy()
        changed += int(diff[clear].sum())
        far += int(clear.sum())
    return changed / max(far, 1)


def speech_items(n: int, offset: int = 0) -> list[tuple[str, np.ndarray]]:
    """n held-out (sentence, waveform) pairs: every kind of spoken sentence, varied voices."""
    items = []
    for k, seed in enumerate(heldout(n, offset)):
        sentences = spoken_sentences(seed)
        text = sentences[k % len(sentences)]
        items.append((text, speak(text, random_voice(np.random.default_rng([seed, 9])))))
    return items


@torch.no_grad()
def audio_metrics(tok, text_tok, n: int = 200, save_dir: Path | None = None) -> dict:
    """Word error rate of the alignment probe on original and on reconstructed speech, and
    the codes' spill: the share of an utterance's codes that change when more speech
    follows it (0 for codes that depend on their own stretch of sound only)."""
    refs, orig, recon = [], [], []
    changed, kept = 0, 0
    items = speech_items(n)
    for i, (text, wav) in enumerate(items):
        codes = tok.encode(wav)
        rewav = tok.decode(codes)
        # spill: the next utterance appended after a pause; the codes of this one should
        # not move (those of its last 0.25 s may: the encoder's window reaches over)
        longer = tok.encode(np.concatenate([wav, np.zeros(4000, np.float32),
                                            items[(i + 1) % n][1]]))
        head = max(0, len(codes) - int(0.25 * tok.config.positions_per_second))
        changed += int((codes[:head] != longer[:head]).any(-1).sum())
        kept += head
        refs.append(text)
        orig.append(text_tok.decode(tok.recognize(codes)))
        recon.append(text_tok.decode(tok.recognize(tok.encode(rewav))))
        if save_dir is not None and i < 4:
            from nextomni.media import save_audio

            save_dir.mkdir(parents=True, exist_ok=True)
            save_audio(save_dir / f"speech_{i}_original.wav", wav)
            save_audio(save_dir / f"speech_{i}_reconstructed.wav", rewav)
    return {"audio_wer_original": wer(refs, orig), "audio_wer_reconstructed": wer(refs, recon),
            "audio_code_spill": changed / max(kept, 1),
            "audio_n": n, "audio_positions_per_second": tok.config.positions_per_second}


def main(argv=None) -> None:
    from nextomni.tokenizers import AudioTokenizer, ImageTokenizer, TextTokenizer

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", type=Path, default=Path("checkpoints/nano"))
    p.add_argument("--images", type=int, default=500)
    p.add_argument("--speech", type=int, default=200)
    p.add_argument("--save-audio", type=Path, default=None,
                   help="write a few original / reconstructed WAVs here to listen to")
    p.add_argument("--json", type=Path, default=None)
    a = p.parse_args(argv)
    torch.manual_seed(0)
    text_tok = TextTokenizer.from_pretrained(a.checkpoint)
    result = {}
    if a.images:
        result.update(image_metrics(ImageTokenizer.from_pretrained(a.checkpoint / "image_tokenizer"),
                                    a.images))
    if a.speech:
        audio = AudioTokenizer.from_pretrained(a.checkpoint / "audio_tokenizer")
        result.update(audio_metrics(audio, text_tok, a.speech, a.save_audio))
    report(result, a.json)


if __name__ == "__main__":
    main()
