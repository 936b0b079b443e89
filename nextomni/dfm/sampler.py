"""Euler sampler of the DFM continuous-time Markov chain, over mixed vocabularies.

A state is x_t: LongTensor [B, N] of N discrete variables. `space` ([N], or [B, N] when rows
differ in layout) says which path (vocabulary) each variable lives in: text, each image
sub-codebook, each audio sub-codebook; -1 marks slots that are not variables (never touched).
`fixed` [B, N] or [N] marks the prompt, which never moves either. One step from t to t + h:

    x1   ~ p(x1 | x_t)                     denoiser(x_t); greedy, or temperature / top-k
    u    = path.velocity(x_t, x1, t)       [.., K] rates towards every token
    jump with probability 1 - exp(-h * sum_x u(x)), to x drawn proportionally to u
    at the step that reaches t = 1:  x_t = x1

The denoiser gets no time input: it sees x_t and returns logits, a [B, N, K] tensor for a
single space or a list with one tensor per space holding the logits of that space's variables
in row-major order ([M_k, K_k], or [B, N_k, K_k] when every row has N_k of them). A denoiser
that samples x1 itself (a head that predicts sub-codes one after another) may instead return
the chosen tokens as an integer [B, N] tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch import Tensor

Logits = Tensor | Sequence[Tensor]
Denoiser = Callable[[Tensor], Logits]


@dataclass
class SamplerStep:
    """State after `step` of `total` steps: time reached, current tokens, predicted data."""

    step: int
    total: int
    t: float
    x_t: Tensor
    x1: Tensor


def choose_x1(logits: Tensor, temperature: float = 0.0, top_k: int | None = None,
              generator: torch.Generator | None = None) -> Tensor:
    """x1 from logits [..., K]: argmax at temperature 0, else a draw from the (top-k) softmax."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(-1)
    logits = logits.float() / temperature
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, -1).reshape(-1, logits.shape[-1])
    return torch.multinomial(probs, 1, generator=generator).reshape(logits.shape[:-1])


def guided(denoiser: Denoiser, uncond: Denoiser, scale: float) -> Denoiser:
    """Classifier-free guidance: logits (1 + w) * cond - w * uncond, per space."""
    if scale == 0:
        return denoiser

    def mix(c: Tensor, u: Tensor) -> Tensor:
        return (1 + scale) * c.float() - scale * u.float()

    def both(x_t: Tensor) -> Logits:
        c, u = denoiser(x_t), uncond(x_t)
        if isinstance(c, Tensor):
            return mix(c, u)
        return [mix(ci, ui) for ci, ui in zip(c, u)]

    return both


def space_masks(space: Tensor | None, shape: torch.Size, n_paths: int) -> list[Tensor]:
    """One [B, N] bool mask per path: which variables live in it."""
    b, n = shape
    if space is None:
        if n_paths != 1:
            raise ValueError("several paths need `space` to say which variable uses which")
        return [torch.ones(b, n, dtype=torch.bool)]
    if space.shape not in ((n,), (b, n)):
        raise ValueError(f"space must be [N={n}] or [B={b}, N={n}], got {tuple(space.shape)}")
    if space.numel() and (int(space.min()) < -1 or int(space.max()) >= n_paths):
        raise ValueError(f"space ids must lie in [-1, {n_paths})")
    space = space.expand(b, n)
    return [space == k for k in range(n_paths)]


def _predict_x1(out: Logits, masks: list[Tensor], x_t: Tensor, temperature, top_k,
                generator) -> Tensor:
    if isinstance(out, Tensor) and not out.is_floating_point():
        if out.shape != x_t.shape:
            raise ValueError(f"denoiser returned tokens {tuple(out.shape)}, "
                             f"expected {tuple(x_t.shape)}")
        return out
    logits = [out] if isinstance(out, Tensor) else list(out)
    if len(logits) != len(masks):
        raise ValueError(f"denoiser returned {len(logits)} logit tensors for {len(masks)} spaces")
    x1 = x_t.clone()
    for mask, lg in zip(masks, logits):
        lg = lg.reshape(-1, lg.shape[-1])
        if lg.shape[0] != int(mask.sum()):
            raise ValueError(f"logits for {lg.shape[0]} variables, but the space has "
                             f"{int(mask.sum())}")
        x1[mask] = choose_x1(lg, temperature, top_k, generator)
    return x1


def euler_jump(path, x_t: Tensor, x1: Tensor, t: float | Tensor, h: float | Tensor,
               generator: torch.Generator | None = None) -> Tensor:
    """One Euler step of one path's chain, chunked over positions to bound memory. `t` and `h`
    may be 0-dim tensors, and nothing here waits for the device or depends on the values
    drawn, so the step can be captured in a CUDA graph: every position draws whether it jumps
    and where (x ~ u by the Gumbel-max trick: argmax log u(x) + G(x); u = 0 is never drawn),
    and only the jumping ones move."""
    flat_z, flat_x1 = x_t.reshape(-1), x1.reshape(-1)
    out = flat_z.clone()
    chunk = max(1, (1 << 22) // path.vocab_size)
    for i in range(0, flat_z.numel(), chunk):
        z, y = flat_z[i:i + chunk], flat_x1[i:i + chunk]
        u = path.velocity(z, y, t, validate=False)                       # [n, K]
        p_jump = 1 - torch.exp(-h * u.sum(-1))
        jump = torch.rand(z.shape, generator=generator, device=z.device) < p_jump
        gumbel = -(-torch.rand(u.shape, generator=generator, device=u.device).log()).log()
        target = (u.log() + gumbel).argmax(-1)
        out[i:i + chunk] = torch.where(jump, target, z)
    return out.reshape(x_t.shape)


def draw_source(x_init: Tensor, masks: list[Tensor], fixed: Tensor, paths,
                generator: torch.Generator | None = None) -> Tensor:
    """x_0: every variable not `fixed` redrawn from its path's source distribution."""
    x_t = x_init.clone()
    for mask, path in zip(masks, paths):
        free = mask & ~fixed
        x_t[free] = path.sample_source((int(free.sum()),), generator).to(x_t.device)
    return x_t


def euler_steps(denoiser: Denoiser, x_init: Tensor, paths, *, space: Tensor | None = None,
                fixed: Tensor | None = None, steps: int = 50, time_grid: Tensor | None = None,
                temperature: float = 0.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> Iterator[SamplerStep]:
    """Run the chain from the source (non-fixed variables of `x_init` are redrawn from each
    path's source distribution) along `time_grid` (default: `steps` even steps over [0, 1]),
    yielding the state after every step. `temperature` / `top_k` say how x1 is drawn from the
    logits a denoiser returns; a denoiser that returns tokens has chosen them itself, so it
    passes neither."""
    paths = list(paths) if isinstance(paths, (list, tuple)) else [paths]
    if x_init.dim() != 2:
        raise ValueError(f"x_init must be [B, N], got {tuple(x_init.shape)}")
    grid = make_time_grid(steps, time_grid)
    masks = [m.to(x_init.device) for m in space_masks(space, x_init.shape, len(paths))]
    fixed = _fixed_mask(fixed, x_init)
    x_t = draw_source(x_init, masks, fixed, paths, generator)
    total = len(grid) - 1
    # the paths that hold free variables, found once: each test waits for the device
    moving = [(mask & ~fixed, path) for mask, path in zip(masks, paths)]
    moving = [(free, path) for free, path in moving if bool(free.any())]
    for i in range(total):
        t, t_next = float(grid[i]), float(grid[i + 1])
        x1 = _predict_x1(denoiser(x_t), masks, x_t, temperature, top_k, generator)
        x1 = torch.where(fixed, x_init, x1)
        if t_next >= 1.0:
            x_next = x1.clone()
        else:
            x_next = x_t.clone()
            for free, path in moving:
                x_next[free] = euler_jump(path, x_t[free], x1[free], t, t_next - t, generator)
        x_t = torch.where(fixed, x_init, x_next)
        yield SamplerStep(i + 1, total, t_next, x_t, x1)


def euler_sample(denoiser: Denoiser, x_init: Tensor, paths, *,
                 on_step: Callable[[SamplerStep], None] | None = None, **kwargs) -> Tensor:
    """Run `euler_steps` to the end and return the final tokens [B, N]; `on_step` sees every
    intermediate state (for streaming)."""
    x_t = x_init
    for state in euler_steps(denoiser, x_init, paths, **kwargs):
        if on_step is not None:
            on_step(state)
        x_t = state.x_t
    return x_t


def make_time_grid(steps: int, time_grid: Tensor | None = None) -> Tensor:
    """The times of a run: `time_grid` checked, or `steps` even steps over [0, 1]."""
    if time_grid is None:
        if not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps!r}")
        return torch.linspace(0, 1, steps + 1, dtype=torch.float64)
    grid = torch.as_tensor(time_grid, dtype=torch.float64).reshape(-1)
    if grid.numel() < 2 or bool((grid[1:] <= grid[:-1]).any()):
        raise ValueError("time_grid must hold at least two strictly increasing times")
    if float(grid[0]) < 0 or float(grid[-1]) > 1:
        raise ValueError("time_grid must lie in [0, 1]")
    return grid


def _fixed_mask(fixed: Tensor | None, x: Tensor) -> Tensor:
    if fixed is None:
        return torch.zeros_like(x, dtype=torch.bool)
    fixed = torch.as_tensor(fixed, dtype=torch.bool, device=x.device)
    if fixed.shape == x.shape[1:]:
        fixed = fixed.expand_as(x)
    if fixed.shape != x.shape:
        raise ValueError(f"fixed must be [N] or [B, N] like x_init {tuple(x.shape)}, "
                         f"got {tuple(fixed.shape)}")
    return fixed
