"""The backbone's DFM objective over mixed-modality sequences.

Every (position, sub-code) slot of a sequence is one DFM variable in its own space (text,
image sub-codebook g, audio sub-codebook g; see `sequence.variable_spaces`). Response
variables are noised along their path at one time t per example and scored with
cross-entropy; sub-code heads are teacher-forced with the clean sub-codes before them.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nextomni.dfm import dfm_loss
from nextomni.model.modeling import OmniModel
from nextomni.model.sequence import Batch, variable_spaces


def dfm_objective(model: OmniModel, batch: Batch, paths=None,
                  generator: torch.Generator | None = None, t: Tensor | None = None) -> Tensor:
    """Mean cross-entropy over the response variables of `batch`."""
    b, length, g = batch.ids.shape
    space = variable_spaces(model.config, batch.kind).reshape(b, length * g)
    x1 = batch.ids.reshape(b, length * g)
    target = batch.target[..., None].expand(b, length, g).reshape(b, length * g) & (space >= 0)
    paths = paths if paths is not None else model.paths()

    def denoise(x_t: Tensor):
        ids = x_t.reshape(b, length, g)
        hidden = model(ids, batch.kind, batch.mpos, batch.attention_mask,
                       segment=batch.segment).last_hidden_state
        # heads run on the response only; sub-code heads are teacher-forced with the clean
        # codes of the same position
        return model.head_logits(hidden, batch.ids, batch.kind, select=batch.target)

    return dfm_loss(denoise, x1, paths, target, space=space, t=t, generator=generator)
