"""DFM training objective and condition dropout for classifier-free guidance.

    t   ~ U[0, 1 - eps]                        one time per example
    x_t ~ p_t(. | x1) on target variables      path.sample; the rest of x1 is kept as is
    L   = mean over target variables of  -log p_theta(x1 | x_t)

The same path objects are handed to the sampler, so training and sampling share one schedule.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nextomni.dfm.sampler import Denoiser, space_columns


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
    x_t = x1.clone()
    for cols, path in zip(space_columns(space, x1.shape[1], len(paths)), paths):
        noisy = path.sample(x1[:, cols], t, generator)
        x_t[:, cols] = torch.where(target[:, cols], noisy, x1[:, cols])
    return x_t


def dfm_loss(denoiser: Denoiser, x1: Tensor, paths, target: Tensor, *,
             space: Tensor | None = None, t: Tensor | None = None, eps: float = 1e-3,
             generator: torch.Generator | None = None) -> Tensor:
    """Cross-entropy of the denoiser's prediction of x1 on the target variables.

    x1 [B, N] LongTensor; target [B, N] bool (the response, never the prompt); the denoiser
    returns logits as for `euler_steps`. Returns the mean over all target variables.
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
    columns = space_columns(space, x1.shape[1], len(paths))
    total = x1.new_zeros((), dtype=torch.float32)
    for cols, lg in zip(columns, logits):
        mask = target[:, cols]
        if mask.any():
            total = total + F.cross_entropy(lg[mask].float(), x1[:, cols][mask], reduction="sum")
    return total / target.sum()


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
