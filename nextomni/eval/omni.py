"""Held-out evaluation of every task, scored exactly.

Images are judged by the scene detector, speech by the model's own recognition and, apart,
by the audio tokenizer's alignment probe, text by exact match / attribute accuracy / WER.
"""

from __future__ import annotations

import numpy as np
import torch
from tqdm import tqdm

from nextomni.data.splits import heldout
from nextomni.chat import Part, Turn, text as text_part
from nextomni.data.augment import add_noise
from nextomni.data.media import as_media, part_media
from nextomni.data.tasks import REPLY_MODALITY, make_example
from nextomni.data.text import canonical_caption
from nextomni.data.world import random_scene
from nextomni.eval.metrics import wer, words
from nextomni.eval.parse import (
    attribute_breakdown, caption_attribute_accuracy, scene_attribute_accuracy,
    scene_attribute_breakdown,
)
from nextomni.eval.scene_detector import detect
from nextomni.model.embedding import embed_parts
from nextomni.model.generate import DecodeOptions, generate
from nextomni.tokenizers.special import NULL, SPECIAL_TOKENS

# The reply each task expects, in the eval's order; the model decides the layout itself, and
# a wrong one scores 0.
LAYOUT = REPLY_MODALITY
KEYS = ("caption_acc", "vqa_acc", "asr_wer", "t2i_acc", "tts_wer", "video_acc",
        "retrieval_r1", "edit_acc")


class Evaluator:
    def __init__(self, model, fmt, options: DecodeOptions = DecodeOptions(), seed: int = 0):
        self.model, self.fmt, self.options, self.seed = model, fmt, options, seed
        self.latencies: list[float] = []  # seconds per task reply (not the scoring passes)
        self.cpu_seconds: list[float] = []  # the decoding thread's CPU seconds per reply
        self.progress = True  # a bar per task (off in worker processes)
        # guidance's unconditional prompt, the one condition dropout trained
        self.uncond = fmt.prompt([Turn("user", [text_part(SPECIAL_TOKENS[NULL])])]) \
            if options.guided and not model.config.causal else None

    def respond(self, turns: list[Turn], i: int, snr_db: float | None = None):
        """The reply to `turns`; with `snr_db`, the user's speech heard through noise that
        far below it (seeded by the item)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        media = as_media(turns)
        if snr_db is not None:
            rng = np.random.default_rng([self.seed, i, 29])
            media = [Turn(t.role, [Part("audio", add_noise(p.value, snr_db, rng))
                                   if t.role == "user" and p.kind == "audio" else p
                                   for p in t.parts]) for t in media]
        return generate(self.model, self.fmt.prompt(media), self.options, g,
                        uncond_prompt=self.uncond)

    def text(self, ids) -> str:
        return self.fmt.tok.text.decode(ids)

    def image_scene(self, codes):
        return detect(self.fmt.tok.image.decode(codes[None])[0])

    def hear(self, codes, i: int) -> tuple[str, str]:
        """(the model's own transcript, the alignment probe's) of generated speech, both read
        from the waveform a listener would get."""
        wav = self.fmt.tok.audio.decode(codes)
        probe = self.text(self.fmt.tok.audio.recognize(self.fmt.tok.audio.encode(wav)))
        turns = [Turn("user", [Part("audio", wav), text_part("transcribe this.")])]
        own = self.text(self.respond(turns, i).text_ids)
        return own, probe

    def task(self, name: str, n: int, family: str = "train", snr_db: float | None = None) -> dict:
        refs, outs, probes, hits, attrs = [], [], [], [], []
        by_attr: dict[str, np.ndarray] = {}  # image replies: (correct, total) per attribute
        kind_ok = []  # the reply was of the asked kind (text, image or speech)
        items = tqdm(heldout(n), desc=name, leave=False, disable=not self.progress)
        for i, seed in enumerate(items):
            ex = make_example(name, seed, family)
            out = self.respond(ex.turns[:-1], i, snr_db)
            self.latencies.append(out.stats.latency_s)
            self.cpu_seconds.append(out.stats.cpu_s)
            wrong_layout = out.layout != LAYOUT[name]
            kind_ok.append(not wrong_layout)
            if LAYOUT[name] == "image":
                if wrong_layout:  # nothing drawn: its free cells count as left empty
                    hits.append(False), attrs.append(0.0)
                    by = attribute_breakdown(ex.answer, [], None)
                else:
                    drawn = self.image_scene(out.image_codes)
                    c, t = scene_attribute_accuracy(ex.answer, drawn)
                    hits.append(drawn == ex.answer), attrs.append(c / t)
                    by = scene_attribute_breakdown(ex.answer, drawn)
                for k, ct in by.items():
                    by_attr[k] = by_attr.get(k, np.zeros(2)) + ct
            elif LAYOUT[name] == "audio":
                own, probe = ("", "") if wrong_layout else self.hear(out.audio_codes, i)
                refs.append(ex.answer), outs.append(own), probes.append(probe)
            elif name == "caption":
                scene = next(p.value for p in ex.turns[0].parts if p.kind == "image")
                c, t = caption_attribute_accuracy(scene, self.text(out.text_ids))
                hits.append(c / t)
            elif name == "asr":
                refs.append(ex.answer), outs.append(self.text(out.text_ids))
            else:
                hits.append(words(self.text(out.text_ids)) == words(ex.answer))
        if refs:
            res = {"wer": wer(refs, outs), "kind": float(np.mean(kind_ok))}
            if probes:
                res["wer_probe"] = wer(refs, probes)
            return res
        res = {"acc": float(np.mean(hits)), "kind": float(np.mean(kind_ok))}
        if attrs:  # partial credit: what of the asked scene an image gets right
            res["attr"] = float(np.mean(attrs))
            res["attr_by"] = {k: float(c / t) if t else 1.0 for k, (c, t) in by_attr.items()}
        return res

    def embed(self, parts: list[Part], batch: int = 32) -> torch.Tensor:
        return embed_parts(self.model, self.fmt, [part_media(p) for p in parts], batch)

    def retrieval(self, n: int) -> float:
        """Text -> image R@1 over a gallery of n held-out scenes."""
        scenes = [random_scene(s) for s in heldout(n)]
        images = self.embed([Part("image", s) for s in scenes])
        texts = self.embed([text_part(canonical_caption(s)) for s in scenes])
        return float((texts @ images.T).argmax(1).eq(torch.arange(n)).float().mean())


def split_task(spec: str) -> tuple[str, str, float | None]:
    """"vqa" -> ("vqa", "train", None); "vqa:heldout" -> the task worded from the phrasing
    family training never saw (`data/phrasing.py`); "asr@20" -> its user speech heard
    through noise 20 dB below it."""
    spec, _, snr = spec.partition("@")
    name, _, family = spec.partition(":")
    return name, family or "train", float(snr) if snr else None


def numbers_name(spec: str) -> str:
    """The JSON prefix of a task spec: vqa, vqa_heldout, asr_20db, asr_heldout_20db."""
    task, family, snr = split_task(spec)
    return "_".join([task] + ([family] if family != "train" else [])
                    + ([f"{snr:g}db"] if snr is not None else []))


def task_numbers(ev: Evaluator, spec: str, n: int) -> dict:
    """The JSON entries of one task: `<task>_acc` or `<task>_wer` and its companions; a
    held-out wording (`vqa:heldout`) reports as `vqa_heldout_acc` and so on."""
    task, family, snr = split_task(spec)
    r = ev.task(task, n, family, snr)
    name = numbers_name(spec)
    result: dict[str, float | dict[str, float]] = {f"{name}_kind": r["kind"]}
    if "acc" in r:
        result[f"{name}_acc"] = r["acc"]
        if "attr" in r:
            result[f"{name}_attr"] = r["attr"]
            result[f"{name}_attr_by"] = r["attr_by"]
    else:
        result[f"{name}_wer"] = r["wer"]
        if "wer_probe" in r:
            result[f"{name}_wer_probe"] = r["wer_probe"]
    return result


def evaluate(model, fmt, n: int = 200, steps: int = 16, tasks=None, seed: int = 0,
             guidance: float = 0.0, speech_guidance: float | None = None) -> dict:
    """One number per task; the issue's keys plus a few more (spoken VQA, audio->image,
    image->speech, the probe's view of generated speech, and for image replies the share of
    the asked scene's attributes drawn right, `<task>_attr`, scored like captions, and that
    score attribute by attribute, `<task>_attr_by`, counted over all items: see
    `parse.attribute_breakdown`), and the share of replies of the asked kind, `<task>_kind`.
    `guidance` is the classifier-free guidance scale of image and speech replies,
    `speech_guidance` that of speech replies where it differs (the app's default: 0)."""
    options = DecodeOptions(steps=steps, guidance=guidance, speech_guidance=speech_guidance)
    ev = Evaluator(model, fmt, options, seed)
    result: dict[str, float | dict[str, float]] = {}
    for name in tasks or list(LAYOUT):
        result.update(task_numbers(ev, name, n))
    result["retrieval_r1"] = ev.retrieval(n)
    result["n"] = n
    result["steps"] = steps
    return result
