"""OmniConfig: the backbone's shape plus the vocabularies of every modality.

The backbone is a transformers Qwen2 model; `backbone_config()` builds its config, so a
Qwen2.5-7B-shaped OmniConfig loads through exactly the same code as the nano one.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

# Kinds of sequence positions. A text position holds one token; an image or audio position
# holds G sub-codes and enters the backbone through a projector of its code vectors.
TEXT, IMAGE, AUDIO = 0, 1, 2
KINDS = ("text", "image", "audio")


@dataclass(frozen=True)
class OmniConfig:
    # backbone
    hidden_size: int = 256
    num_layers: int = 6
    num_heads: int = 8
    num_kv_heads: int = 4
    intermediate_size: int = 1024
    max_positions: int = 2048
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-6
    causal: bool = False  # True only for the autoregressive baseline (token-causal mask)
    # vocabularies
    text_vocab_size: int = 560
    image_groups: int = 4
    image_codebook_size: int = 256
    image_code_dim: int = 16
    image_grid: int = 8
    video_frames: int = 4
    video_grid: int = 4
    audio_groups: int = 2
    audio_codebook_size: int = 256
    audio_code_dim: int = 32
    audio_silence: tuple[int, ...] = (0, 0)  # the audio tokenizer's code for silence
    text_metric_dim: int = 128  # fixed embedding table that defines the text DFM metric
    # generation
    block_size: int = 16
    # positions of a reply's opening block, whose first token says what the reply is (the
    # first word, <|image_start|> or <|audio_start|>): 1, that token alone (the checkpoints
    # trained before this field), or up to `block_size`, the token opening a block of text, so
    # a short answer is one block and the layout costs no forward pass of its own. The causal
    # baseline reads token by token and keeps 1.
    opening_block: int = 1
    path_c: float = 3.0
    path_a: float = 0.9
    # the path of text replies: "metric" (metric-induced over `text_metric`, the published
    # default) or "masked" (a mixture path whose source is all <|null|>, a token no reply holds)
    text_path: str = "metric"

    @property
    def image_positions(self) -> int:
        return self.image_grid ** 2

    @property
    def max_groups(self) -> int:
        return max(self.image_groups, self.audio_groups)

    @property
    def modality_positions(self) -> int:
        """Rows of the learned position table shared by image cells, video cells and audio."""
        return max(self.image_positions, self.video_frames * self.video_grid ** 2, 1024)

    def space_count(self) -> int:
        """DFM vocabularies: text, each image sub-codebook, each audio sub-codebook."""
        return 1 + self.image_groups + self.audio_groups

    def space_of(self, kind: int, group: int) -> int:
        if kind == TEXT:
            return 0
        if kind == IMAGE:
            return 1 + group
        if kind == AUDIO:
            return 1 + self.image_groups + group
        raise ValueError(f"unknown position kind {kind!r}")

    @classmethod
    def for_tokenizers(cls, text, image, audio, silence: tuple[int, ...] | None = None,
                       **backbone) -> "OmniConfig":
        """A config whose vocabularies are those of the given tokenizers."""
        ic, ac = image.config, audio.config
        if silence is not None and len(silence) != ac.groups:
            raise ValueError(f"the silence code needs {ac.groups} sub-codes, got {len(silence)}")
        return cls(text_vocab_size=text.vocab_size, image_groups=ic.groups,
                   image_codebook_size=ic.codebook_size, image_code_dim=ic.code_dim,
                   image_grid=ic.grid, audio_groups=ac.groups,
                   audio_codebook_size=ac.codebook_size, audio_code_dim=ac.code_dim,
                   audio_silence=tuple(silence) if silence is not None else (0,) * ac.groups,
                   **backbone)

    def backbone_config(self):
        from transformers import Qwen2Config

        cfg = Qwen2Config(
            vocab_size=self.text_vocab_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads, num_key_value_heads=self.num_kv_heads,
            max_position_embeddings=self.max_positions, rope_theta=self.rope_theta,
            rms_norm_eps=self.rms_norm_eps, tie_word_embeddings=False)
        cfg.is_causal = False  # attention is given as an explicit block-causal mask
        return cfg

    def to_json(self) -> str:
        return json.dumps({"model_type": "nextomni", **dataclasses.asdict(self)}, indent=2)

    @classmethod
    def from_json_file(cls, path) -> "OmniConfig":
        raw = json.loads(Path(path).read_text())
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(raw) - fields - {"model_type"}
        if unknown:
            raise ValueError(f"{path}: unknown config fields {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()
                      if k in fields})
