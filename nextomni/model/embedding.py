"""Unified representations of items (text, image, audio, video), in batches: each item alone,
then `<eos>` in a segment of its own (`ChatFormatter.embedding_sequence`); the state there,
projected and normalised (`OmniModel.unified_embedding`)."""

from __future__ import annotations

import torch

from nextomni.model.sequence import collate


@torch.no_grad()
def embed_parts(model, fmt, parts, batch: int = 32) -> torch.Tensor:
    """[len(parts), H] unit vectors (float32, on the model's device)."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(parts), batch):
        b = collate([fmt.embedding_sequence(p) for p in parts[i:i + batch]]).to(device)
        h = model(b.ids, b.kind, b.mpos, b.attention_mask, segment=b.segment).last_hidden_state
        out.append(model.unified_embedding(h.float(), b.attention_mask.sum(1) - 1))
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size, device=device)
