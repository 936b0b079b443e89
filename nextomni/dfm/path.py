"""Probability paths over one vocabulary: the metric-induced path and, for ablation, masking.

MetricPath (Shaul et al. 2024), for data token x1 and any token x of a vocabulary of K tokens
with L2-normalised embeddings e:

    d(x, x1)    = ||e_x - e_x1||^4                                   (in [0, 16])
    p_t(x | x1) = softmax_x(-beta_t * d(x, x1))                       probs(), sample()
    beta_t      = c * (t / (1 - t))^a                                 beta()
    dbeta_t     = c * a * (t / (1 - t))^(a - 1) / (1 - t)^2           dbeta()
    u_t(x, z)   = p_t(x | x1) * dbeta_t * max(0, d(z, x1) - d(x, x1)),   x != z   velocity()

u_t(x, z) is the rate of jumping from the current token z to x; it only moves towards tokens
closer to x1 and satisfies the Kolmogorov forward equation of p_t. beta_0 = 0, so p_0 is
uniform over the vocabulary. Distances are [positions, K]: everything is computed in chunks of
positions so a 152k-token vocabulary never materialises more than `chunk_elems` floats at once
beyond the result.

Shapes: x1, x_t are LongTensor [...]; t is a float or a tensor whose shape is a prefix of x1's
([B] per example, [B, L] per position); results are [..., K].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

T_EPS = 1e-6  # beta_1 and, for a < 1, dbeta_0 are infinite: t stays inside [T_EPS, 1 - T_EPS]


def expand_time(t: float | Tensor, x: Tensor, dtype=torch.float32) -> Tensor:
    """`t` as a float tensor of x's shape; t's dims align with x's leading dims."""
    t = t.to(x.device, dtype) if isinstance(t, Tensor) else torch.tensor(t, dtype=dtype,
                                                                           device=x.device)
    if t.shape != x.shape[: t.dim()]:
        raise ValueError(f"time of shape {tuple(t.shape)} does not match tokens of shape "
                         f"{tuple(x.shape)} (expected a prefix of it)")
    return t.reshape(t.shape + (1,) * (x.dim() - t.dim())).expand(x.shape)


def _check_tokens(x: Tensor, vocab_size: int, name: str) -> None:
    if x.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{name} must hold integer token ids, got {x.dtype}")
    if x.numel() and (int(x.min()) < 0 or int(x.max()) >= vocab_size):
        raise ValueError(f"{name} has ids outside [0, {vocab_size})")


class MetricPath:
    """The metric-induced path on one vocabulary with embedding table `embeddings` [K, D]."""

    def __init__(self, embeddings: Tensor, c: float = 3.0, a: float = 0.9,
                 chunk_elems: int = 1 << 22):
        if embeddings.dim() != 2 or embeddings.shape[0] < 2:
            raise ValueError(f"embeddings must be [K >= 2, D], got {tuple(embeddings.shape)}")
        if c <= 0 or a <= 0:
            raise ValueError(f"c and a must be positive, got c={c}, a={a}")
        # float64 tables stay float64 (exact checks); anything else computes in float32.
        dtype = torch.float64 if embeddings.dtype == torch.float64 else torch.float32
        self.e = F.normalize(embeddings.detach().to(dtype), dim=-1)
        self.c, self.a = float(c), float(a)
        self.vocab_size = embeddings.shape[0]
        self.chunk = max(1, chunk_elems // self.vocab_size)  # positions per chunk

    def to(self, device) -> "MetricPath":
        self.e = self.e.to(device)
        return self

    # schedule -------------------------------------------------------------------------
    def beta(self, t: Tensor) -> Tensor:
        t = t.clamp(0, 1 - T_EPS)
        return self.c * (t / (1 - t)) ** self.a

    def dbeta(self, t: Tensor) -> Tensor:
        t = t.clamp(T_EPS, 1 - T_EPS)
        return self.c * self.a * (t / (1 - t)) ** (self.a - 1) / (1 - t) ** 2

    # metric ---------------------------------------------------------------------------
    def distance(self, x1: Tensor) -> Tensor:
        """d(x, x1) for every x: [n] -> [n, K], exactly 0 at x1."""
        sq = (2 - 2 * self.e[x1] @ self.e.T).clamp_min(0)
        d = sq * sq
        return d.scatter(1, x1[:, None], 0.0)

    def _chunks(self, n: int):
        for i in range(0, n, self.chunk):
            yield slice(i, min(i + self.chunk, n))

    # path -----------------------------------------------------------------------------
    def sample_source(self, shape, generator: torch.Generator | None = None) -> Tensor:
        """x_0 ~ p_0: uniform over the vocabulary."""
        return torch.randint(self.vocab_size, tuple(shape), generator=generator,
                             device=self.e.device)

    def probs(self, x1: Tensor, t) -> Tensor:
        """p_t(. | x1): [...] -> [..., K]."""
        _check_tokens(x1, self.vocab_size, "x1")
        t = expand_time(t, x1, self.e.dtype).reshape(-1)
        flat = x1.reshape(-1)
        out = torch.empty(flat.numel(), self.vocab_size, dtype=self.e.dtype, device=x1.device)
        for s in self._chunks(flat.numel()):
            out[s] = torch.softmax(-self.beta(t[s])[:, None] * self.distance(flat[s]), -1)
        return out.reshape(*x1.shape, self.vocab_size)

    def sample(self, x1: Tensor, t, generator: torch.Generator | None = None) -> Tensor:
        """x_t ~ p_t(. | x1), same shape as x1."""
        _check_tokens(x1, self.vocab_size, "x1")
        t = expand_time(t, x1, self.e.dtype).reshape(-1)
        flat = x1.reshape(-1)
        out = torch.empty_like(flat)
        for s in self._chunks(flat.numel()):
            p = torch.softmax(-self.beta(t[s])[:, None] * self.distance(flat[s]), -1)
            out[s] = torch.multinomial(p, 1, generator=generator)[:, 0]
        return out.reshape(x1.shape)

    def velocity(self, x_t: Tensor, x1: Tensor, t, validate: bool = True) -> Tensor:
        """u_t(., x_t | x1): jump rates from the current token to every token, 0 at x_t.
        `validate=False` skips the range checks (the sampler's own tokens: each check waits
        for the device)."""
        if validate:
            _check_tokens(x1, self.vocab_size, "x1")
            _check_tokens(x_t, self.vocab_size, "x_t")
        if x_t.shape != x1.shape:
            raise ValueError(f"x_t {tuple(x_t.shape)} and x1 {tuple(x1.shape)} differ in shape")
        t = expand_time(t, x1, self.e.dtype).reshape(-1)
        z, flat = x_t.reshape(-1), x1.reshape(-1)
        out = torch.empty(flat.numel(), self.vocab_size, dtype=self.e.dtype, device=x1.device)
        for s in self._chunks(flat.numel()):
            d = self.distance(flat[s])                          # d(x, x1)   [n, K]
            p = torch.softmax(-self.beta(t[s])[:, None] * d, -1)  # p_t(x|x1)
            d_z = d.gather(1, z[s, None])                       # d(z, x1)   [n, 1]
            u = p * self.dbeta(t[s])[:, None] * (d_z - d).clamp_min(0)
            out[s] = u.scatter(1, z[s, None], 0.0)
        return out.reshape(*x1.shape, self.vocab_size)


class MaskedPath:
    """Masking (absorbing) path, for ablation: p_t(x | x1) = t * [x = x1] + (1 - t) * [x = m].

    The source is all `mask_id`; a masked token jumps to x1 at rate 1 / (1 - t); a revealed
    token never moves again. The vocabulary includes the mask token.
    """

    def __init__(self, vocab_size: int, mask_id: int):
        if not 0 <= mask_id < vocab_size:
            raise ValueError(f"mask_id {mask_id} outside a vocabulary of {vocab_size}")
        self.vocab_size, self.mask_id = vocab_size, mask_id
        self.device = torch.device("cpu")

    def to(self, device) -> "MaskedPath":
        self.device = torch.device(device)
        return self

    def sample_source(self, shape, generator: torch.Generator | None = None) -> Tensor:
        return torch.full(tuple(shape), self.mask_id, dtype=torch.long, device=self.device)

    def probs(self, x1: Tensor, t) -> Tensor:
        _check_tokens(x1, self.vocab_size, "x1")
        t = expand_time(t, x1).clamp(0, 1)[..., None]
        one_hot = F.one_hot(x1, self.vocab_size).float()
        mask = F.one_hot(torch.full_like(x1, self.mask_id), self.vocab_size).float()
        return t * one_hot + (1 - t) * mask

    def sample(self, x1: Tensor, t, generator: torch.Generator | None = None) -> Tensor:
        _check_tokens(x1, self.vocab_size, "x1")
        t = expand_time(t, x1)
        keep = torch.rand(x1.shape, generator=generator, device=x1.device) < t
        return torch.where(keep, x1, torch.full_like(x1, self.mask_id))

    def velocity(self, x_t: Tensor, x1: Tensor, t, validate: bool = True) -> Tensor:
        if validate:
            _check_tokens(x1, self.vocab_size, "x1")
            _check_tokens(x_t, self.vocab_size, "x_t")
        t = expand_time(t, x1).clamp(0, 1 - T_EPS)
        rate = ((x_t == self.mask_id) & (x1 != self.mask_id)).float() / (1 - t)
        return F.one_hot(x1, self.vocab_size).float() * rate[..., None]
