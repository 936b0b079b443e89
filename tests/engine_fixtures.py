"""A tiny, untrained checkpoint with the shipped tokenizers: the engine's real code path at
a size that runs in milliseconds."""

import shutil
from dataclasses import replace
from pathlib import Path

import torch

from nextomni.model.loading import load_tokenizers
from nextomni.train.config import OmniTrainConfig
from nextomni.train.objective import build_model
from nextomni.train.omni import export

NANO = Path(__file__).resolve().parents[1] / "checkpoints" / "nano"


def tiny_checkpoint(folder: Path, causal: bool = False) -> Path:
    tok = load_tokenizers(NANO)
    torch.manual_seed(0)
    cfg = replace(OmniTrainConfig(), hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1,
                  intermediate_size=64)
    model = build_model(cfg, tok)
    if causal:
        model.config = replace(model.config, causal=True)
    export(model, tok, folder)
    shutil.copy(NANO / "tokenizer.json", folder / "tokenizer.json")
    return folder
