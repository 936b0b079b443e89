"""Load a whole checkpoint folder: the model and the tokenizers that feed it."""

from __future__ import annotations

import torch

from nextomni.model.formatting import ChatFormatter, Tokenizers
from nextomni.model.modeling import OmniModel, from_pretrained, resolve


def load_tokenizers(folder) -> Tokenizers:
    from nextomni.tokenizers import AudioTokenizer, ImageTokenizer, TextTokenizer

    return Tokenizers(TextTokenizer.from_pretrained(folder),
                      ImageTokenizer.from_pretrained(folder / "image_tokenizer"),
                      AudioTokenizer.from_pretrained(folder / "audio_tokenizer"))


def load_checkpoint(path_or_hub_id, device="cpu", quantization=None,
                    dtype: torch.dtype | None = torch.float32) -> tuple[OmniModel, ChatFormatter]:
    """(model in eval mode, formatter with the checkpoint's tokenizers)."""
    folder = resolve(str(path_or_hub_id))
    model = from_pretrained(folder, device=device, quantization=quantization, dtype=dtype)
    return model, ChatFormatter(model.config, load_tokenizers(folder))
