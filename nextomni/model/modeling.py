"""OmniModel: a Qwen2 backbone (bidirectional) with modality projectors and output heads.

    text position   -> the backbone's token table  ... backbone ... -> LM head     (text logits)
    image position  -> sum over its G sub-code vectors through a projector -> code head
    audio position  -> the same with the audio codebooks                    -> code head

The code head predicts a position's G sub-codes one after another: sub-code g is read from the
backbone state plus the embeddings of sub-codes 0..g-1 (teacher-forced in training, sampled at
inference). The model carries frozen copies of the tokenizers' codebooks (projector inputs and
DFM metric spaces) and of a fixed text embedding table (the text DFM metric).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nextomni.model import fast_backbone
from nextomni.model.config import AUDIO, IMAGE, TEXT, OmniConfig
from nextomni.model.graphs import StaticCache
from nextomni.model.sequence import block_mask


class CodeHead(nn.Module):
    """Sub-codes of one modality, one after another: logits_g = MLP_g(h + sum_{j<g} E_j[c_j])."""

    def __init__(self, hidden: int, groups: int, codebook_size: int):
        super().__init__()
        self.groups = groups
        self.prev = nn.ModuleList(nn.Embedding(codebook_size, hidden) for _ in range(groups - 1))
        self.out = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
                          nn.Linear(hidden, codebook_size)) for _ in range(groups))

    def forward(self, h: Tensor, codes: Tensor) -> list[Tensor]:
        """Teacher-forced logits [M, K] per group, from states [M, H] and codes [M, G]."""
        logits, ctx = [], h
        for g in range(self.groups):
            logits.append(self.out[g](ctx))
            if g + 1 < self.groups:
                ctx = ctx + self.prev[g](codes[:, g])
        return logits

    def sample(self, h: Tensor, choose: Callable[[Tensor], Tensor],
               h_uncond: Tensor | None = None, scale: float = 0.0) -> Tensor:
        """Codes [M, G]: each sub-code chosen by `choose(logits)` given the ones before it.
        With `h_uncond` (states under the unconditional prompt) the logits are guided:
        (1 + scale) * cond - scale * uncond, and both contexts see the same chosen codes."""
        out, ctx, ctx_u = [], h, h_uncond
        for g in range(self.groups):
            logits = self.out[g](ctx)
            if ctx_u is not None and scale:
                logits = (1 + scale) * logits.float() - scale * self.out[g](ctx_u).float()
            c = choose(logits)
            out.append(c)
            if g + 1 < self.groups:
                ctx = ctx + self.prev[g](c)
                ctx_u = ctx_u + self.prev[g](c) if ctx_u is not None else None
        return torch.stack(out, -1)


class OmniModel(nn.Module):
    def __init__(self, config: OmniConfig, backbone: nn.Module | None = None):
        super().__init__()
        from transformers import Qwen2Model

        self.config = c = config
        self.backbone = backbone if backbone is not None else Qwen2Model._from_config(
            c.backbone_config(), attn_implementation="sdpa")
        h = c.hidden_size
        self.project_image = nn.Linear(c.image_groups * c.image_code_dim, h)
        self.project_audio = nn.Linear(c.audio_groups * c.audio_code_dim, h)
        self.modality_pos = nn.Embedding(c.modality_positions, h)
        self.kind_emb = nn.Embedding(3, h)
        self.lm_head = nn.Linear(h, c.text_vocab_size, bias=False)
        self.image_head = CodeHead(h, c.image_groups, c.image_codebook_size)
        self.audio_head = CodeHead(h, c.audio_groups, c.audio_codebook_size)
        self.retrieval_head = nn.Linear(h, h, bias=False)
        self.register_buffer("image_codebook",
                             F.normalize(torch.randn(c.image_groups, c.image_codebook_size,
                                                     c.image_code_dim), dim=-1))
        self.register_buffer("audio_codebook",
                             F.normalize(torch.randn(c.audio_groups, c.audio_codebook_size,
                                                     c.audio_code_dim), dim=-1))
        self.register_buffer("text_metric", torch.randn(c.text_vocab_size, c.text_metric_dim))

    # ------------------------------------------------------------------ inputs
    def _codes_vectors(self, codebook: Tensor, codes: Tensor) -> Tensor:
        """[M, G] codes -> [M, G * d] concatenated code vectors."""
        g = torch.arange(codebook.shape[0], device=codes.device)
        return codebook[g, codes[:, : codebook.shape[0]]].flatten(1)

    def embed(self, ids: Tensor, kind: Tensor, mpos: Tensor) -> Tensor:
        """Input embeddings [B, L, H] from ids [B, L, G], kind and mpos [B, L]."""
        embed_text = self.backbone.embed_tokens  # the backbone's own table (Qwen's, at scale)
        dtype = embed_text.weight.dtype
        out = torch.zeros(*kind.shape, self.config.hidden_size, device=ids.device, dtype=dtype)
        text, image, audio = kind == TEXT, kind == IMAGE, kind == AUDIO
        out[text] = embed_text(ids[text][:, 0])
        if image.any():
            v = self._codes_vectors(self.image_codebook, ids[image]).to(dtype)
            out[image] = self.project_image(v) + self.modality_pos(mpos[image])
        if audio.any():
            v = self._codes_vectors(self.audio_codebook, ids[audio]).to(dtype)
            out[audio] = self.project_audio(v) + self.modality_pos(mpos[audio])
        return out + self.kind_emb(kind)

    def forward(self, ids: Tensor, kind: Tensor, mpos: Tensor,
                attention_mask: Tensor | None = None, segment: Tensor | None = None,
                past_key_values=None, past_segment: Tensor | None = None,
                use_cache: bool = False, noisy: Tensor | None = None,
                position_ids: Tensor | None = None):
        """Backbone output (last_hidden_state [B, L, H], past_key_values).

        Attention is block-causal over `segment` [B, L] (all zeros when omitted: fully
        bidirectional); with a cache, `past_segment` gives the cached keys' segments. The
        autoregressive baseline (config.causal) makes every position its own segment."""
        b, length = kind.shape
        past = 0 if past_segment is None else past_segment.shape[1]
        if self.config.causal:
            segment = past + torch.arange(length, device=kind.device).expand(b, length)
        elif segment is None:
            segment = torch.zeros_like(kind)
        keys = segment if past_segment is None else torch.cat([past_segment, segment], 1)
        valid = torch.ones_like(keys, dtype=torch.bool)
        if attention_mask is not None:
            valid[:, past:] = attention_mask.bool()
        mask = block_mask(segment, keys, valid, noisy if past_segment is None else None)
        positions = position_ids if position_ids is not None else \
            past + torch.arange(length, device=kind.device).expand(b, length)
        if isinstance(past_key_values, StaticCache):  # preallocated: attend over its capacity
            past_key_values.begin(length)
            mask = past_key_values.pad_mask(mask)
        embeds = self.embed(ids, kind, mpos)
        if fast_backbone.can_run(self.backbone, mask):  # inference: the same, less overhead
            from transformers.modeling_outputs import BaseModelOutputWithPast

            return BaseModelOutputWithPast(last_hidden_state=fast_backbone.run(
                self.backbone, embeds, mask, positions, past_key_values if use_cache else None))
        out = self.backbone(inputs_embeds=embeds, attention_mask=mask,
                            position_ids=positions, past_key_values=past_key_values,
                            use_cache=use_cache, is_causal=False)
        if out.last_hidden_state.device != ids.device:  # a backbone sharded over devices
            out.last_hidden_state = out.last_hidden_state.to(ids.device)
        return out

    # ------------------------------------------------------------------ heads
    def head_logits(self, hidden: Tensor, ids: Tensor, kind: Tensor,
                    select: Tensor | None = None) -> list[Tensor]:
        """Teacher-forced logits per DFM space, variables in row-major order (the layout of
        `sequence.variable_spaces`): [text] + image groups + audio groups, each [M_k, K_k].
        `select` [B, L] restricts to some positions (default: all)."""
        keep = torch.ones_like(kind, dtype=torch.bool) if select is None else select
        text, image, audio = (keep & (kind == TEXT)), (keep & (kind == IMAGE)), \
            (keep & (kind == AUDIO))
        logits = [self.lm_head(hidden[text])]
        logits += self.image_head(hidden[image], ids[image])
        logits += self.audio_head(hidden[audio], ids[audio])
        return logits

    def unified_embedding(self, hidden: Tensor, at: Tensor) -> Tensor:
        """The unified representation: the state at `<eos>` (`at` [B] positions), projected
        and normalised, [B, H]."""
        h = hidden[torch.arange(hidden.shape[0], device=hidden.device), at]
        return F.normalize(self.retrieval_head(h), dim=-1)

    # ------------------------------------------------------------------ DFM paths
    def paths(self):
        """The DFM path of every space (shared by the loss and the sampler)."""
        from nextomni.dfm import MaskedPath, MetricPath
        from nextomni.tokenizers.special import NULL

        c = self.config
        codes = list(self.image_codebook) + list(self.audio_codebook)
        if c.text_path == "masked":
            text = MaskedPath(c.text_vocab_size, NULL)
        elif c.text_path == "metric":
            text = MetricPath(self.text_metric, c.path_c, c.path_a)
        else:
            raise ValueError(f"unknown text path {c.text_path!r}; expected metric or masked")
        return [text] + [MetricPath(t, c.path_c, c.path_a) for t in codes]

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # ------------------------------------------------------------------ save / load
    @classmethod
    def from_pretrained(cls, path_or_hub_id, **kwargs) -> "OmniModel":
        """The model of a checkpoint folder or hub id (`from_pretrained` below: device,
        quantization, dtype); `nextomni.model.loading.load_checkpoint` adds its tokenizers."""
        return from_pretrained(path_or_hub_id, **kwargs)

    def save_pretrained(self, directory, tokenizers=None) -> None:
        """An HF-style folder (`save_pretrained` below), whole with `tokenizers`."""
        save_pretrained(self, directory, tokenizers)


# ---------------------------------------------------------------------- save / load

CONFIG_FILE, WEIGHTS_FILE, BACKBONE_DIR = "config.json", "model.safetensors", "backbone"
QUANTIZATIONS = (None, "4bit", "8bit")


def save_pretrained(model: OmniModel, directory, tokenizers=None) -> None:
    """HF-style folder: config.json, model.safetensors (everything but the backbone) and
    backbone/ (a plain transformers Qwen2 folder, so quantized loading is transformers').
    With `tokenizers` (a `formatting.Tokenizers`), also tokenizer.json, image_tokenizer/ and
    audio_tokenizer/: the folder `load_checkpoint` and the app open. model.safetensors comes
    last and whole (written aside, then renamed), so a folder that holds it is complete."""
    import os
    from pathlib import Path

    from safetensors.torch import save_file

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    (d / CONFIG_FILE).write_text(model.config.to_json() + "\n")
    model.backbone.save_pretrained(d / BACKBONE_DIR, safe_serialization=True)
    if tokenizers is not None:
        tokenizers.text.save_pretrained(d)
        tokenizers.image.save_pretrained(d / "image_tokenizer")
        tokenizers.audio.save_pretrained(d / "audio_tokenizer")
    rest = {k: v.detach().contiguous() for k, v in model.state_dict().items()
            if not k.startswith("backbone.")}
    save_file(rest, str(d / (WEIGHTS_FILE + ".partial")))
    os.replace(d / (WEIGHTS_FILE + ".partial"), d / WEIGHTS_FILE)


def resolve(path_or_hub_id: str):
    """A local folder as is; anything else is fetched from the Hugging Face Hub (the only
    network access, and only when a hub id is named)."""
    from pathlib import Path

    p = Path(path_or_hub_id)
    if p.exists():
        return p
    if path_or_hub_id.count("/") != 1 or path_or_hub_id.startswith((".", "/")):
        raise FileNotFoundError(f"no checkpoint folder at {path_or_hub_id!r}")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(path_or_hub_id))


def from_pretrained(path_or_hub_id, device="cpu", quantization: str | None = None,
                    dtype: torch.dtype | None = None) -> OmniModel:
    """Load a folder written by `save_pretrained` (or a hub id). `quantization` loads the
    backbone with bitsandbytes ("4bit": NF4, "8bit": LLM.int8); the rest stays in `dtype`."""
    from safetensors.torch import load_file
    from transformers import BitsAndBytesConfig, Qwen2Model

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"unknown quantization {quantization!r}; use 4bit, 8bit or none")
    d = resolve(str(path_or_hub_id))
    if not (d / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{d} holds no {CONFIG_FILE}: not a NExT-OMNI checkpoint")
    config = OmniConfig.from_json_file(d / CONFIG_FILE)
    kwargs = {"attn_implementation": "sdpa"}
    shard = False
    if device == "auto":  # every GPU there is (accelerate's device map), else the CPU
        gpus = torch.cuda.device_count()
        shard, device = gpus > 1, ("cuda:0" if gpus else "cpu")
    if shard:
        kwargs["device_map"] = "auto"
    if quantization is not None:
        compute = dtype or torch.float32
        kwargs["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                               bnb_4bit_compute_dtype=compute)
            if quantization == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
        kwargs.setdefault("device_map", {"": device})
    elif dtype is not None:
        kwargs["dtype"] = dtype
    backbone = Qwen2Model.from_pretrained(d / BACKBONE_DIR, **kwargs)
    model = OmniModel(config, backbone=backbone)
    rest = load_file(str(d / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(rest, strict=False)
    missing = [k for k in missing if not k.startswith("backbone.")]
    if missing or unexpected:
        raise ValueError(f"{d}: weights do not match the config (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]})")
    for name, module in model.named_children():
        if name != "backbone":
            module.to(device=device, dtype=dtype) if dtype else module.to(device)
    for name, buf in model.named_buffers(recurse=False):
        setattr(model, name, buf.to(device))
    if quantization is None and not shard:
        model.backbone.to(device)
    return model.eval()
