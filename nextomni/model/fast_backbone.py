"""The Qwen2 backbone's forward pass at inference, layer by layer, without transformers'
per-call machinery.

A nano forward pass over one position does ~1.5 ms of arithmetic, yet `Qwen2Model.forward`
adds a few milliseconds around it: argument rewriting and output capturing on every layer,
mask preparation, config look-ups. The decoders make hundreds of such passes per reply, so
this runs the same layers directly: each layer's own modules (norms, projections, MLP) and
transformers' own rotary and SDPA attention functions, in the same order, so the hidden
states are bit for bit those of `Qwen2Model.forward` (tests/test_model.py checks it).

Only where that holds: no gradients (training keeps the library's path), a plain Qwen2
backbone with SDPA attention and no sliding-window layers on one device (no quantization,
no device map: their hooks live in the library's forward), a 4-D boolean mask (which
`OmniModel.forward` always builds) and a cache that is either none or one with the
library's `update` contract.
"""

from __future__ import annotations

import torch
from torch import Tensor

try:  # the functions the library's own layers call
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.models.qwen2.modeling_qwen2 import Qwen2Model, apply_rotary_pos_emb
except ImportError:  # another transformers: the library's forward is used
    Qwen2Model = None


def can_run(backbone, mask: Tensor) -> bool:
    """Whether `run` gives exactly what `backbone(...)` would for this call."""
    return (Qwen2Model is not None and type(backbone) is Qwen2Model
            and not torch.is_grad_enabled()
            and getattr(backbone.config, "_attn_implementation", None) == "sdpa"
            and getattr(backbone, "hf_quantizer", None) is None
            and not hasattr(backbone, "hf_device_map")
            and not backbone.has_sliding_layers
            and mask.dtype == torch.bool and mask.dim() == 4)


def run(backbone, embeds: Tensor, mask: Tensor, positions: Tensor, cache=None) -> Tensor:
    """Last hidden states [B, L, H] of `embeds` [B, L, H] attending with `mask`
    [B, 1, L, past + L] at `positions` [B, L], appending keys/values to `cache` if given."""
    h = embeds
    rotary = backbone.rotary_emb(h, positions)
    b, n = h.shape[:2]
    for i, layer in enumerate(backbone.layers[: backbone.config.num_hidden_layers]):
        attn = layer.self_attn
        x = layer.input_layernorm(h)
        heads = (b, n, -1, attn.head_dim)
        q = attn.q_proj(x).view(heads).transpose(1, 2)
        k = attn.k_proj(x).view(heads).transpose(1, 2)
        v = attn.v_proj(x).view(heads).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *rotary)
        if cache is not None:
            k, v = cache.update(k, v, i)
        o, _ = sdpa_attention_forward(attn, q, k, v, mask, dropout=0.0, scaling=attn.scaling,
                                      is_causal=False)
        h = h + attn.o_proj(o.reshape(b, n, -1).contiguous())
        h = h + layer.mlp(layer.post_attention_layernorm(h))
    return backbone.norm(h)
