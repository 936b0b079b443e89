"""DFM training objective and condition dropout for classifier-free guidance.

    t   ~ U[0, 1 - eps]                        one time per example
    x_t ~ p_t(. | x1) on target variables      path.sample; the rest of x1 is kept as is
    L   = mean over target variables of  -log p_theta(x1 | x_t)
          (per_example: the mean over examples of each example's own mean)

The same path objects are handed to the sampler, so training and sampling share one schedule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nextomni.dfm.path import expand_time
from nextomni.dfm.sampler import Denoiser, space_masks


def sample_time(batch: int, eps: float = 1e-3, generator: torch.Generator | None = None,
                device=None) -> Tensor:
    """t ~ U[0, 1 - eps], shape [batch]."""
    if not 0 <= eps < 1:
        raise ValueError(f"eps must lie in [0, 1), got {eps}")
    return torch.rand(batch, generator=generator, device=device) * (1 - eps)


def noise_targets(x1: Tensor, paths, t: Tensor, target: Tensor, space: Tensor | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """x_t: target variables of x1 [B, N] drawn from each path at per-example time t [B]."""
    paths = list(paths) if isinstance(paths, (list, tuple)) else [paths]
    t = expand_time(t, x1)
    x_t = x1.clone()
    for mask, path in zip(space_masks(space, x1.shape, len(paths)), paths):
        sel = mask.to(x1.device) & target
        x_t[sel] = path.sample(x1[sel], t[sel], generator)
    return x_t


def dfm_loss(denoiser: Denoiser, x1: Tensor, paths, target: Tensor, *,
             space: Tensor | None = None, t: Tensor | None = None, eps: float = 1e-3,
             generator: torch.Generator | None = None, per_example: bool = False) -> Tensor:
    """Cross-entropy of the denoiser's prediction of x1 on the target variables.

    x1 [B, N] LongTensor; target [B, N] bool (the response, never the prompt); the denoiser
    returns logits as for `euler_steps`, for every variable of each space or only for its
    target variables (cheaper: a model need not run its heads on the prompt). Returns the mean
    over all target variables, or with `per_example` the mean over examples of each example's
    mean (every example weighs the same, however many variables its reply holds).
    """
    paths = list(paths) if isinstance(paths, (list, tuple)) else [paths]
    target = target.to(torch.bool)
    if target.shape != x1.shape:
        raise ValueError(f"target {tuple(target.shape)} must match x1 {tuple(x1.shape)}")
    if not target.any():
        raise ValueError("target selects no variables: nothing to learn")
    if t is None:
        t = sample_time(x1.shape[0], eps, generator, x1.device)
    x_t = noise_targets(x1, paths, t, target, space, generator)
    out = denoiser(x_t)
    logits = [out] if isinstance(out, Tensor) else list(out)
    masks = space_masks(space, x1.shape, len(paths))
    if len(logits) != len(masks):
        raise ValueError(f"denoiser returned {len(logits)} logit tensors for {len(masks)} spaces")
    # per example, each variable weighs 1 / (its example's number of target variables)
    weight = (1.0 / target.sum(1, keepdim=True).clamp(min=1)).expand_as(target) \
        if per_example else None
    total, count = x1.new_zeros((), dtype=torch.float32), 0
    for mask, lg in zip(masks, logits):
        mask = mask.to(x1.device)
        lg = lg.reshape(-1, lg.shape[-1])
        scored = target[mask]                      # which of this space's variables count
        if lg.shape[0] == int(mask.sum()):
            lg = lg[scored]
        elif lg.shape[0] != int(scored.sum()):
            raise ValueError(f"logits for {lg.shape[0]} variables: expected the space's "
                             f"{int(mask.sum())} or its {int(scored.sum())} target ones")
        if scored.any():
            ce = F.cross_entropy(lg.float(), x1[mask][scored], reduction="none")
            total = total + (ce if weight is None else ce * weight[mask][scored]).sum()
            count += int(scored.sum())
    if count == 0:
        raise ValueError("target selects no variable of any space: nothing to learn")
    return total / (int((target.sum(1) > 0).sum()) if per_example else count)


def drop_condition(x: Tensor, condition: Tensor, p: float, fill: int,
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """For classifier-free guidance: with probability p per example, overwrite the condition
    variables (`condition` [B, N] or [N] bool) with `fill` (a null token). Returns the new
    tokens and the [B] bool of dropped rows."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must lie in [0, 1], got {p}")
    condition = torch.as_tensor(condition, dtype=torch.bool, device=x.device).expand_as(x)
    rows = torch.rand(x.shape[0], generator=generator, device=x.device) < p
    dropped = torch.where(rows[:, None] & condition, torch.full_like(x, fill), x)
    return dropped, rows
