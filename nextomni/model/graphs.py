"""A preallocated key/value cache, and CUDA-graphed denoising steps for text blocks.

At 7B scale one denoising step of a 16-position block reads every weight once (~5 ms on an
H100), yet eager PyTorch spends several times that launching the step's ~1000 kernels from
Python. A CUDA graph records those kernels once and replays them with one launch. Graphs
need fixed shapes and fixed memory, hence `StaticCache`: the keys/values of `capacity`
positions live in buffers allocated up front, each forward writes its positions in place
(at slots held in a device tensor), and attention always spans the whole capacity, masked
beyond the positions in use. The cache keeps `DynamicCache`'s contract (a forward appends its
positions; `crop(-n)` drops the last n), so the block decoder drives either the same way.

`TextDenoiseStep` is one whole Euler step of a text block, in one graph: the backbone over the
block against the cache, the LM head, the choice of x1 and the sampler's jump, so a step costs
one replay and no wait for the device (`euler_jump` draws without looking at what it drew).
The block written before it (or the reply's layout token) is cached in the same replay, so a
block of k steps costs k replays. On CUDA it is captured; elsewhere it runs the same code
eagerly, which is how the tests check it, token for token, against the dynamic cache.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nextomni.dfm import choose_x1, euler_jump
from nextomni.model.config import TEXT


class StaticCache:
    """Keys/values of up to `capacity` positions for every backbone layer."""

    def __init__(self, backbone_config, capacity: int, device, dtype: torch.dtype):
        c = backbone_config
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        shape = (1, c.num_key_value_heads, capacity, head_dim)
        # zeros, not empty: masked slots still enter the attention product (0 * NaN = NaN)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype)
                     for _ in range(c.num_hidden_layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.capacity, self.length = capacity, 0
        self.device = torch.device(device)
        self.pool = None  # the memory pool of the steps captured against this cache
        self._arange = torch.arange(capacity, device=device)
        self._slots: dict[int, Tensor] = {}   # per forward length: where it writes
        self._masks: dict[tuple, Tensor] = {}  # per (pending, n): [1, 1, q, capacity]

    # ------------------------------------------------------------------ bookkeeping
    def begin(self, n: int) -> None:
        """Before a forward over n positions: they take slots length .. length + n - 1 (the
        slot tensors are updated in place, so a captured graph sees the new values)."""
        if self.length + n > self.capacity:
            raise ValueError(f"static cache full: {self.length} + {n} positions > capacity "
                             f"{self.capacity}")
        if n not in self._slots:
            self._slots[n] = torch.empty(n, dtype=torch.long, device=self.device)
        self._slots[n].copy_(self._arange[self.length: self.length + n])
        self.length += n

    def slots(self, n: int) -> Tensor:
        return self._slots[n]

    def visible(self, n: int, pending: int = 0) -> Tensor:
        """[1, 1, pending + n, capacity] after `begin(pending + n)`: the `pending` positions
        (a block written, cached in the same pass) see every position before them and each
        other; the block of n sees those and itself; nothing sees beyond."""
        q, key = pending + n, (pending, n)
        if key not in self._masks:
            self._masks[key] = torch.empty(1, 1, q, self.capacity, dtype=torch.bool,
                                           device=self.device)
        limit = self.length - n * (self._arange[:q] < pending)       # [q], on the device
        self._masks[key].copy_((self._arange < limit[:, None]).expand(1, 1, q, self.capacity))
        return self._masks[key]

    def pad_mask(self, mask: Tensor) -> Tensor:
        """A [B, 1, Q, K] mask over the positions in use, widened to the capacity."""
        out = torch.zeros(*mask.shape[:3], self.capacity, dtype=mask.dtype, device=mask.device)
        out[..., : mask.shape[-1]] = mask
        return out

    # ------------------------------------------------------------------ Cache protocol
    def update(self, key: Tensor, value: Tensor, layer_idx: int, *args, **kwargs):
        slots = self._slots[key.shape[2]]
        self.keys[layer_idx].index_copy_(2, slots, key.to(self.keys[layer_idx].dtype))
        self.values[layer_idx].index_copy_(2, slots, value.to(self.values[layer_idx].dtype))
        return self.keys[layer_idx], self.values[layer_idx]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        """DynamicCache's: a negative value drops that many positions from the end."""
        self.length = self.length + max_length if max_length < 0 else min(self.length,
                                                                          max_length)


class TextDenoiseStep:
    """One Euler step of an all-text block of n positions against a `StaticCache`, whole: the
    text embedding, the backbone over the `pending` positions written before the block (their
    keys and values stay in the cache: the commit fused with the block's first step) and the
    block, the LM head, x1 and the jump (`final`: the step that reaches t = 1 takes x1). Captured
    as one CUDA graph on a CUDA device; elsewhere the same code runs eagerly, drawing the same
    random numbers in the same order as `euler_steps` over the block does."""

    def __init__(self, model, cache: StaticCache, path, n: int, pending: int = 0,
                 final: bool = False, temperature: float = 0.0, top_k: int | None = None):
        self.model, self.cache, self.path = model, cache, path
        self.n, self.pending, self.final = n, pending, final
        self.temperature, self.top_k = temperature, top_k
        device = cache.device
        self.ids = torch.zeros(1, pending + n, dtype=torch.long, device=device)
        self.kind = torch.full((1, pending + n), TEXT, dtype=torch.long, device=device)
        # float64, as the sampler's Python floats are before they meet the path's tensors
        self.t = torch.zeros((), dtype=torch.float64, device=device)
        self.h = torch.zeros((), dtype=torch.float64, device=device)
        self.graph = self.generator = None
        self.out: tuple[Tensor, Tensor, Tensor] | None = None
        if device.type == "cuda":
            self._capture()

    def _run(self, generator: torch.Generator | None) -> tuple[Tensor, Tensor, Tensor]:
        """(x1 [n], x_next [n], confidence: the least sure choice's probability)."""
        m, cache, p, q = self.model, self.cache, self.pending, self.pending + self.n
        emb = m.backbone.embed_tokens(self.ids) + m.kind_emb(self.kind)
        out = m.backbone(inputs_embeds=emb, attention_mask={"full_attention":
                                                            cache._masks[(p, self.n)]},
                         position_ids=cache.slots(q)[None], past_key_values=cache,
                         use_cache=True, is_causal=False)
        logits = m.lm_head(out.last_hidden_state[0, p:]).float()
        confidence = torch.softmax(logits, -1).max(-1).values.min()
        x1 = choose_x1(logits, self.temperature, self.top_k, generator)
        x_t = self.ids[0, p:]
        x_next = x1 if self.final else euler_jump(self.path, x_t, x1, self.t, self.h,
                                                  generator)
        return x1, x_next, confidence

    @torch.no_grad()
    def _capture(self) -> None:
        """Record the step. It draws from a generator of its own, registered with the graph;
        each call hands it the caller's generator state (or the device's default one) and
        takes the advanced state back. The steps of one cache share a memory pool: they
        replay one after another, and their outputs are copied out at once."""
        cache, q = self.cache, self.pending + self.n
        self.generator = torch.Generator(cache.device)
        if cache.pool is None:
            cache.pool = torch.cuda.graph_pool_handle()
        cache.begin(q)  # warm-up and capture write into the slots the next step overwrites
        cache.visible(self.n, self.pending)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._run(self.generator)
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        self.graph.register_generator_state(self.generator)
        with torch.cuda.graph(self.graph, pool=cache.pool, stream=stream):
            self.out = self._run(self.generator)
        cache.crop(-q)

    @torch.no_grad()
    def __call__(self, pending: Tensor | None, x_t: Tensor, t: float, h: float,
                 generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """pending [p] and x_t [n] text ids, the step from t to t + h -> (x1, x_next,
        confidence); the pending positions stay in the cache, the block does not."""
        p = self.pending
        self.cache.begin(p + self.n)
        self.cache.visible(self.n, p)
        if p:
            self.ids[0, :p].copy_(pending.reshape(p))
        self.ids[0, p:].copy_(x_t.reshape(self.n))
        self.t.fill_(t)
        self.h.fill_(h)
        if self.graph is None:
            out = self._run(generator)
        else:
            source = generator if generator is not None else \
                torch.cuda.default_generators[self.cache.device.index or 0]
            self.generator.set_state(source.get_state())
            self.graph.replay()
            source.set_state(self.generator.get_state())
            out = tuple(o.clone() for o in self.out)  # the next replay overwrites them
        self.cache.crop(-self.n)
        return out
