"""Multi-codebook vector quantization (MCQ): each position's latent is split into G groups and
each group snaps to the nearest entry of its own codebook.

Codes live on the unit sphere (cosine matching), which keeps every entry in play and gives the
DFM metric path normalised embeddings for free. Codebooks follow the encoder by exponential
moving averages (no codebook gradient); entries that go unused are revived on random encoder
outputs, so the codebooks stay fully used.

Shapes: z [..., G, d] -> codes [..., G] (long), vectors [..., G, d].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiCodebookVQ(nn.Module):
    def __init__(self, groups: int, codebook_size: int, dim: int, decay: float = 0.99,
                 revive_below: float = 0.02):
        super().__init__()
        self.groups, self.codebook_size, self.dim = groups, codebook_size, dim
        self.decay, self.revive_below = decay, revive_below
        init = F.normalize(torch.randn(groups, codebook_size, dim), dim=-1)
        self.register_buffer("codebook", init)
        self.register_buffer("ema_count", torch.ones(groups, codebook_size))
        self.register_buffer("ema_sum", init.clone())

    def lookup(self, codes: Tensor) -> Tensor:
        """Code vectors of `codes` [..., G] -> [..., G, d]."""
        if codes.shape[-1] != self.groups:
            raise ValueError(f"codes must end in G={self.groups} sub-codes, got {tuple(codes.shape)}")
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= self.codebook_size):
            raise ValueError(f"codes must lie in [0, {self.codebook_size})")
        g = torch.arange(self.groups, device=codes.device)
        return self.codebook[g, codes]

    def quantize(self, z: Tensor) -> Tensor:
        """Nearest code of each group: z [..., G, d] -> [..., G]."""
        z = F.normalize(z.float(), dim=-1)
        sim = torch.einsum("...gd,gkd->...gk", z, self.codebook)
        return sim.argmax(-1)

    def snap(self, z: Tensor) -> Tensor:
        """The code vectors nearest to z [..., G, d] (no gradient to z)."""
        return self.lookup(self.quantize(z))

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(straight-through quantized vectors [..., G, d], codes [..., G], commitment loss)."""
        z = F.normalize(z.float(), dim=-1)
        codes = self.quantize(z)
        q = self.lookup(codes)
        commit = F.mse_loss(z, q.detach())
        if self.training:
            self._ema_update(z.detach().reshape(-1, self.groups, self.dim),
                             codes.reshape(-1, self.groups))
        return z + (q - z).detach(), codes, commit

    @torch.no_grad()
    def _ema_update(self, z: Tensor, codes: Tensor) -> None:
        one_hot = F.one_hot(codes, self.codebook_size).type_as(z)          # [N, G, K]
        count = one_hot.sum(0)                                              # [G, K]
        total = torch.einsum("ngk,ngd->gkd", one_hot, z)
        self.ema_count.mul_(self.decay).add_(count, alpha=1 - self.decay)
        self.ema_sum.mul_(self.decay).add_(total, alpha=1 - self.decay)
        self.codebook.copy_(F.normalize(self.ema_sum, dim=-1))
        self._revive(z)

    @torch.no_grad()
    def _revive(self, z: Tensor) -> None:
        """Move entries whose usage fell below `revive_below` x the mean onto random inputs."""
        mean = self.ema_count.mean(-1, keepdim=True)
        dead = self.ema_count < self.revive_below * mean                    # [G, K]
        for g in range(self.groups):
            n = int(dead[g].sum())
            if n == 0:
                continue
            pick = torch.randint(z.shape[0], (n,), device=z.device)
            fresh = F.normalize(z[pick, g] + 0.01 * torch.randn_like(z[pick, g]), dim=-1)
            self.codebook[g, dead[g]] = fresh
            self.ema_sum[g, dead[g]] = fresh * mean[g]
            self.ema_count[g, dead[g]] = mean[g]

    def usage(self, codes: Tensor) -> Tensor:
        """Fraction of each codebook's entries that `codes` [..., G] use: [G]."""
        flat = codes.reshape(-1, self.groups)
        return torch.tensor([flat[:, g].unique().numel() / self.codebook_size
                             for g in range(self.groups)])
