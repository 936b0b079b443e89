"""The omni training pipeline end to end at a tiny size: tokenizers folder -> a few steps of
every stage -> exported checkpoint -> loaded -> evaluated by the real eval code."""

from dataclasses import replace

import torch

from nextomni.data.corpus import text_corpus
from nextomni.eval.omni import evaluate
from nextomni.model.loading import load_checkpoint
from nextomni.tokenizers import (
    AudioTokenizer, AudioTokenizerConfig, ImageTokenizer, ImageTokenizerConfig, TextTokenizer,
)
from nextomni.train.omni import OmniTrainConfig, lr_at, stage_of, train


def tiny_tokenizers(folder):
    text = TextTokenizer.train(text_corpus(range(200)))
    text.save_pretrained(folder)
    torch.manual_seed(0)
    ImageTokenizer(ImageTokenizerConfig(width=16, enc_blocks=1, dec_blocks=1, pixel_channels=4,
                                        codebook_size=16, code_dim=8,
                                        text_vocab_size=text.vocab_size)).save_pretrained(
        folder / "image_tokenizer")
    AudioTokenizer(AudioTokenizerConfig(channels=16, codebook_size=8, code_dim=4,
                                        text_vocab_size=text.vocab_size)).save_pretrained(
        folder / "audio_tokenizer")


def test_schedule_helpers():
    cfg = replace(OmniTrainConfig(), pt_steps=10, cpt_steps=20, sft_steps=5)
    assert [stage_of(s, cfg) for s in (0, 9, 10, 29, 30, 34)] == \
        ["pt", "pt", "cpt", "cpt", "sft", "sft"]
    assert lr_at(0, 100, 1.0, 10) == 0.1 and abs(lr_at(100, 100, 1.0, 10) - 0.1) < 1e-9


def test_tiny_pipeline_trains_exports_and_evaluates(tmp_path):
    out = tmp_path / "ckpt"
    tiny_tokenizers(out)
    cfg = replace(OmniTrainConfig(), out=out, work=tmp_path / "work", hidden_size=32,
                  num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64,
                  pt_steps=2, cpt_steps=2, sft_steps=2, batch=3, retrieval_pairs=2,
                  save_every=3, max_len=2000)
    train(cfg)
    assert (out / "config.json").exists() and (out / "backbone" / "config.json").exists()
    log = (cfg.work / "log.jsonl").read_text().splitlines()
    assert len(log) >= 1
    # resuming a finished run is a no-op that still exports
    train(cfg)
    model, fmt = load_checkpoint(out)
    assert model.config.hidden_size == 32 and model.config.image_codebook_size == 16
    result = evaluate(model, fmt, n=1, steps=2, tasks=["vqa", "t2i", "tts"])
    assert set(result) >= {"vqa_acc", "t2i_acc", "tts_wer", "tts_wer_probe", "retrieval_r1"}
    assert all(0 <= result[k] for k in ("vqa_acc", "t2i_acc", "retrieval_r1"))
