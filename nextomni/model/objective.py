"""The backbone's training objectives over mixed-modality sequences: DFM, and next-token
prediction for the autoregressive baseline.

Every (position, sub-code) slot of a sequence is one DFM variable in its own space (text,
image sub-codebook g, audio sub-codebook g; see `sequence.variable_spaces`). Response
variables are noised along their path at one time t per example and scored with
cross-entropy; sub-code heads are teacher-forced with the clean sub-codes before them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nextomni.dfm import dfm_loss
from nextomni.dfm.loss import sample_time
from nextomni.model.config import AUDIO, IMAGE, TEXT
from nextomni.model.modeling import OmniModel
from nextomni.model.sequence import Batch, variable_spaces


def dfm_objective(model: OmniModel, batch: Batch, paths=None,
                  generator: torch.Generator | None = None, t: Tensor | None = None,
                  per_example: bool = False, code_time_power: float = 1.0) -> Tensor:
    """Mean cross-entropy over the response variables of `batch` (with `per_example`, the
    mean of each example's mean: see `dfm_loss`). Each target block gets its own time
    t ~ U[0, 1) (one per example when there is one target block).

    `code_time_power` p > 1 draws image and audio blocks at t = u^p instead: more of them
    near pure noise, where only the prompt tells what to draw (a block of codes can
    otherwise be denoised from its own partly clean positions, and its loss teaches little
    about the prompt: see bench/condition_use.py)."""
    b, length, g = batch.ids.shape
    space = variable_spaces(model.config, batch.kind).reshape(b, length * g)
    x1 = batch.ids.reshape(b, length * g)
    target = batch.target[..., None].expand(b, length, g).reshape(b, length * g) & (space >= 0)
    paths = paths if paths is not None else model.paths()
    if t is None:
        segments = int(batch.segment.max()) + 1
        per_block = sample_time(b * segments, generator=generator,
                                device=x1.device).reshape(b, segments)
        t = per_block.gather(1, batch.segment)
        if code_time_power != 1.0:
            t = torch.where(batch.kind == TEXT, t, t ** code_time_power)
        t = t.repeat_interleave(g, dim=1)

    def denoise(x_t: Tensor):
        ids = x_t.reshape(b, length, g)
        hidden = model(ids, batch.kind, batch.mpos, batch.attention_mask,
                       segment=batch.segment, noisy=batch.noisy,
                       position_ids=batch.pos).last_hidden_state
        # heads run on the response only; sub-code heads are teacher-forced with the clean
        # codes of the same position
        return model.head_logits(hidden, batch.ids, batch.kind, select=batch.target)

    return dfm_loss(denoise, x1, paths, target, space=space, t=t, generator=generator,
                    per_example=per_example)


def ar_objective(model: OmniModel, batch: Batch, per_example: bool = False) -> Tensor:
    """Next-token cross-entropy (the causal baseline): the state at position i - 1 predicts
    the token at target position i through the head of i's kind; sub-code heads are
    teacher-forced with the clean sub-codes of position i before them. Mean over target
    variables, or with `per_example` the mean of each example's mean (as `dfm_loss`)."""
    hidden = model(batch.ids, batch.kind, batch.mpos, batch.attention_mask).last_hidden_state
    shifted = torch.cat([hidden[:, :1], hidden[:, :-1]], 1)  # position 0 is never a target
    logits = model.head_logits(shifted, batch.ids, batch.kind, select=batch.target)
    c = model.config
    sel = batch.target
    kinds = [(TEXT, 0)] + [(IMAGE, g) for g in range(c.image_groups)] + \
        [(AUDIO, g) for g in range(c.audio_groups)]
    targets = [batch.ids[sel & (batch.kind == k)][:, g] for k, g in kinds]
    # target variables per example (a position holds one text token or G sub-codes)
    slots = variable_spaces(c, batch.kind) >= 0  # [B, L, G]
    per_row = (slots & sel[..., None]).sum((1, 2)).clamp(min=1)[:, None].expand_as(sel)
    total = hidden.new_zeros((), dtype=torch.float32)
    for (k, _), lg, tg in zip(kinds, logits, targets):
        if len(tg):
            ce = F.cross_entropy(lg.float(), tg, reduction="none")
            total = total + ((ce / per_row[sel & (batch.kind == k)]).sum() if per_example
                             else ce.sum())
    if per_example:
        return total / max(int(sel.any(1).sum()), 1)
    return total / max(sum(len(t) for t in targets), 1)
